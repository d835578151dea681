"""``--web.config.file``: TLS and basic auth in the Prometheus exporter-toolkit format.

The same file an operator already writes for node_exporter or postgres_exporter works here::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
    http_server_config:
      headers: {X-Content-Type-Options: nosniff}

Keys are checked strictly (an unknown key is a typo that would silently weaken security);
keys of the format that stackwatch does not implement are rejected by name rather than
ignored. As with exporter-toolkit, changes apply without a restart (so certificates can be
rotated): :class:`WebConfigFile` re-reads the file, at most once a second, when it or a
certificate/key file it names has changed. A new version that does not pass the checks is
logged and ignored (the server keeps the last good one, never falls back to no auth), and
so is one that would turn TLS on or off, which needs a restart.

bcrypt is slow by design (~70 ms at cost 10), so, as exporter-toolkit does, successful
verifications are cached (keyed by a SHA-256 of user, hash and password; never the
password itself) and a scrape every few seconds costs one hash lookup. Failed attempts are
never cached, and an unknown user is checked against a dummy hash so that timing does not
tell which users exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from stackwatch.core.options import OptionError, read_yaml

log = logging.getLogger("stackwatch.exporters")

__all__ = [
    "ActiveWebConfig",
    "BasicAuth",
    "TLSSettings",
    "WebConfig",
    "WebConfigFile",
    "load_web_config",
]

_OPTION = "--web.config.file"
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
_TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
_UNSUPPORTED = {"rate_limit", "cert", "key", "client_ca", "client_allowed_sans", "cipher_suites",
                "prefer_server_cipher_suites", "curve_preferences"}
_HEADERS = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
            "Strict-Transport-Security"}
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# exporter-toolkit's client_auth_type values that Python's ssl module can honour
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_CACHE_SIZE = 1024


def _error(key: str, message: str) -> OptionError:
    return OptionError(f"{_OPTION}: {key}: {message}")


@dataclass(frozen=True)
class TLSSettings:
    """Resolved ``tls_server_config`` (paths made absolute)."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"

    def context(self) -> ssl.SSLContext:
        """A server context; errors name the key whose file is bad."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _VERSIONS[self.min_version]
        context.maximum_version = _VERSIONS[self.max_version]
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as error:
            raise _error("tls_server_config.cert_file/key_file",
                         f"cannot load {str(self.cert_file)!r} with {str(self.key_file)!r}: "
                         f"{getattr(error, 'strerror', None) or error}") from None
        context.verify_mode = _CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(self.client_ca_file))
            except (ssl.SSLError, OSError) as error:
                raise _error("tls_server_config.client_ca_file",
                             f"cannot load {str(self.client_ca_file)!r}: "
                             f"{getattr(error, 'strerror', None) or error}") from None
        return context


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes, caching successes."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._dummy = bcrypt.hashpw(b"stackwatch", bcrypt.gensalt(rounds=10))
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        """Whether the header carries a known user and the right password."""
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join([user.encode(), hashed or b"", password.encode()])).digest()
        with self._lock:
            if hashed is not None and key in self._cache:
                self._cache.move_to_end(key)
                return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed or self._dummy) and hashed is not None
        except ValueError:  # a hash bcrypt cannot parse despite its shape: deny, never crash
            return False
        if ok:
            with self._lock:
                self._cache[key] = None
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        return ok


@dataclass(frozen=True)
class WebConfig:
    """What the HTTP server needs: a TLS context, a basic-auth checker, extra headers."""

    tls: TLSSettings | None = None
    users: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        return None if self.tls is None else self.tls.context()

    def basic_auth(self) -> BasicAuth | None:
        return BasicAuth(self.users) if self.users else None

    def activate(self) -> ActiveWebConfig:
        return ActiveWebConfig(self.ssl_context(), self.basic_auth(), dict(self.headers))

    def files(self) -> list[Path]:
        """Every file this config depends on besides itself (watched for changes)."""
        if self.tls is None:
            return []
        return [p for p in (self.tls.cert_file, self.tls.key_file, self.tls.client_ca_file) if p is not None]


@dataclass(frozen=True)
class ActiveWebConfig:
    """A checked config made ready to serve: TLS context, basic-auth checker, extra headers."""

    tls: ssl.SSLContext | None = None
    auth: BasicAuth | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _stamp(path: str, config: WebConfig) -> tuple[tuple[object, ...], ...]:
    """Path, mtime and size of the config file and every file it names (missing: path only)."""
    stamps: list[tuple[object, ...]] = []
    for file in [Path(path), *config.files()]:
        try:
            info = os.stat(file)
            stamps.append((str(file), info.st_mtime_ns, info.st_size))
        except OSError:
            stamps.append((str(file),))
    return tuple(stamps)


class WebConfigFile:
    """``--web.config.file``, re-read when it or a file it names changes (checked at most every
    ``check_every`` seconds, on the request path: one ``stat`` per file)."""

    def __init__(self, path: str, check_every: float = 1.0) -> None:
        self.path = path
        self.check_every = check_every
        self.config = load_web_config(path)
        self._active = self.config.activate()
        self._stamp = _stamp(path, self.config)
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def current(self) -> ActiveWebConfig:
        """The config to serve this connection or request with."""
        if time.monotonic() - self._checked >= self.check_every:
            with self._lock:
                if time.monotonic() - self._checked >= self.check_every:
                    self._reload_if_changed()
                    self._checked = time.monotonic()
        return self._active

    def _reload_if_changed(self) -> None:
        stamp = _stamp(self.path, self.config)
        if stamp == self._stamp:
            return
        self._stamp = stamp  # a bad version is reported once, not on every request
        try:
            config = load_web_config(self.path)
            active = config.activate()
        except OptionError as error:
            log.error("%s; keeping the previous web config", error)
            return
        if (config.tls is None) != (self.config.tls is None):
            log.error("%s: turning TLS on or off needs a restart; keeping the previous web config", _OPTION)
            return
        self.config, self._active, self._stamp = config, active, _stamp(self.path, config)
        log.info("%s: reloaded %s", _OPTION, self.path)


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _check_keys(section: dict[str, Any], known: set[str], prefix: str) -> None:
    for key in section:
        where = f"{prefix}{key}"
        if key in _UNSUPPORTED:
            raise _error(where, "is part of the exporter-toolkit format but not supported by stackwatch")
        if key not in known:
            raise _error(where, f"unknown key (known: {', '.join(sorted(known))})")


def _path(base: Path, value: Any, key: str, required: bool) -> Path | None:
    if value in (None, ""):
        if required:
            raise _error(key, "is required")
        return None
    path = Path(str(value))
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise _error(key, f"no such file {str(path)!r}")
    return path


def _tls(section: dict[str, Any], base: Path) -> TLSSettings:
    _check_keys(section, _TLS_KEYS, "tls_server_config.")
    prefix = "tls_server_config."
    cert = _path(base, section.get("cert_file"), prefix + "cert_file", True)
    key = _path(base, section.get("key_file"), prefix + "key_file", True)
    auth = str(section.get("client_auth_type") or "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise _error(prefix + "client_auth_type", f"{auth!r} is not supported; use one of {', '.join(_CLIENT_AUTH)}")
    ca = _path(base, section.get("client_ca_file"), prefix + "client_ca_file", auth != "NoClientCert")
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        versions[name] = str(section.get(name) or default)
        if versions[name] not in _VERSIONS:
            raise _error(prefix + name, f"{versions[name]!r} is not one of {', '.join(_VERSIONS)}")
    if _VERSIONS[versions["min_version"]] > _VERSIONS[versions["max_version"]]:
        raise _error(prefix + "min_version", "is above max_version")
    assert cert is not None and key is not None
    return TLSSettings(cert, key, auth, ca, versions["min_version"], versions["max_version"])


def _users(section: dict[str, Any]) -> dict[str, str]:
    users = {}
    for user, hashed in section.items():
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            raise _error(f"basic_auth_users.{user}", "is not a bcrypt hash (expected $2y$<cost>$...; "
                         "make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)")
        users[str(user)] = hashed
    return users


def _headers(section: dict[str, Any]) -> dict[str, str]:
    _check_keys(section, {"headers", "http2"}, "http_server_config.")
    headers = _mapping(section.get("headers"), "http_server_config.headers")
    for name in headers:
        if name not in _HEADERS:
            raise _error(f"http_server_config.headers.{name}", f"unknown header (known: {', '.join(sorted(_HEADERS))})")
    return {str(k): str(v) for k, v in headers.items() if v}


def load_web_config(path: str) -> WebConfig:
    """Parse and check the web config file; raises OptionError naming the bad key."""
    document = read_yaml(path, _OPTION)
    top = _mapping(document, "(top level)")
    _check_keys(top, _TOP_KEYS, "")
    base = Path(path).resolve().parent
    tls_section = _mapping(top.get("tls_server_config"), "tls_server_config")
    config = WebConfig(
        tls=_tls(tls_section, base) if tls_section else None,
        users=_users(_mapping(top.get("basic_auth_users"), "basic_auth_users")),
        headers=_headers(_mapping(top.get("http_server_config"), "http_server_config")),
    )
    config.ssl_context()  # load the certificate now, so a bad one fails at startup
    return config
