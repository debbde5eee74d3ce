"""The shared bearer-token reading and comparison (service.core.auth)."""

from __future__ import annotations

import pytest

from service.core.auth import authorized, read_token


def test_read_token_from_env_or_file(tmp_path):
    assert read_token({}) is None
    assert read_token({"SERVICE_AUTH_TOKEN": "  abc \n"}) == "abc"
    (tmp_path / "t").write_text("from-file\n")
    env = {"SERVICE_AUTH_TOKEN_FILE": str(tmp_path / "t")}
    assert read_token(env) == "from-file"
    assert read_token({**env, "SERVICE_AUTH_TOKEN": "wins"}) == "wins"
    (tmp_path / "empty").write_text("\n")
    assert read_token({"SERVICE_AUTH_TOKEN_FILE": str(tmp_path / "empty")}) is None
    with pytest.raises(FileNotFoundError):
        read_token({"SERVICE_AUTH_TOKEN_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(("header", "ok"), [
    ("Bearer abc", True), ("Bearer abcd", False), ("Bearer ", False), ("abc", False),
    ("bearer abc", True), (None, False), ("", False)])
def test_authorized(header, ok):
    assert authorized("abc", header) is ok
