"""Settings: standard env vars, keyword overrides, clear errors with secrets redacted."""

from __future__ import annotations

import pytest

from stackwatch.instrumentation import ConfigError, Settings


def test_defaults():
    settings = Settings.resolve({})
    assert settings.service_name == "unknown_service"
    assert settings.sampler == "parentbased_traceidratio" and settings.sampler_arg == 1.0
    assert settings.traces_endpoint is None
    assert settings.sentry_dsn is None
    assert settings.metrics_path == "/metrics" and settings.metrics_port is None
    assert settings.n_plus_one_threshold >= 1


def test_standard_environment_variables():
    env = {
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_TRACES_SAMPLER": "traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "SENTRY_DSN": "https://key@sentry.example/42",
        "SENTRY_ENVIRONMENT": "prod",
        "SENTRY_RELEASE": "shop@2",
        "SENTRY_TRACES_SAMPLE_RATE": "0.1",
        "STACKWATCH_METRICS_PORT": "9464",
        "STACKWATCH_N_PLUS_ONE_THRESHOLD": "8",
        "STACKWATCH_N_PLUS_ONE_STRICT": "true",
    }
    settings = Settings.resolve(env)
    assert settings.service_name == "shop"
    assert settings.traces_endpoint == "http://collector:4318/v1/traces"
    assert settings.sampler == "traceidratio" and settings.sampler_arg == 0.25
    assert settings.sentry_dsn == "https://key@sentry.example/42"
    assert (settings.sentry_environment, settings.sentry_release) == ("prod", "shop@2")
    assert settings.sentry_traces_sample_rate == 0.1
    assert settings.metrics_port == 9464
    assert settings.n_plus_one_threshold == 8 and settings.n_plus_one_strict is True


def test_signal_specific_endpoint_is_used_as_is():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/custom"}
    assert Settings.resolve(env).traces_endpoint == "http://b:4318/custom"


def test_lists_and_sets_from_the_environment_or_keywords():
    env = {"STACKWATCH_SENTRY_FAILED_REQUEST_STATUS_CODES": "500-503, 429",
           "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": " x-tenant ,, x-request-.* "}
    settings = Settings.resolve(env)
    assert settings.sentry_failed_request_status_codes == {429, 500, 501, 502, 503}
    assert settings.capture_request_headers == ("x-tenant", "x-request-.*")
    assert Settings.resolve({}).sentry_failed_request_status_codes == set(range(500, 600))
    by_keyword = Settings.resolve(env, sentry_failed_request_status_codes={502}, capture_request_headers=["x-a"])
    assert by_keyword.sentry_failed_request_status_codes == {502}
    assert by_keyword.capture_request_headers == ("x-a",)
    with pytest.raises(ConfigError, match="sentry_failed_request_status_codes: .* got \\[700\\]"):
        Settings.resolve({}, sentry_failed_request_status_codes=[700])


def test_otlp_protocol_signal_specific_wins():
    assert Settings.resolve({}).traces_protocol == "http/protobuf"
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    assert Settings.resolve(env).traces_protocol == "http/protobuf"
    assert Settings.resolve({"OTEL_EXPORTER_OTLP_PROTOCOL": "GRPC"}).traces_protocol == "grpc"


def test_keyword_arguments_win_over_the_environment():
    settings = Settings.resolve({"OTEL_SERVICE_NAME": "env", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
                                service_name="kw", sampler_arg=0.1, metrics_port="9000")
    assert settings.service_name == "kw"
    assert settings.sampler_arg == 0.1
    assert settings.metrics_port == 9000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG: expected a number between 0 and 1, got 'lots'"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER: expected one of"),
        ({"STACKWATCH_METRICS_PORT": "70000"}, "STACKWATCH_METRICS_PORT: expected a TCP port"),
        ({"STACKWATCH_N_PLUS_ONE_THRESHOLD": "0"}, "STACKWATCH_N_PLUS_ONE_THRESHOLD: expected a positive integer"),
        ({"STACKWATCH_HEALTH_TIMEOUT": "-1"}, "STACKWATCH_HEALTH_TIMEOUT"),
        # the exporter's and the check's duration parsers: inf and nan are no durations
        ({"STACKWATCH_HEALTH_TIMEOUT": "nan"}, "STACKWATCH_HEALTH_TIMEOUT: expected a positive number of seconds"),
        ({"STACKWATCH_HEALTH_TIMEOUT": "inf"}, "STACKWATCH_HEALTH_TIMEOUT: expected a positive number of seconds"),
        ({"STACKWATCH_N_PLUS_ONE_MIN_DURATION": "inf"}, "STACKWATCH_N_PLUS_ONE_MIN_DURATION: expected a number of "
                                                       "seconds >= 0, got 'inf'"),
        ({"STACKWATCH_EVENT_LOOP_BLOCK_THRESHOLD": "0"},
         "STACKWATCH_EVENT_LOOP_BLOCK_THRESHOLD: expected a positive number of seconds, got '0'"),
        ({"STACKWATCH_HEALTH_INTERVAL": "soon"}, "STACKWATCH_HEALTH_INTERVAL"),
        ({"STACKWATCH_TRACES": "maybe"}, "STACKWATCH_TRACES: expected true/false, got 'maybe'"),
        ({"STACKWATCH_METRICS_PATH": "metrics"}, "STACKWATCH_METRICS_PATH: expected a path starting with '/'"),
    ],
)
def test_bad_values_name_the_key_and_value(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.resolve(env)


def test_secrets_are_redacted_in_errors():
    with pytest.raises(ConfigError) as error:
        Settings.resolve({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://user:topsecret@collector"})
    assert "topsecret" not in str(error.value)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in str(error.value)
    with pytest.raises(ConfigError) as error:
        Settings.resolve({"SENTRY_DSN": "sentry.example/topsecret:pw"})
    assert "SENTRY_DSN" in str(error.value)


def test_unknown_keyword_is_an_error():
    with pytest.raises(ConfigError, match="unknown setting.*servce_name"):
        Settings.resolve({}, servce_name="typo")


def test_multiprocess_dir_set_only_in_code_is_refused(tmp_path, registry):
    from stackwatch.instrumentation import instrument

    from .apps import make_app

    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR"):
        instrument(make_app(), registry=registry, multiproc_dir=str(tmp_path), environ={})
