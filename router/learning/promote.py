"""One round of the learning loop: labels -> candidate -> guard -> promotion (or refusal).

:func:`learn_once` is what ``router learn`` and the gateway's background job run. It reads every
label with a stored prompt (shadow verdicts and ``/v1/feedback`` ``needed_strong``), and when at
least ``learning.min_new_labels`` arrived since the last attempt (or ``force``), fits a
candidate against the serving head (:mod:`router.learning.candidate`). A winner becomes a new
head version that every replica swaps to; either way the decision is logged with the current,
candidate and length APGR on the held-out labels.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.classify.dataset import load_outcomes, prompt_of
from router.classify.head import METADATA_FILE, WEIGHTS_FILE, read_metadata
from router.classify.trained import Scorer, shipped_model_dir
from router.learning.adapt import encode_rows
from router.learning.candidate import CandidateConfig, GuardResult, Rows, train_and_decide
from router.learning.heads_store import HeadStore
from router.learning.labels import Label, LabelStore
from router.policy.schema import Policy
from router.redis import keys as lk


@dataclass(slots=True)
class LearnResult:
    """What one round did."""

    action: str
    """``skipped`` (too few new labels), ``refused`` or ``promoted`` (``dry-run`` when asked
    not to promote)."""
    labels: int
    """Labels with a stored prompt."""
    without_prompt: int
    new_labels: int
    current: str
    """The head the candidate was compared with (a version, or ``policy``)."""
    version: str | None = None
    guard: GuardResult | None = None
    notes: list[str] = field(default_factory=list)

    def as_log(self) -> dict[str, Any]:
        """Fields for a log line or JSON."""
        out: dict[str, Any] = {
            "action": self.action,
            "labels": self.labels,
            "without_prompt": self.without_prompt,
            "new_labels": self.new_labels,
            "current": self.current,
            "version": self.version,
        }
        if self.guard is not None:
            out["guard"] = self.guard.as_dict()
        return out


def config_of(policy: Policy) -> CandidateConfig:
    """The candidate settings of the policy's ``learning:`` section."""
    s = policy.learning
    return CandidateConfig(
        folds=s.folds,
        min_gain=s.min_gain,
        sure_lead=s.require_sure_lead,
        label_weight=s.label_weight,
    )


def label_rows(scorer: Scorer, labels: Sequence[Label]) -> Rows:
    """Encode labelled prompts (every label must have its messages)."""
    prompts = [prompt_of(lab.messages) for lab in labels]
    return encode_rows(scorer, prompts, [lab.gain for lab in labels])


def base_rows(scorer: Scorer, paths: Sequence[Path], meta: dict[str, object]) -> Rows | None:
    """Shipped data rows (gain as the target), scoring the pair the head was trained on."""
    found = [p for p in paths if p.is_file()]
    if not found:
        return None
    weak = str(meta.get("weak_model") or "mistralai/Mixtral-8x7B-Instruct-v0.1")
    strong = str(meta.get("strong_model") or "gpt-4-1106-preview")
    data = load_outcomes(found, weak, strong)
    return encode_rows(scorer, data.prompts, data.strong - data.weak)


async def serving_head_dir(heads: HeadStore, policy: Policy, root: Path) -> tuple[str, Path]:
    """``(name, folder)`` of the head replicas serve now."""
    version = await heads.current()
    if version is not None:
        return version, await heads.materialize(version, root)
    configured = policy.classifier.model_dir
    return "policy", Path(configured) if configured else shipped_model_dir()


def write_head(
    candidate: Any, current_dir: Path, out: Path, version: str, verdict: GuardResult
) -> Path:
    """Save ``candidate`` with metadata that says where it came from; the folder."""
    candidate.save(out)
    meta = read_metadata(current_dir)
    digest = hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()
    meta.update(
        {
            "kind": "linear-ridge-adapted",
            "source": f"learned@{version}",
            "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "adapted_from": str(meta.get("source") or current_dir.name),
            "learning": verdict.as_dict(),
            "weights_sha256": digest,
        }
    )
    (out / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


async def learn_once(
    redis: Any,
    policy: Policy,
    *,
    force: bool = False,
    promote: bool = True,
    base_data: Sequence[Path] | None = None,
) -> LearnResult:
    """Run one round against the store in ``redis`` under ``policy``'s ``learning:`` section."""
    labels = await LabelStore(redis).all()
    usable = [lab for lab in labels if lab.messages]
    seen = int(await redis.hget(lk.state_key(), "labels_at_last_attempt") or 0)
    new = max(0, len(usable) - seen)
    root = Path(tempfile.mkdtemp(prefix="router-learn-"))
    try:
        return await _round(redis, policy, labels, usable, new, root, force, promote, base_data)
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)


async def _round(
    redis: Any,
    policy: Policy,
    labels: Sequence[Label],
    usable: Sequence[Label],
    new: int,
    root: Path,
    force: bool,
    promote: bool,
    base_data: Sequence[Path] | None,
) -> LearnResult:
    settings = policy.learning
    heads = HeadStore(redis)
    current, current_dir = await serving_head_dir(heads, policy, root)
    result = LearnResult("skipped", len(usable), len(labels) - len(usable), new, current)
    if not force and new < settings.min_new_labels:
        result.notes.append(f"{new} new labels < learning.min_new_labels {settings.min_new_labels}")
        return result
    if len(usable) < 2 * settings.folds or len({lab.gain for lab in usable}) < 2:
        result.notes.append("too few labels, or only one kind, to hold any out")
        return result
    classifier = policy.classifier.model_copy(update={"model_dir": str(current_dir)})
    scorer = await asyncio.to_thread(Scorer.load, classifier)
    try:
        rows = await asyncio.to_thread(label_rows, scorer, usable)
        paths = [Path(p) for p in settings.base_data] if base_data is None else list(base_data)
        base = await asyncio.to_thread(base_rows, scorer, paths, read_metadata(current_dir))
        verdict, candidate = await asyncio.to_thread(
            train_and_decide, scorer.head, rows, config_of(policy), base
        )
    finally:
        scorer.encoder.close()
    result.guard = verdict
    if not promote:  # a dry run changes nothing, not even the count of labels seen
        result.action = "dry-run" if candidate is not None else "refused"
        return result
    await redis.hset(lk.state_key(), "labels_at_last_attempt", str(len(usable)))
    entry = {"current": current, **verdict.as_dict(), "shipped_rows": len(base) if base else 0}
    if candidate is None:
        result.action = "refused"
        await heads.log("refuse", None, entry)
        return result
    version = await heads.new_version()
    out = await asyncio.to_thread(
        write_head, candidate, current_dir, root / f"new-{version}", version, verdict
    )
    await heads.put(version, out)
    await heads.promote(version, entry)
    result.action, result.version = "promoted", version
    return result
