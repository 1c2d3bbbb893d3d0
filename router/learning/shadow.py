"""Shadow labels: for a sampled share of score-routed requests, ask the other tier too, judge.

The pipeline calls :func:`plan_shadow` once the route is decided; it returns a
:class:`ShadowJob` for a sampled request that may be shadowed, or None. The job collects the
served answer (a stream's deltas as they are relayed). The API hands the job to
:meth:`ShadowRunner.submit` as the response's background task, which Starlette runs only after
the last byte of the response was sent; :meth:`ShadowRunner.submit` then starts the job as a
task of its own and returns at once. So a shadowed response is the response the client would
have had without shadowing, and it is complete before any shadow call starts.

Limits: a request the privacy guard pinned local, or in which it found PII, is never shadowed;
shadow and judge calls reserve against ``learning.max_usd_per_day`` first (all replicas
together) and are written to the ledger with route ``shadow`` (no team, no key: the caller is
never billed); at most ``learning.max_concurrent`` jobs run per replica.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from router.backends.base import Backend, Target
from router.budget.pricing import model_cost_usd
from router.learning import judge as jd
from router.learning.budget import ShadowBudget
from router.learning.labels import Label, LabelStore, messages_tokens
from router.ledger.record import LedgerRecord
from router.ledger.writer import Ledger
from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest, parse_chat_request
from router.protocol.chat_response import Chunk, Completion, Usage
from router.redis import keys as lk
from router.redis.keys import utc_day
from router.route.capabilities import estimate_prompt_tokens
from router.route.decision import Plan, RouteDecision
from router.tasks import Tasks

log = structlog.get_logger("router.learning")
TASK_KIND = "shadow"
"""The kind of shadow jobs in :class:`~router.tasks.Tasks` (at most ``max_concurrent``)."""
JUDGE_OVERHEAD_TOKENS = 250
"""The judge prompt's instructions and markers, in tokens (for the spend estimate)."""


@dataclass(slots=True)
class ShadowJob:
    """One sampled request: what was served, what to ask, and who judges."""

    request_id: str
    tenant: str
    route: str
    served: ModelSpec
    other: ModelSpec
    judge: ModelSpec
    served_is_strong: bool
    score: float
    head: str
    policy_hash: str
    req: ChatRequest
    store_prompt: bool
    parts: list[str] = field(default_factory=list)
    """Content deltas of a streamed answer, as relayed."""
    served_tokens: int = 0

    def observe(self, chunk: Chunk) -> None:
        """Keep the text of one relayed stream chunk."""
        for choice in chunk.data.get("choices") or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                delta = choice.get("delta") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(text, str):
                    self.parts.append(text)

    def served_answer(self, completion: Completion | None) -> str | None:
        """The text the client got: the completion's first choice, or the relayed deltas."""
        if completion is None:
            return "".join(self.parts) or None
        return completion_text(completion.body)


def completion_text(body: dict[str, Any]) -> str | None:
    """The first choice's text content (None for a tool call or an empty answer)."""
    choices = body.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) and content else None


def _shadowable(req: ChatRequest) -> bool:
    """Plain text chat only: no tools, images, structured output or several choices."""
    return not (
        req.tools or req.has_images() or req.response_format is not None or (req.n or 1) > 1
    )


def plan_shadow(
    policy: Policy,
    req: ChatRequest,
    plan: Plan,
    decision: RouteDecision,
    score: float | None,
    head: str,
    request_id: str,
    tenant: str,
    guarded: bool,
    draw: Callable[[], float] = random.random,
) -> ShadowJob | None:
    """A job for this request when the policy samples it and it may be shadowed, else None.

    ``guarded`` is True when the privacy guard pinned the request local or found PII in it:
    such a request is never shadowed (its other tier or the judge may be hosted).
    """
    settings = policy.learning
    if settings.shadow_share <= 0 or guarded or score is None or plan.route is None:
        return None
    if settings.routes and plan.route.alias not in settings.routes:
        return None
    if plan.pinned is not None or len(plan.eligible) < 2 or not _shadowable(req):
        return None
    if draw() >= settings.shadow_share:
        return None
    weak_tier, strong_tier = plan.eligible[0], plan.eligible[-1]
    if decision.tier == weak_tier.name:
        other_name, served_is_strong = strong_tier.model, False
    elif decision.tier == strong_tier.name:
        other_name, served_is_strong = weak_tier.model, True
    else:
        return None
    other = policy.model(other_name)
    judge = policy.model(settings.judge or strong_tier.model)
    if other is None or judge is None or not other.available or not judge.available:
        return None
    return ShadowJob(
        request_id=request_id,
        tenant=tenant,
        route=plan.route.alias,
        served=decision.target,
        other=other,
        judge=judge,
        served_is_strong=served_is_strong,
        score=score,
        head=head,
        policy_hash="",
        req=req,
        store_prompt=policy.observability.feedback.store_prompts,
    )


def _request(body: dict[str, Any]) -> ChatRequest:
    return parse_chat_request(orjson.dumps(body))


class ShadowRunner:
    """Runs shadow jobs in the background of one gateway process."""

    def __init__(
        self,
        redis: Any,
        current_policy: Callable[[], Policy],
        backend_for: Callable[[ModelSpec], Backend],
        ledger: Ledger | None,
        tasks: Tasks,
    ) -> None:
        """Shadow with the policy in force and its backends; labels and the budget live in
        ``redis``, shadow and judge calls are written to ``ledger``, jobs run in ``tasks``."""
        self.current_policy = current_policy
        self.backend_for = backend_for
        self.ledger = ledger
        self.budget = ShadowBudget(redis)
        self.labels = LabelStore(redis)
        self.redis = redis
        self.counters: Counter[str] = Counter()
        self.tasks = tasks

    async def count(self, outcome: str) -> None:
        """Count ``outcome`` here and in the day's shared counters (never raises)."""
        self.counters[outcome] += 1
        try:
            key = lk.stats_key()
            pipe = self.redis.pipeline(transaction=False)
            pipe.hincrby(key, outcome, 1)
            pipe.expire(key, 30 * 86400)
            await pipe.execute()
        except Exception as exc:
            log.debug("shadow_count_failed", error=repr(exc))

    async def submit(
        self,
        job: ShadowJob,
        *,
        ok: bool,
        completion: Completion | None,
        completion_tokens: int,
        policy_hash: str,
    ) -> None:
        """Start ``job`` unless the request failed (``ok`` False: an error, a cut stream or a
        fallback answered); called after the response was sent. ``completion`` is the served
        JSON answer (None for a stream, whose text the job collected)."""
        if not ok:
            await self.count("skipped_failed")
            return
        answer = job.served_answer(completion)
        if not answer:
            await self.count("skipped_no_text")
            return
        limit = self.current_policy().learning.max_concurrent
        if self.tasks.running(TASK_KIND) >= limit:
            await self.count("skipped_busy")
            return
        job.served_tokens = completion_tokens
        job.policy_hash = policy_hash
        self.tasks.spawn(TASK_KIND, self._run(job, answer))

    def _estimate_usd(self, job: ShadowJob, max_tokens: int, judge_max_tokens: int) -> float:
        prompt = estimate_prompt_tokens(job.req)
        other = model_cost_usd(job.other, Usage(prompt, max_tokens))
        judge_in = prompt + job.served_tokens + max_tokens + JUDGE_OVERHEAD_TOKENS
        judge = model_cost_usd(job.judge, Usage(judge_in, judge_max_tokens))
        return other + 2 * judge

    async def _run(self, job: ShadowJob, served_answer: str) -> None:
        policy = self.current_policy()
        settings = policy.learning
        cap = job.req.output_limit
        max_tokens = min(cap, settings.shadow_max_tokens) if cap else settings.shadow_max_tokens
        estimate = self._estimate_usd(job, max_tokens, settings.judge_max_tokens)
        day = utc_day()
        try:
            if not await self.budget.reserve(estimate, settings.max_usd_per_day, day):
                await self.count("skipped_budget")
                return
        except Exception as exc:  # Redis down: no budget, so no shadow
            self.counters["errors"] += 1
            log.warning("shadow_budget_unavailable", error=repr(exc))
            return
        spent = 0.0
        await self.count("shadowed")
        try:
            body = {**job.req.raw_body(), "model": job.other.name, "stream": False}
            body.pop("stream_options", None)
            body.pop("max_tokens", None)
            body["max_completion_tokens"] = max_tokens
            started = time.perf_counter()
            other = await self._call(job.other, _request(body), policy)
            spent += self._ledger(job, job.other, other.usage, "shadow", started)
            other_answer = completion_text(other.body)
            if other_answer is None:
                await self.count("failed")
                return
            weak, strong = (
                (other_answer, served_answer) if job.served_is_strong else
                (served_answer, other_answer)
            )  # fmt: skip
            started = time.perf_counter()
            judgement, usage = await self._judge(job, weak, strong, policy)
            spent += self._ledger(job, job.judge, usage, "judge", started)
            if judgement is None:
                await self.count("unparsed")
                return
            await self._store(job, judgement, settings.retention_days * 86400)
            await self.count("labels")
        except Exception as exc:  # a shadow failure is counted and logged, nothing more
            await self.count("failed")
            log.warning("shadow_failed", request_id=job.request_id, error=repr(exc))
        finally:
            try:
                await self.budget.settle(estimate, spent, day)
            except Exception as exc:
                log.warning("shadow_settle_failed", error=repr(exc))

    async def _call(self, model: ModelSpec, req: ChatRequest, policy: Policy) -> Completion:
        backend = self.backend_for(model)
        return await backend.complete(req, Target.of(policy, model))

    async def _judge(
        self, job: ShadowJob, weak: str, strong: str, policy: Policy
    ) -> tuple[jd.Judgement | None, Usage]:
        """Ask the judge in both orders (concurrently); the judgement and the summed usage."""
        settings = policy.learning
        question = job.req.last_user_text()
        asks = []
        for first, second in ((weak, strong), (strong, weak)):
            body = {
                "model": job.judge.name,
                "messages": jd.judge_messages(question, first, second, settings.answer_max_chars),
                "temperature": 0,
                "max_completion_tokens": settings.judge_max_tokens,
            }
            asks.append(self._call(job.judge, _request(body), policy))
        one, two = await asyncio.gather(*asks)
        usage = Usage(
            sum(c.usage.prompt_tokens for c in (one, two) if c.usage),
            sum(c.usage.completion_tokens for c in (one, two) if c.usage),
        )
        first_verdict = jd.parse_verdict(completion_text(one.body) or "")
        second_verdict = jd.parse_verdict(completion_text(two.body) or "")
        if first_verdict is None or second_verdict is None:
            return None, usage
        return jd.Judgement(first_verdict, second_verdict), usage

    def _ledger(
        self, job: ShadowJob, model: ModelSpec, usage: Usage | None, tier: str, started: float
    ) -> float:
        """Write one ``shadow`` ledger row (no team, no key); returns its cost in USD."""
        cost = model_cost_usd(model, usage)
        ledger = self.ledger
        if ledger is None:
            return cost
        rec = LedgerRecord(
            ts=time.time(),
            request_id=f"{job.request_id}.{tier}",
            tenant=job.tenant,
            key_id=None,
            team=None,
            route="shadow",
            tier=tier,
            reason=f"{tier} call for request {job.request_id}",
            score=None,
            model=model.name,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            estimated=bool(usage and usage.estimated),
            cost_usd=cost,
            counterfactual_usd=cost,
            cache="bypass",
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            policy_hash=job.policy_hash,
            status=200,
            error=None,
            stream=False,
            fallback=False,
        )
        ledger.finish(rec, None)
        return cost

    async def _store(self, job: ShadowJob, judgement: jd.Judgement, retention_s: float) -> None:
        pairs = [{"role": m.role, "content": m.text()} for m in job.req.messages]
        weak_model = job.other if job.served_is_strong else job.served
        strong_model = job.served if job.served_is_strong else job.other
        label = Label(
            request_id=job.request_id,
            source="shadow",
            label=int(judgement.strong_clearly_better),
            ts=time.time(),
            score=job.score,
            head=job.head,
            prompt_tokens=messages_tokens(pairs),
            messages=pairs if job.store_prompt else None,
            extra={
                "tenant": job.tenant,
                "route": job.route,
                "verdicts": judgement.verdicts,
                "strong_score": repr(judgement.strong_score),
                "weak_model": weak_model.name,
                "strong_model": strong_model.name,
                "judge": job.judge.name,
                "served": job.served.name,
            },
        )
        await self.labels.add(label, retention_s)
