"""The policy's ``guard:`` section: what to do with PII, prompt injection and hosted answers.

Actions are set once for the whole policy and may be tightened per route (or model name) and per
team. The effective action for a request is the **strictest** of the policy default, the
request's route and the caller's team: an override can make a request safer, never less safe.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

PiiKind = Literal["secret", "credit_card", "iban", "national_id", "email", "phone", "ip_address"]
"""The kinds of PII that :mod:`router.guard.pii` detects (the keys of ``pii_kinds``)."""
ALL_KINDS: tuple[PiiKind, ...] = get_args(PiiKind)
"""Every kind, in priority order: an earlier kind wins an overlap."""
PiiAction = Literal["off", "redact", "pin-local", "block"]
InjectionAction = Literal["off", "flag", "pin-local", "block"]
OutputMask = Literal["off", "secrets", "pii"]
"""``secrets``: mask secrets and API keys in hosted answers; ``pii``: mask every PII kind too."""
ScanRole = Literal["system", "developer", "user", "assistant", "tool", "function"]

PII_ORDER: tuple[PiiAction, ...] = ("off", "redact", "pin-local", "block")
INJECTION_ORDER: tuple[InjectionAction, ...] = ("off", "flag", "pin-local", "block")
OUTPUT_ORDER: tuple[OutputMask, ...] = ("off", "secrets", "pii")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardScope(_Strict):
    """An override for one route or team; every field left out inherits."""

    pii: PiiAction | None = None
    """Action when any enabled PII kind is found."""
    pii_kinds: dict[PiiKind, PiiAction] = Field(default_factory=dict)
    """Per-kind actions, e.g. ``{secret: block}``; stricter of this and ``pii`` applies."""
    injection: InjectionAction | None = None
    output: OutputMask | None = None
    always_local: bool | None = None
    """Pin every request of this scope to local models, PII or not."""


class GuardSettings(_Strict):
    """``guard:`` in a policy file. The defaults turn everything off."""

    pii: PiiAction = "off"
    pii_kinds: dict[PiiKind, PiiAction] = Field(default_factory=dict)
    detect: tuple[PiiKind, ...] = ALL_KINDS
    """Which detectors run (all by default)."""
    scan_roles: tuple[ScanRole, ...] = ("system", "developer", "user", "assistant", "tool")
    """Messages whose text is scanned for PII (and redacted)."""
    restore: bool = True
    """Put the original values back where a hosted answer repeats a placeholder."""
    restore_tool_arguments: bool = False
    """Also restore placeholders inside tool-call arguments (off: tools see placeholders)."""
    injection: InjectionAction = "off"
    injection_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    injection_roles: tuple[ScanRole, ...] = ("user", "tool")
    """Messages checked for injection: the end user's and tool results (indirect injection)."""
    output: OutputMask = "off"
    always_local: bool = False
    local_models: tuple[str, ...] = ()
    """Models that run on the premises besides those labelled with a local tier."""
    local_tier_labels: tuple[str, ...] = ("local",)
    """``ModelSpec.tier`` labels that mean "runs on the premises"."""
    routes: dict[str, GuardScope] = Field(default_factory=dict)
    """Overrides by route alias (or by model name, for requests naming a model)."""
    teams: dict[str, GuardScope] = Field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Whether any check can run at all (False: the pipeline skips the guard)."""
        if self.pii != "off" or self.injection != "off" or self.output != "off":
            return True
        if self.always_local or any(a != "off" for a in self.pii_kinds.values()):
            return True
        return bool(self.routes or self.teams)


A = TypeVar("A", bound=str)


def stricter(order: tuple[A, ...], *actions: A | None) -> A:
    """The strictest of ``actions`` (None ignored) along ``order``; ``order[0]`` if none."""
    best = 0
    for a in actions:
        if a is not None:
            best = max(best, order.index(a))
    return order[best]
