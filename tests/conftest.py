"""Shared fixtures: the embedded Redis server (see tests/redis_fixtures.py)."""

from __future__ import annotations

import os

# Nothing may reach a model hub; litellm must use its bundled price map.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from tests.redis_fixtures import *  # noqa: F403


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clock-shift-days",
        type=float,
        default=0.0,
        help="run tests marked 'clock' with this process's clock moved this many days ahead",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every unit test joins the clock-shift check (``-m clock``): they are quick, and a time bomb
    hides as easily in a pure function's test as in an integration test."""
    for item in items:
        if item.nodeid.startswith("tests/unit/"):
            item.add_marker(pytest.mark.clock)


@pytest.fixture(autouse=True)
def _shifted_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """With ``--clock-shift-days N``, a ``clock`` test runs with wall-clock time N days ahead.

    Only this process's wall clock moves (``time.time``, ``datetime.now``; ``monotonic`` and
    sleeps are untouched). Child processes and the Redis server keep the real date.
    """
    days = float(request.config.getoption("--clock-shift-days"))
    if not days or request.node.get_closest_marker("clock") is None:
        yield
        return
    with time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True):
        yield


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own ``ROUTER_DATA_DIR``: a gateway's ledger spool (and embedded
    Redis) must never carry records from one test into another's Redis."""
    monkeypatch.setenv("ROUTER_DATA_DIR", str(tmp_path / "router-data"))
    yield
