"""Shared fixtures: the embedded Redis server (see tests/redis_fixtures.py)."""

from __future__ import annotations

import os

# Nothing may reach a model hub; litellm must use its bundled price map.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_fixtures import *  # noqa: F403


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own ``ROUTER_DATA_DIR``: a gateway's ledger spool (and embedded
    Redis) must never carry records from one test into another's Redis."""
    monkeypatch.setenv("ROUTER_DATA_DIR", str(tmp_path / "router-data"))
    yield
