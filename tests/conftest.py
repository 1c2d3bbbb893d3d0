"""Shared fixtures: the embedded Redis server (see tests/redis_fixtures.py)."""

from __future__ import annotations

import os

# Nothing may reach a model hub; litellm must use its bundled price map.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.redis_fixtures import *  # noqa: F403
