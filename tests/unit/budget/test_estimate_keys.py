"""Worst-case estimates, window ids, rate-limit headers and policy parsing (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from router.budget.estimate import (
    input_tokens_upper_bound,
    output_tokens_upper_bound,
    worst_case_usd,
)
from router.budget.ratelimit import LimitScope, RateState, rate_headers
from router.policy.schema import ModelSpec
from router.policy.sections.budgets import BudgetSettings
from router.protocol.chat_request import parse_chat_request
from router.redis import keys as bk


def _model(name: str, inp: float, out: float, max_out: int = 1000) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": name,
            "backend": "openai_compat",
            "price": {"input_usd_per_mtok": inp, "output_usd_per_mtok": out},
            "capabilities": {"max_output_tokens": max_out},
        }
    )


def test_input_bound_is_at_least_the_utf8_bytes() -> None:
    req = parse_chat_request(b'{"model":"m","messages":[{"role":"user","content":"h\\u00e9llo"}]}')
    # "héllo" is 6 UTF-8 bytes; plus 8 per message and 3 for the reply priming
    assert input_tokens_upper_bound(req) == 6 + 8 + 3


def test_output_bound_uses_request_limit_capped_by_model_and_n() -> None:
    m = _model("a", 1, 1, max_out=500)
    req = parse_chat_request(b'{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}')
    assert output_tokens_upper_bound(req, m) == 1000  # model max x n
    req = parse_chat_request(
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":100}'
    )
    assert output_tokens_upper_bound(req, m) == 100
    req = parse_chat_request(
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":9000}'
    )
    assert output_tokens_upper_bound(req, m) == 500


def test_worst_case_takes_the_priciest_fallback() -> None:
    req = parse_chat_request(
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":100}'
    )
    cheap, dear = _model("a", 1.0, 2.0), _model("b", 3.0, 15.0)
    upper = input_tokens_upper_bound(req)
    assert worst_case_usd(req, (cheap, dear), upper) == pytest.approx(
        (upper * 3.0 + 100 * 15.0) / 1e6
    )


def test_window_ids_and_resets() -> None:
    t = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)  # a Monday
    assert bk.window_id("day", t) == "d20261123"
    assert bk.window_id("week", t) == "w2026-48"
    assert bk.window_id("month", t) == "m202611"
    assert bk.window_id("total", t) == "total"
    assert bk.window_reset_s("day", t) == 13.5 * 3600
    assert bk.window_reset_s("month", t) == (7 * 24 + 13.5) * 3600
    assert bk.scope_key("k:key_1", "day", t) == "rb:{budget}:s:k:key_1:d20261123"


def test_scope_names_never_break_the_hash_tag() -> None:
    assert bk.scope_name("t", "search") == "t:search"
    odd = bk.scope_name("t", "a,b}{c")
    assert "{" not in odd and "," not in odd and odd.startswith("t:h-")
    assert bk.scope_name("g") == "g"


def test_nano_dollars_round_trip() -> None:
    assert bk.to_nano(0.000315) == 315_000
    assert bk.from_nano(315_000) == pytest.approx(0.000315)


def test_rate_headers_report_the_tightest_scope() -> None:
    key = LimitScope("k:a", "key a", rpm=10, tpm=1000)
    team = LimitScope("t:x", "team x", rpm=100, tpm=500)
    h = rate_headers([RateState(key, 4, 100), RateState(team, 50, 450)], 12.5)
    assert h["x-ratelimit-limit-requests"] == "10"
    assert h["x-ratelimit-remaining-requests"] == "6"
    assert h["x-ratelimit-limit-tokens"] == "500"
    assert h["x-ratelimit-remaining-tokens"] == "50"
    assert h["x-ratelimit-reset-requests"] == "12.5s"


def test_budget_settings_parse_and_reject_unknown_keys() -> None:
    s = BudgetSettings.model_validate(
        {
            "global": {"limit_usd": 100, "window": "month"},
            "teams": {"search": {"limit_usd": 5, "window": "day", "rpm": 60}},
            "action": "downgrade",
            "soft_limit_percent": 80,
            "on_store_error": "fail_open",
        }
    )
    assert s.global_ is not None and s.global_.limit_usd == 100
    assert s.teams["search"].rpm == 60
    with pytest.raises(ValidationError):
        BudgetSettings.model_validate({"action": "explode"})
    with pytest.raises(ValidationError):
        BudgetSettings.model_validate({"teams": {"x": {"limit": 1}}})
