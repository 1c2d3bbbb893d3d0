"""The clock-shift check moves the clock it claims to move (so it can never pass vacuously)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest


def test_wall_clock_is_ahead_by_the_configured_shift(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    shift_s = float(request.config.getoption("--clock-shift-days")) * 86400
    probe = tmp_path / "probe"
    probe.touch()
    kernel_now_s = probe.stat().st_mtime  # the file system's clock is never shifted
    assert abs(time.time() - kernel_now_s - shift_s) < 60
    assert abs(datetime.now(UTC).timestamp() - kernel_now_s - shift_s) < 60
