"""The shared bearer-token comparison (service.core.auth); the token settings are
tested in tests/service/http/test_hardening_auth.py."""

from __future__ import annotations

import pytest

from service.core.auth import authorized


@pytest.mark.parametrize(("header", "ok"), [
    ("Bearer abc", True), ("Bearer abcd", False), ("Bearer ", False), ("abc", False),
    ("bearer abc", True), (None, False), ("", False)])
def test_authorized(header, ok):
    assert authorized("abc", header) is ok
