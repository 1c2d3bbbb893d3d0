"""The guard on embedding inputs: block, pin to a local embedding model, redact, token arrays."""

from __future__ import annotations

from typing import Any

import pytest

from router.errors import InvalidRequest
from router.guard.embeddings import guard_embeddings, local_embedding_model
from router.policy.schema import ModelSpec, Policy

EMAIL = "jane.roe@example.com"
OTHER = "john.doe@example.org"


def _policy(guard: dict[str, Any], *, with_local: bool = True) -> Policy:
    models: list[dict[str, Any]] = [
        {"name": "chat", "backend": "openai_compat"},
        {"name": "hosted-embed", "kind": "embedding", "backend": "openai_compat"},
    ]
    if with_local:
        models.append({"name": "minilm", "kind": "embedding", "backend": "encoder"})
    return Policy.model_validate({"models": models, "guard": guard})


def _model(policy: Policy, name: str) -> ModelSpec:
    model = policy.model(name)
    assert model is not None
    return model


def test_guard_off_costs_nothing() -> None:
    policy = _policy({})
    assert guard_embeddings(policy, _model(policy, "hosted-embed"), [EMAIL], single=True) is None


def test_block_names_the_input_never_the_value() -> None:
    policy = _policy({"pii": "block"})
    with pytest.raises(InvalidRequest) as err:
        guard_embeddings(
            policy, _model(policy, "hosted-embed"), ["fine", f"x {EMAIL}"], single=False
        )
    assert err.value.code == "pii_blocked" and err.value.param == "input[1]"
    assert EMAIL not in err.value.message and "email address" in err.value.message
    with pytest.raises(InvalidRequest) as one:
        guard_embeddings(policy, _model(policy, "minilm"), [EMAIL], single=True)
    assert one.value.param == "input"  # blocked for local models too, as in chat


def test_block_scans_the_user_field() -> None:
    policy = _policy({"pii": "block"})
    with pytest.raises(InvalidRequest) as err:
        guard_embeddings(policy, _model(policy, "hosted-embed"), ["ok"], single=True, user=EMAIL)
    assert err.value.param == "user"


def test_pin_local_moves_a_hosted_model_to_the_local_encoder() -> None:
    policy = _policy({"pii": "pin-local"})
    verdict = guard_embeddings(policy, _model(policy, "hosted-embed"), [EMAIL], single=True)
    assert verdict is not None and verdict.substituted and verdict.pinned_local
    assert verdict.model.name == "minilm" and verdict.inputs == [EMAIL]  # local: as sent
    assert verdict.headers == {"x-router-pii": "email", "x-router-privacy": "pinned-local"}
    assert not verdict.redacted
    clean = guard_embeddings(policy, _model(policy, "hosted-embed"), ["no pii"], single=True)
    assert clean is not None and clean.model.name == "hosted-embed" and not clean.headers


def test_pin_local_without_a_local_embedding_model_is_refused() -> None:
    policy = _policy({"pii": "pin-local"}, with_local=False)
    assert local_embedding_model(policy) is None
    with pytest.raises(InvalidRequest) as err:
        guard_embeddings(policy, _model(policy, "hosted-embed"), [EMAIL], single=True)
    assert err.value.code == "privacy_pinned_local" and err.value.param == "model"
    assert "no local embedding model" in err.value.message and EMAIL not in err.value.message


def test_always_local_team_scope_pins_without_pii() -> None:
    policy = _policy({"teams": {"legal": {"always_local": True}}})
    verdict = guard_embeddings(
        policy, _model(policy, "hosted-embed"), ["plain"], single=True, team="legal"
    )
    assert verdict is not None and verdict.model.name == "minilm" and verdict.pinned_local
    other = guard_embeddings(
        policy, _model(policy, "hosted-embed"), ["plain"], single=True, team="sales"
    )
    assert other is not None and other.model.name == "hosted-embed"


def test_redact_for_hosted_keeps_one_placeholder_per_value() -> None:
    policy = _policy({"pii": "redact"})
    inputs = [f"mail {EMAIL}", f"{OTHER} and {EMAIL}", "literal [EMAIL_1] text"]
    verdict = guard_embeddings(
        policy, _model(policy, "hosted-embed"), inputs, single=False, user=OTHER
    )
    assert verdict is not None and verdict.model.name == "hosted-embed"
    # [EMAIL_1] is in the client's own text, so it is never issued
    assert verdict.inputs == ["mail [EMAIL_2]", "[EMAIL_3] and [EMAIL_2]", inputs[2]]
    assert verdict.user == "[EMAIL_3]"
    assert verdict.headers["x-router-privacy"] == "redacted" and verdict.redacted
    local = guard_embeddings(policy, _model(policy, "minilm"), inputs, single=False)
    assert local is not None and local.inputs == inputs and "x-router-privacy" not in local.headers


def test_token_arrays_cannot_reach_a_hosted_model_unscanned() -> None:
    policy = _policy({"pii": "redact"})
    with pytest.raises(InvalidRequest) as err:
        guard_embeddings(policy, _model(policy, "hosted-embed"), [[1, 2, 3]], single=False)
    assert err.value.code == "pii_unscannable" and err.value.param == "input"
    scoped_off = _policy({"teams": {"x": {"always_local": True}}})  # no PII action: not scanned
    ok = guard_embeddings(scoped_off, _model(scoped_off, "hosted-embed"), [[1, 2]], single=False)
    assert ok is not None and ok.inputs == [[1, 2]]


def test_strictest_scope_wins_per_model_name() -> None:
    policy = _policy({"pii": "redact", "routes": {"hosted-embed": {"pii": "block"}}})
    with pytest.raises(InvalidRequest) as err:
        guard_embeddings(policy, _model(policy, "hosted-embed"), [EMAIL], single=True)
    assert "for model 'hosted-embed'" in err.value.message
