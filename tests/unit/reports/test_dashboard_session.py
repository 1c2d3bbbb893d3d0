"""Dashboard session cookies: signed with the admin key, expiring, not forgeable."""

from __future__ import annotations

from router.api.dashboard import SESSION_S, session_token, session_valid


def test_session_round_trip_and_expiry() -> None:
    token = session_token("admin-secret", 1000.0)
    assert "admin-secret" not in token
    assert session_valid("admin-secret", token, 1000.0)
    assert session_valid("admin-secret", token, 1000.0 + SESSION_S - 1)
    assert not session_valid("admin-secret", token, 1000.0 + SESSION_S)


def test_session_rejects_other_keys_and_tampering() -> None:
    token = session_token("admin-secret", 1000.0)
    assert not session_valid("rotated", token, 1000.0)
    _, expiry, mac = token.split(".")
    assert not session_valid("admin-secret", f"v1.{int(expiry) + 9999}.{mac}", 1000.0)
    for bad in (None, "", "v1", "v1.x.y", "v2." + token[3:], token + "0"):
        assert not session_valid("admin-secret", bad, 1000.0)
