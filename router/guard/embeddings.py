"""The guard on ``POST /v1/embeddings``: the chat guard's PII actions applied to embedding inputs.

An embedding input leaves the premises exactly like a chat message does when the model is
hosted, so the policy's PII actions apply with the same scopes (default, the model name as the
"route", the caller's team; strictest wins):

* ``block``: 400 ``pii_blocked`` naming the kinds and the inputs (``input[3]``), never values;
* ``pin-local`` (or ``always_local``): a local model asked for is served as is; a hosted one is
  replaced by the policy's first local embedding model (``backend: encoder``, a local tier
  label, or ``guard.local_models``), or refused with 400 ``privacy_pinned_local`` when the
  policy has none;
* ``redact``: a hosted model gets the inputs with each value replaced by a placeholder
  (``[EMAIL_1]``; the same value gets the same placeholder across the inputs); a local model
  gets them as sent. Nothing is restored: the answer is vectors.

Prompt-injection checks do not apply (an embedding model follows no instructions; a stored text
that is later retrieved into a prompt meets the chat guard there), nor does output masking.
Token-array inputs cannot be scanned (their tokenizer is the hosted model's), so while any PII
action is on they are refused for a hosted model (400 ``pii_unscannable``) rather than sent
unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from router.errors import InvalidRequest
from router.guard.pii import KIND_NAMES, find_pii
from router.guard.redact import PLACEHOLDER, Placeholders
from router.guard.stage import (
    PII_HEADER,
    PRIVACY_HEADER,
    Located,
    effective,
    is_local,
    refuse_blocked,
)
from router.policy.schema import ModelSpec, Policy
from router.policy.sections.guard import PII_ORDER, PiiAction, stricter

log = structlog.get_logger("router.guard")


@dataclass(frozen=True, slots=True)
class EmbeddingsVerdict:
    """What the guard decided for one embeddings request."""

    model: ModelSpec
    """The model to serve: the one asked for, or the local one a pinned request moved to."""
    inputs: list[Any]
    """The inputs to send it: redacted for a hosted model under ``redact``, else as sent."""
    user: str | None = None
    """The ``user`` field to send (redacted like the inputs)."""
    found: tuple[str, ...] = ()
    """The PII kinds found (names of kinds, never values)."""
    action: PiiAction = "off"
    pinned_local: bool = False
    substituted: bool = False
    """True when a pinned request was moved from a hosted model to a local one."""
    reason: str = ""
    """Why it is pinned (kinds or scope), for error messages; empty when not pinned."""
    headers: dict[str, str] = field(default_factory=dict)
    """``x-router-pii`` and ``x-router-privacy`` for the response."""

    @property
    def redacted(self) -> bool:
        """Whether :attr:`inputs` (and :attr:`user`) are a redacted copy for a hosted model."""
        return self.headers.get(PRIVACY_HEADER) == "redacted"


def _where(inputs: Sequence[Any], single: bool, i: int) -> str:
    return "input" if single else f"input[{i}]"


def local_embedding_model(policy: Policy) -> ModelSpec | None:
    """The policy's first embedding model that runs on the premises, if any."""
    settings = policy.guard
    for model in policy.models:
        if model.kind == "embedding" and is_local(model, settings):
            return model
    return None


def guard_embeddings(
    policy: Policy,
    model: ModelSpec,
    inputs: list[Any],
    *,
    single: bool,
    user: str | None = None,
    team: str | None = None,
    request_id: str = "",
) -> EmbeddingsVerdict | None:
    """Apply the policy's PII guard to embedding ``inputs`` bound for ``model``.

    ``single`` says the client sent one string (errors then name ``input``, else
    ``input[i]``). Returns None when the guard is off. Raises :class:`InvalidRequest` (400)
    when a value is blocked, when a pinned request has no local embedding model, or when
    token arrays would reach a hosted model unscanned. Never echoes a detected value.
    """
    settings = policy.guard
    if not settings.enabled:
        return None
    eff = effective(settings, model.name, team)
    kinds = [k for k, a in eff.pii.items() if a != "off"]
    local = is_local(model, settings)
    if kinds and not local and any(not isinstance(x, str) for x in inputs):
        raise InvalidRequest(
            f"Token-array inputs cannot be checked for personal data, and the hosted model "
            f"'{model.name}' would receive them unchecked; send the inputs as text.",
            param="input",
            code="pii_unscannable",
        )
    located: list[Located] = []
    if kinds:
        for i, x in enumerate(inputs):
            if isinstance(x, str):
                found = find_pii(x, kinds)
                if found:
                    located.append(Located(_where(inputs, single, i), tuple(found)))
        if user is not None:
            found = find_pii(user, kinds)
            if found:
                located.append(Located("user", tuple(found)))
    found_kinds = tuple(sorted({f.kind for loc in located for f in loc.findings}))
    action = stricter(PII_ORDER, *(eff.pii[k] for k in found_kinds))
    scope = f"for model '{model.name}' " if model.name in settings.routes else ""
    if team is not None and team in settings.teams:
        scope += f"for team '{team}' "
    if action == "block":
        refuse_blocked(located, eff.pii, scope)

    pinned = action == "pin-local" or eff.always_local
    headers: dict[str, str] = {}
    if found_kinds:
        headers[PII_HEADER] = ",".join(found_kinds)
    reason = ""
    served, sent, sent_user, substituted = model, inputs, user, False
    if pinned:
        headers[PRIVACY_HEADER] = "pinned-local"
        if action == "pin-local":
            names = [KIND_NAMES[k] for k in found_kinds]
            reason = "it contains " + (
                names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            )
        else:
            reason = "the privacy policy keeps this model or team on local models"
        if not local:
            substitute = local_embedding_model(policy)
            if substitute is None:
                raise InvalidRequest(
                    f"The model '{model.name}' is hosted, and this request must stay on local "
                    f"models ({reason}), but this gateway has no local embedding model.",
                    param="model",
                    code="privacy_pinned_local",
                )
            served, substituted = substitute, True
    elif action == "redact" and not local and located:
        sent, sent_user = _redacted(inputs, user, located, single)
        headers[PRIVACY_HEADER] = "redacted"
    if found_kinds or pinned:
        log.info(
            "guard",
            request_id=request_id,
            endpoint="embeddings",
            pii=list(found_kinds),
            action=action,
            pinned_local=pinned,
            model=served.name,
        )
    return EmbeddingsVerdict(
        served, sent, sent_user, found_kinds, action, pinned, substituted, reason, headers
    )


def _redacted(
    inputs: list[Any], user: str | None, located: list[Located], single: bool
) -> tuple[list[Any], str | None]:
    """``inputs`` and ``user`` with every finding replaced by its placeholder (one table for
    the whole request, so a value repeated across inputs gets the same placeholder)."""
    texts = "\n".join([*(x for x in inputs if isinstance(x, str)), user or ""])
    table = Placeholders(taken=frozenset(m.group() for m in PLACEHOLDER.finditer(texts)))
    by_where = {loc.where: loc.findings for loc in located}
    out: list[Any] = []
    for i, x in enumerate(inputs):
        findings = by_where.get(_where(inputs, single, i))
        out.append(table.redact(x, findings) if findings else x)
    in_user = by_where.get("user")
    return out, table.redact(user, in_user) if user is not None and in_user else user
