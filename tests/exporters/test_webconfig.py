"""``--web.config.file`` parsing: every mistake is named by its key; secrets are never echoed."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from stackwatch.core.options import OptionError
from stackwatch.exporters.webconfig import BasicAuth, load_web_config

from .pki import PKI, bcrypt_hash, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return make_pki(tmp_path)


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "web.yml"
    path.write_text(text)
    return load_web_config(str(path))


def _fails(tmp_path: Path, text: str, *expected: str) -> str:
    with pytest.raises(OptionError) as raised:
        _load(tmp_path, text)
    message = str(raised.value)
    assert message.startswith("--web.config.file: ")
    for part in expected:
        assert part in message
    return message


def test_full_config_with_relative_paths(tmp_path: Path, pki: PKI) -> None:
    hashed = bcrypt_hash("pw")
    config = _load(tmp_path, f"""
tls_server_config:
  cert_file: server.crt
  key_file: {pki.server_key}
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: ca.crt
  min_version: TLS13
basic_auth_users:
  prometheus: {hashed}
http_server_config:
  http2: false
  headers:
    Strict-Transport-Security: max-age=31536000
    X-Frame-Options: ""
""")
    assert config.tls is not None
    assert config.tls.cert_file == pki.server_cert and config.tls.client_ca_file == pki.ca
    assert config.users == {"prometheus": hashed}
    assert config.headers == {"Strict-Transport-Security": "max-age=31536000"}  # blank headers stay unset
    context = config.ssl_context()
    assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_OPTIONAL


def test_basic_auth_only_and_empty_file(tmp_path: Path) -> None:
    config = _load(tmp_path, f"basic_auth_users:\n  a: {bcrypt_hash('x')}\n")
    assert config.tls is None and config.ssl_context() is None and config.basic_auth() is not None
    empty = _load(tmp_path, "")
    assert empty.tls is None and empty.basic_auth() is None


def test_unknown_keys_are_named(tmp_path: Path, pki: PKI) -> None:
    _fails(tmp_path, "tls_config: {}\n", "tls_config: unknown key", "tls_server_config")
    _fails(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
                     "  certfile: x\n", "tls_server_config.certfile: unknown key")
    _fails(tmp_path, "http_server_config:\n  headers:\n    X-Powered-By: me\n",
           "http_server_config.headers.X-Powered-By: unknown header")


def test_format_keys_stackwatch_does_not_implement_are_rejected_not_ignored(tmp_path: Path, pki: PKI) -> None:
    _fails(tmp_path, "rate_limit:\n  interval: 1s\n", "rate_limit: is part of the exporter-toolkit format but not "
                                                      "supported")
    _fails(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
                     "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "tls_server_config.cipher_suites: is part of")


def test_bad_hash_is_named_but_not_echoed(tmp_path: Path) -> None:
    message = _fails(tmp_path, "basic_auth_users:\n  alice: plaintext-password\n",
                     "basic_auth_users.alice: is not a bcrypt hash")
    assert "plaintext-password" not in message
    _fails(tmp_path, "basic_auth_users:\n  bob: 42\n", "basic_auth_users.bob")


def test_missing_cert_or_key(tmp_path: Path, pki: PKI) -> None:
    _fails(tmp_path, f"tls_server_config:\n  cert_file: nope.crt\n  key_file: {pki.server_key}\n",
           "tls_server_config.cert_file: no such file", "nope.crt")
    _fails(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n",
           "tls_server_config.key_file: is required")


def test_mismatched_key_fails_at_load(tmp_path: Path, pki: PKI) -> None:
    _fails(tmp_path, f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.client_key}\n",
           "tls_server_config.cert_file/key_file: cannot load")


def test_not_a_certificate(tmp_path: Path, pki: PKI) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    _fails(tmp_path, f"tls_server_config:\n  cert_file: {garbage}\n  key_file: {pki.server_key}\n", "cannot load")


def test_client_auth_settings(tmp_path: Path, pki: PKI) -> None:
    head = f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    _fails(tmp_path, head + "  client_auth_type: RequireAndVerifyClientCert\n",
           "tls_server_config.client_ca_file: is required")
    _fails(tmp_path, head + "  client_auth_type: RequestClientCert\n",
           "tls_server_config.client_auth_type: 'RequestClientCert' is not supported")
    _fails(tmp_path, head + "  min_version: SSL3\n", "tls_server_config.min_version: 'SSL3' is not one of")
    _fails(tmp_path, head + "  min_version: TLS13\n  max_version: TLS12\n", "min_version: is above max_version")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="--web.config.file: cannot read '/nonexistent/web.yml'"):
        load_web_config("/nonexistent/web.yml")
    _fails(tmp_path, "basic_auth_users: [unclosed\n", "is not valid YAML")
    _fails(tmp_path, "- a list\n", "(top level): must be a mapping")
    _fails(tmp_path, "basic_auth_users: a-string\n", "basic_auth_users: must be a mapping")


@pytest.mark.parametrize("header", [
    None, "", "Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b"alice:wrong").decode(), "Basic " + base64.b64encode(b"eve:secret").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
])
def test_basic_auth_rejects_bad_headers(header: str | None) -> None:
    auth = BasicAuth({"alice": bcrypt_hash("secret")})
    assert auth.check(header) is False


def test_basic_auth_accepts_the_right_password_in_any_case_of_scheme() -> None:
    auth = BasicAuth({"alice": bcrypt_hash("s3cr:et")})  # a colon inside the password is fine
    token = base64.b64encode(b"alice:s3cr:et").decode()
    assert auth.check("Basic " + token) is True
    assert auth.check("basic " + token) is True


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_htpasswd_and_bcrypt_prefixes_are_accepted(tmp_path: Path, prefix: str) -> None:
    hashed = bcrypt_hash("pw").replace("$2b$", prefix)
    config = _load(tmp_path, f"basic_auth_users:\n  alice: '{hashed}'\n")
    auth = config.basic_auth()
    assert auth is not None and auth.check("Basic " + base64.b64encode(b"alice:pw").decode())
