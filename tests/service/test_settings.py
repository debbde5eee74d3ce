"""Settings from the environment: defaults, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.app import create_app
from service.config import Settings, SettingsError


def test_defaults():
    s = Settings.from_env({})
    assert s.artifacts_dir == Path("artifacts") and s.port == 8000 and s.grpc_port == 8001
    assert s.max_instances == 1024 and s.log_level == "INFO" and s.blas_threads == 1
    assert s.header_timeout == 5 and s.keepalive_timeout == 75
    assert s.worker_count >= 1


def test_environment_and_overrides():
    env = {"SERVICE_ARTIFACTS_DIR": "/models", "PORT": "9000", "WEB_CONCURRENCY": "3",
           "SERVICE_MAX_BODY_BYTES": "1_000_000", "SERVICE_MAX_INSTANCES": "64",
           "SERVICE_LOG_LEVEL": "debug", "SERVICE_RELOAD_INTERVAL": "0.5", "GRPC_PORT": "0",
           "SERVICE_KEEPALIVE_TIMEOUT": "0"}
    s = Settings.from_env(env, overrides={"max_instances": 8, "artifacts_dir": "/other"})
    assert s.artifacts_dir == Path("/other") and s.port == 9000 and s.worker_count == 3
    assert s.max_body_bytes == 1_000_000 and s.max_instances == 8
    assert s.log_level == "DEBUG" and s.reload_interval == 0.5 and s.grpc_port == 0
    assert s.keepalive_timeout == 0  # keep-alive off


@pytest.mark.parametrize("env,match", [
    ({"PORT": "http"}, "PORT must be an integer"),
    ({"PORT": "70000"}, "PORT must be a TCP port"),
    ({"WEB_CONCURRENCY": "-1"}, "WEB_CONCURRENCY"),
    ({"SERVICE_MAX_INSTANCES": "0"}, "SERVICE_MAX_INSTANCES must be a positive"),
    ({"SERVICE_MAX_BODY_BYTES": "10"}, "SERVICE_MAX_BODY_BYTES"),
    ({"SERVICE_LOG_LEVEL": "LOUD"}, "SERVICE_LOG_LEVEL must be one of"),
    ({"SERVICE_RELOAD_INTERVAL": "soon"}, "SERVICE_RELOAD_INTERVAL must be a number"),
    ({"SERVICE_BLAS_THREADS": "0"}, "SERVICE_BLAS_THREADS"),
    ({"SERVICE_KEEPALIVE_TIMEOUT": "-1"}, "SERVICE_KEEPALIVE_TIMEOUT must be a number of "
                                          "seconds between 0 .no keep-alive."),
    ({"GRPC_PORT": "-1"}, "GRPC_PORT must be a TCP port number .* or 0 for no gRPC server"),
])
def test_bad_values_name_the_variable(env, match):
    with pytest.raises(SettingsError, match=match):
        Settings.from_env(env)


def test_unknown_override_is_an_error():
    with pytest.raises(SettingsError, match="unknown setting 'max_rows'"):
        Settings.from_env({}, overrides={"max_rows": 3})


def test_create_app_reads_the_environment(monkeypatch, artifacts):
    monkeypatch.setenv("SERVICE_ARTIFACTS_DIR", str(artifacts))
    monkeypatch.setenv("SERVICE_MAX_INSTANCES", "2")
    monkeypatch.setenv("SERVICE_LOG_LEVEL", "WARNING")
    app = create_app()
    service = app.extensions["service"]
    assert service.settings.max_instances == 2
    assert list(service.registry.models) == ["housing", "mnist"]
    monkeypatch.setenv("SERVICE_MAX_INSTANCES", "many")
    with pytest.raises(SettingsError, match="SERVICE_MAX_INSTANCES"):
        create_app()
