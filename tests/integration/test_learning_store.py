"""The learning loop's Redis state: shadow budget, labels, versioned heads, one learn round."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis.asyncio as aredis

from router.classify.inputs import PromptText
from router.classify.trained import Scorer, shipped_model_dir
from router.learning.budget import ShadowBudget
from router.learning.heads_store import HeadStore
from router.learning.labels import Label, LabelStore
from router.learning.promote import learn_once
from router.observability.feedback import Feedback, FeedbackStore
from router.policy.schema import Policy
from router.policy.sections.classifier import ClassifierSettings

pytestmark = pytest.mark.integration


async def test_shadow_budget_is_a_daily_cap(redis_client: aredis.Redis) -> None:
    budget = ShadowBudget(redis_client)
    assert await budget.reserve(0.6, 1.0, "20260101")
    assert not await budget.reserve(0.6, 1.0, "20260101")  # would pass the cap
    await budget.settle(0.6, 0.1, "20260101")  # the calls cost less than reserved
    assert await budget.spent_usd("20260101") == pytest.approx(0.1)
    assert await budget.reserve(0.6, 1.0, "20260101")
    assert await budget.reserve(0.6, 1.0, "20260102")  # a new day
    assert not await budget.reserve(0.01, 0.0, "20260103")  # a zero cap shadows nothing


async def test_labels_round_trip_and_feedback_joins(redis_client: aredis.Redis) -> None:
    store = LabelStore(redis_client)
    msgs = [{"role": "user", "content": "hello"}]
    lab = Label("r1", "shadow", 1, time.time(), 0.3, "h", 2, msgs, {"strong_score": "1.0"})
    await store.add(lab, 3600)
    await store.add(Label("r2", "shadow", 0, time.time(), 0.8, "h", 5, None), 3600)
    fb = FeedbackStore(redis_client)
    facts = {"model": "m", "score": "0.4", "messages": orjson.dumps(msgs).decode()}
    await fb.put("t", facts, Feedback("r2", None, None, True, None), 3600)
    got = await store.all()
    assert [(g.request_id, g.source, g.label) for g in got] == [("r1", "shadow", 1),
                                                                ("r2", "feedback", 1)]  # fmt: skip
    assert got[0].messages == msgs and got[0].gain == 1.0 and got[1].gain == 1.0


async def test_heads_promote_and_roll_back(redis_client: aredis.Redis, tmp_path: Path) -> None:
    store = HeadStore(redis_client)
    assert await store.current() is None
    v1, v2 = await store.new_version(), await store.new_version()
    await store.put(v1, shipped_model_dir())
    await store.put(v2, shipped_model_dir())
    await store.promote(v1, {"reason": "first"})
    await store.promote(v2, {"reason": "second"})
    assert await store.history() == [v2, v1]
    folder = await store.materialize(v2, tmp_path)
    assert (folder / "head.npz").read_bytes() == (shipped_model_dir() / "head.npz").read_bytes()
    assert await store.rollback() == (v2, v1)
    assert await store.rollback() == (v1, None)
    assert await store.rollback() == (None, None)
    actions = [e["action"] for e in await store.entries()]
    assert actions == ["rollback", "rollback", "promote", "promote"]


PROMPTS = [
    *(f"hi there, how are you today? ({i})" for i in range(20)),
    *(f"thanks! see you at {i} pm" for i in range(10)),
    *(
        f"Prove that for every integer n > {i}, the sum of the first n odd numbers is n^2, "
        "then write a Python function that checks it and analyse its complexity."
        for i in range(20)
    ),
    *(f"Refactor this SQL query {i} to avoid the N+1 problem and explain each step." for i in
      range(10)),
]  # fmt: skip


def _policy() -> Policy:
    return Policy.model_validate(
        {
            "models": [{"name": "m", "backend": "local"}],
            "learning": {"min_new_labels": 20, "folds": 4, "min_gain": 0.01},
        }
    )


async def _labels(redis: aredis.Redis, gain: np.ndarray[Any, Any]) -> None:
    store = LabelStore(redis)
    for i, (p, g) in enumerate(zip(PROMPTS, gain, strict=True)):
        msgs = [{"role": "user", "content": p}]
        extra = {"strong_score": repr((1 + float(g)) / 2)}
        await store.add(Label(f"r{i}", "shadow", int(g > 0), time.time(), None, "", 10, msgs,
                              extra), 3600)  # fmt: skip


def _shipped_scores() -> np.ndarray[Any, Any]:
    scorer = Scorer.load(ClassifierSettings(device="cpu"))
    try:
        scored = scorer.score_prompts([PromptText(user=p) for p in PROMPTS])
        return np.asarray([s.score for s in scored])
    finally:
        scorer.encoder.close()


async def test_learn_refuses_a_head_that_is_not_better(redis_client: aredis.Redis) -> None:
    scores = _shipped_scores()
    # Labels that agree with the serving head's own ranking: no candidate can beat it.
    await _labels(redis_client, (scores > np.median(scores)).astype(np.float64))
    result = await learn_once(redis_client, _policy())
    assert result.action == "refused", result.as_log()
    assert result.guard is not None and result.guard.candidate_apgr <= result.guard.current_apgr
    heads = HeadStore(redis_client)
    assert await heads.current() is None
    log = await heads.entries()
    assert log[0]["action"] == "refuse"
    detail = orjson.loads(log[0]["detail"])
    assert {"current_apgr", "candidate_apgr", "length_apgr"} <= set(detail)
    again = await learn_once(redis_client, _policy())  # no new labels since
    assert again.action == "skipped"


async def test_learn_promotes_a_head_that_fixes_the_labels(
    redis_client: aredis.Redis, tmp_path: Path
) -> None:
    scores = _shipped_scores()
    # The deployment disagrees with the serving head: its low scorers needed the strong model.
    await _labels(redis_client, (scores < np.median(scores)).astype(np.float64))
    dry = await learn_once(redis_client, _policy(), promote=False)
    assert dry.action == "dry-run" and await HeadStore(redis_client).entries() == []
    shipped = tmp_path / "shipped.jsonl"  # a stand-in for the shipped data files
    weak, strong = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
    shipped.write_text("".join(
        orjson.dumps({"id": f"s{i}", "prompt": p, "scores": {weak: 1.0, strong: 1.0 - i % 2}})
        .decode() + "\n" for i, p in enumerate(PROMPTS[:20])
    ))  # fmt: skip
    # the labels are still new after the dry run
    result = await learn_once(redis_client, _policy(), base_data=[shipped])
    assert result.action == "promoted", result.as_log()
    assert result.guard is not None
    assert result.guard.candidate_apgr > result.guard.current_apgr + 0.01
    heads = HeadStore(redis_client)
    assert await heads.current() == result.version
    head = await heads.get(result.version or "")
    assert head is not None and head.metadata["source"] == f"learned@{result.version}"
    assert orjson.loads((await heads.entries())[0]["detail"])["shipped_rows"] == 20


async def test_reports_show_routing_quality(redis_client: aredis.Redis) -> None:
    from router.reports.render_html import render_html
    from router.reports.render_text import render_json, render_table
    from router.reports.source import build_report

    store = LabelStore(redis_client)
    now = time.time()
    for i in range(20):
        needed = i % 2 == 0
        # The serving head scored the prompts that needed the strong tier higher; length did not.
        score, tokens = (0.8 if needed else 0.2), 10 + (i * 7) % 13
        extra = {"strong_score": "1.0" if needed else "0.5"}
        await store.add(Label(f"r{i}", "shadow", int(needed), now, score, "head-a", tokens,
                              None, extra), 3600)  # fmt: skip
    report = await build_report(redis_client, now - 60, now + 60)
    q = report.quality
    assert q is not None
    assert (q["labels"], q["shadow"], q["strong_better"], q["head"]) == (20, 20, 10, "head-a")
    assert q["head_apgr"] > q["length_apgr"]
    lead = q["head_minus_length"]
    assert lead["delta"] == pytest.approx(q["head_apgr"] - q["length_apgr"], abs=2e-4)
    assert 0 < lead["low"] <= lead["delta"] <= lead["high"]  # the head sorts every label right
    assert q["curve"]["strong_share"][0] == 0.0 and len(q["curve"]["head"]) == 11
    assert q["serving_version"] == "policy"
    assert "Routing quality" in render_table(report) and "head - length" in render_table(report)
    assert 'id="routing-quality"' in render_html(report)
    assert orjson.loads(render_json(report))["routing_quality"]["labels"] == 20


async def test_train_from_ledger_includes_shadow_labels(
    redis_client: aredis.Redis, redis_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import asyncio

    from router.classify.dataset import load_outcomes
    from router.learning.feedback_rows import ledger_training_data

    store = LabelStore(redis_client)
    msgs = [{"role": "user", "content": "prove it"}]
    await store.add(Label("s1", "shadow", 0, time.time(), 0.9, "h", 2, msgs,
                          {"strong_score": "0.0", "route": "auto"}), 3600)  # fmt: skip
    await store.add(Label("s2", "shadow", 1, time.time(), 0.1, "h", 2, None), 3600)  # no prompt
    monkeypatch.setenv("REDIS_URL", redis_server)
    args = argparse.Namespace(data=[], from_ledger=True, out=tmp_path, weak_model="W",
                              strong_model="S")  # fmt: skip
    data = await asyncio.to_thread(ledger_training_data, args)
    assert data is not None and len(data) == 1
    rows = [orjson.loads(line) for line in data[0].read_bytes().splitlines()]
    assert [(r["id"], r["scores"]) for r in rows] == [("shadow/-/s1", {"W": 1.0, "S": 0.0})]
    outcomes = load_outcomes(data, "W", "S")
    assert (outcomes.strong - outcomes.weak).tolist() == [-1.0]  # the weak answer won


class _Loaded:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy


class _Policies:
    def __init__(self, policy: Policy) -> None:
        self.current = _Loaded(policy)


class _Replica:
    """The two things the learning runtime needs from ``Services``."""

    def __init__(self, policy: Policy) -> None:
        self.policies = _Policies(policy)
        self.swapped: list[str | None] = []

    async def swap_head(self, model_dir: str | None) -> None:
        self.swapped.append(model_dir)


def _no_backend(model: Any) -> Any:
    raise AssertionError(f"no shadow call expected (asked for {model})")


async def test_the_background_job_promotes_and_the_replica_swaps(
    redis_client: aredis.Redis,
) -> None:
    import asyncio

    from router.learning.runtime import LearningRuntime
    from router.tasks import Tasks

    scores = _shipped_scores()
    await _labels(redis_client, (scores < np.median(scores)).astype(np.float64))
    policy = Policy.model_validate(
        {
            "models": [{"name": "m", "backend": "local"}],
            "learning": {"background": True, "interval_s": 1, "min_new_labels": 20, "folds": 4,
                         "head_poll_s": 0.1},
        }
    )  # fmt: skip
    replica = _Replica(policy)
    runtime = await LearningRuntime.start(
        redis_client,
        current_policy=lambda: replica.policies.current.policy,
        swap_head=replica.swap_head,
        backend_for=_no_backend,
        ledger=None,
        tasks=Tasks(),
    )
    try:
        for _ in range(1200):  # the job runs after interval_s, then the watcher swaps
            if runtime.serving == "v1":
                break
            await asyncio.sleep(0.05)
        assert runtime.serving == "v1"
        assert replica.swapped and str(replica.swapped[-1]).endswith("v1")
        # The watcher may swap while the round is still cleaning up, so the lock is released
        # shortly after the swap, not before it.
        for _ in range(200):
            if await redis_client.get("rl:{learn}:lock") is None:
                break
            await asyncio.sleep(0.05)
        assert await redis_client.get("rl:{learn}:lock") is None  # released after the round
    finally:
        await runtime.aclose()


async def test_the_job_lock_is_released_only_by_its_owner(redis_client: aredis.Redis) -> None:
    from router.learning.runtime import _RELEASE_LOCK
    from router.redis import keys as lk

    await redis_client.set(lk.lock_key(), "other-replica", ex=60)
    assert await redis_client.eval(_RELEASE_LOCK, 1, lk.lock_key(), "expired-round") == 0
    assert await redis_client.get(lk.lock_key()) is not None
    assert await redis_client.eval(_RELEASE_LOCK, 1, lk.lock_key(), "other-replica") == 1
    assert await redis_client.get(lk.lock_key()) is None
