"""The policy schema: models, routes, retries, fallbacks, limits and auth.

Every model is ``extra="forbid"`` and frozen: an unknown key is an error that names its path, and
a loaded policy can be shared by every request without copying. Cross-references (a route's tier
naming a model, a fallback naming a model) are checked in :meth:`Policy._check_references`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from router.policy.sections.budgets import BudgetSettings
from router.policy.sections.cache import CacheSettings
from router.policy.sections.classifier import ClassifierSettings
from router.policy.sections.guard import GuardSettings
from router.policy.sections.learning import LearningSettings
from router.policy.sections.local_model import LocalModelSettings
from router.policy.sections.observability import ObservabilitySettings

RetryOn = Literal["rate_limit", "server_error", "timeout", "connection", "interrupted"]
BackendKind = Literal["openai_compat", "openai_responses", "litellm", "local", "encoder"]
ModelKind = Literal["chat", "embedding"]


class Strict(BaseModel):
    """Base for policy sections: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(Strict):
    """A model's price in US dollars per million tokens."""

    input_usd_per_mtok: Annotated[float, Field(ge=0)]
    output_usd_per_mtok: Annotated[float, Field(ge=0)]
    cached_input_usd_per_mtok: Annotated[float, Field(ge=0)] | None = None
    """Prompt tokens read from the provider's prompt cache; unset: the input price."""
    cache_write_usd_per_mtok: Annotated[float, Field(ge=0)] | None = None
    """Prompt tokens written to the provider's prompt cache (Anthropic: 1.25x input for 5
    minutes); unset: the input price."""


class Capabilities(Strict):
    """What a model can do; the router never sends a request to a model that cannot serve it."""

    tools: bool = True
    json_schema: bool = True
    vision: bool = False
    context_window: Annotated[int, Field(gt=0)] = 8192
    max_output_tokens: Annotated[int, Field(gt=0)] = 4096


class RetryPolicy(Strict):
    """How a target is retried before its fallbacks are tried."""

    attempts: Annotated[int, Field(ge=1, le=10)] = 2
    backoff_s: Annotated[float, Field(ge=0)] = 0.1
    max_backoff_s: Annotated[float, Field(ge=0)] = 2.0
    on: tuple[RetryOn, ...] = ("rate_limit", "server_error", "timeout", "connection")


class Timeouts(Strict):
    """Per-target timeouts in seconds."""

    connect_s: Annotated[float, Field(gt=0)] = 5.0
    total_s: Annotated[float, Field(gt=0)] = 60.0
    first_token_s: Annotated[float, Field(gt=0)] | None = None


class ModelSpec(Strict):
    """One model the gateway can call."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._:/@-]+$")]
    backend: BackendKind
    upstream_model: str | None = None
    endpoint: str | None = None
    api_key: SecretStr | None = None
    missing_credential: str | None = None
    tier: str | None = None
    price: Price | None = None
    capabilities: Capabilities = Capabilities()
    retry: RetryPolicy | None = None
    timeouts: Timeouts | None = None
    fallbacks: tuple[str, ...] = ()
    headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    """Fields added to every request body sent to this model (``openai_compat``), overriding
    the client's: e.g. llama.cpp's ``cache_prompt: true`` or Ollama's ``options``."""
    local: LocalModelSettings | None = None
    kind: ModelKind = "chat"
    """``embedding`` models serve only ``/v1/embeddings`` (backend ``encoder``: the gateway's
    own all-MiniLM-L6-v2; ``openai_compat``: a hosted ``/embeddings`` endpoint)."""

    @model_validator(mode="after")
    def _embedding_backend(self) -> ModelSpec:
        if self.kind == "embedding" and self.backend not in ("encoder", "openai_compat"):
            raise ValueError(
                f"embedding model {self.name!r}: backend must be 'encoder' or 'openai_compat'"
            )
        if self.backend == "encoder" and self.kind != "embedding":
            raise ValueError(f"model {self.name!r}: backend 'encoder' needs kind: embedding")
        if self.kind == "embedding" and self.fallbacks:
            raise ValueError(f"embedding model {self.name!r}: fallbacks are not supported")
        return self

    @property
    def wire_model(self) -> str:
        """The model name sent upstream."""
        return self.upstream_model or self.name

    @property
    def available(self) -> bool:
        """False when a credential it needs is not set in the environment."""
        return self.missing_credential is None


class Tier(Strict):
    """One tier of a route: requests scoring at least ``min_score`` may go here."""

    name: Annotated[str, Field(min_length=1)]
    model: str
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.0


class RuleMatch(Strict):
    """Conditions of a rule; every condition given must hold."""

    capability: tuple[Literal["tools", "json_schema", "vision"], ...] = ()
    team: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    hint: tuple[str, ...] = ()


class Rule(Strict):
    """Pin a route's requests to a tier or model when ``when`` matches."""

    when: RuleMatch
    use: str
    reason: str | None = None


class Route(Strict):
    """A route alias such as ``auto``: tiers chosen by the complexity score, plus rules."""

    alias: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._:/@-]+$")]
    tiers: Annotated[tuple[Tier, ...], Field(min_length=1)]
    rules: tuple[Rule, ...] = ()
    allow_override: bool = True
    target_strong_share: Annotated[float, Field(gt=0, lt=1)] | None = None

    @model_validator(mode="after")
    def _tiers_ordered(self) -> Route:
        scores = [t.min_score for t in self.tiers]
        if scores[0] != 0.0:
            raise ValueError("the first tier must have min_score 0 so that every score has a tier")
        if scores != sorted(scores) or len(set(scores)) != len(scores):
            raise ValueError("tiers must be ordered by strictly increasing min_score")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique within a route")
        return self

    def tier(self, name: str) -> Tier | None:
        """The tier called ``name``, if any."""
        return next((t for t in self.tiers if t.name == name), None)


class Limits(Strict):
    """Request limits."""

    max_body_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024
    body_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    """A request body not received in full within this many seconds is answered 408."""


class Defaults(Strict):
    """Defaults applied to every model that does not set its own."""

    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()


class Policy(Strict):
    """A whole, validated policy."""

    version: Literal[1] = 1
    auth: Literal["none", "keys"] = "none"
    limits: Limits = Limits()
    defaults: Defaults = Defaults()
    classifier: ClassifierSettings = ClassifierSettings()
    budgets: BudgetSettings = BudgetSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    guard: GuardSettings = GuardSettings()
    cache: CacheSettings = CacheSettings()
    learning: LearningSettings = LearningSettings()
    models: Annotated[tuple[ModelSpec, ...], Field(min_length=1)]
    routes: tuple[Route, ...] = ()

    # The indexes behind model() and route(), which run several times a request: cached
    # properties live in the instance's __dict__, while a pydantic private attribute is read
    # through BaseModel.__getattr__ at ~3 us a read.
    @cached_property
    def _models_by_name(self) -> dict[str, ModelSpec]:
        return {m.name: m for m in self.models}

    @cached_property
    def _routes_by_alias(self) -> dict[str, Route]:
        return {r.alias: r for r in self.routes}

    @model_validator(mode="after")
    def _check_references(self) -> Policy:
        names = [m.name for m in self.models]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate model names: {sorted(dup)}")
        known = set(names)
        aliases = [r.alias for r in self.routes]
        if len(set(aliases)) != len(aliases):
            raise ValueError("route aliases must be unique")
        clash = known & set(aliases)
        if clash:
            raise ValueError(f"route aliases clash with model names: {sorted(clash)}")
        embedding = {m.name for m in self.models if m.kind == "embedding"}
        for i, m in enumerate(self.models):
            for f in m.fallbacks:
                if f in embedding:
                    raise ValueError(f"models[{i}].fallbacks: {f!r} is an embedding model")
                if f not in known:
                    raise ValueError(f"models[{i}].fallbacks: unknown model {f!r}")
                if f == m.name:
                    raise ValueError(f"models[{i}].fallbacks: a model cannot fall back to itself")
        for i, r in enumerate(self.routes):
            tier_names = {t.name for t in r.tiers}
            for j, t in enumerate(r.tiers):
                if t.model not in known:
                    raise ValueError(f"routes[{i}].tiers[{j}].model: unknown model {t.model!r}")
                if t.model in embedding:
                    raise ValueError(
                        f"routes[{i}].tiers[{j}].model: {t.model!r} is an embedding model"
                    )
            for j, rule in enumerate(r.rules):
                if rule.use in embedding:
                    raise ValueError(
                        f"routes[{i}].rules[{j}].use: {rule.use!r} is an embedding model"
                    )
                if rule.use not in known and rule.use not in tier_names:
                    raise ValueError(
                        f"routes[{i}].rules[{j}].use: {rule.use!r} is neither a tier of "
                        f"{r.alias!r} nor a model"
                    )
        if self.learning.judge is not None and self.learning.judge not in known:
            raise ValueError(f"learning.judge: unknown model {self.learning.judge!r}")
        unknown_routes = set(self.learning.routes) - set(aliases)
        if unknown_routes:
            raise ValueError(f"learning.routes: unknown routes {sorted(unknown_routes)}")
        return self

    def model(self, name: str) -> ModelSpec | None:
        """The model called ``name``, if any."""
        return self._models_by_name.get(name)

    def route(self, alias: str) -> Route | None:
        """The route with alias ``alias``, if any."""
        return self._routes_by_alias.get(alias)

    def retry_for(self, model: ModelSpec) -> RetryPolicy:
        """The retry policy in force for ``model``."""
        return model.retry or self.defaults.retry

    def timeouts_for(self, model: ModelSpec) -> Timeouts:
        """The timeouts in force for ``model``."""
        return model.timeouts or self.defaults.timeouts
