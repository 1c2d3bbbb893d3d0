"""Policy loading: env references, credentials, prices, strict keys, messages, hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.policy.load import PolicyError, load_policy
from tests.unit.core.policy_text import POLICY, write_policy


def test_loads_with_prices_env_defaults_and_a_stable_hash(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    loaded = load_policy(path, env={})
    p = loaded.policy
    small, big = p.model("small"), p.model("big")
    assert small is not None and big is not None
    assert small.price is not None and small.price.input_usd_per_mtok == 0.1
    assert big.api_key is not None and big.api_key.get_secret_value() == "test-secret"
    assert len(loaded.hash) == 12
    assert load_policy(path, env={}).hash == loaded.hash
    assert loaded.files == (path, (tmp_path / "prices.yaml").resolve())


def test_hash_changes_when_a_file_changes(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    before = load_policy(path, env={}).hash
    (tmp_path / "prices.yaml").write_text(
        "prices:\n  small: {input_usd_per_mtok: 0.2, output_usd_per_mtok: 0.2}\n"
        "  big: {input_usd_per_mtok: 1, output_usd_per_mtok: 4}\n"
    )
    assert load_policy(path, env={}).hash != before


def test_unset_credential_marks_the_model_unavailable(tmp_path: Path) -> None:
    path = write_policy(tmp_path, POLICY.replace("${BIG_KEY:-test-secret}", "${BIG_KEY}"))
    big = load_policy(path, env={}).policy.model("big")
    assert big is not None and not big.available
    assert big.missing_credential == "BIG_KEY is not set"
    big = load_policy(path, env={"BIG_KEY": "k"}).policy.model("big")
    assert big is not None and big.available


def _errors(tmp_path: Path, policy: str, env: dict[str, str] | None = None) -> list[str]:
    path = write_policy(tmp_path, policy)
    with pytest.raises(PolicyError) as info:
        load_policy(path, env=env or {})
    return info.value.messages


def test_literal_credentials_are_rejected(tmp_path: Path) -> None:
    msgs = _errors(tmp_path, POLICY.replace("${BIG_KEY:-test-secret}", "sk-live-123"))
    assert any("models[1].api_key" in m and "environment references" in m for m in msgs)


def test_unknown_key_names_file_and_path(tmp_path: Path) -> None:
    msgs = _errors(tmp_path, POLICY.replace("tier: local\n", "tier: local\n    colour: red\n", 1))
    assert msgs == [f"{tmp_path / 'policy.yaml'}: models[0].colour: unknown key (not allowed here)"]


def test_unset_env_reference_is_an_error(tmp_path: Path) -> None:
    msgs = _errors(tmp_path, POLICY.replace("http://127.0.0.1:9/v1", "${NOPE_URL}", 1))
    assert any("models[0].endpoint" in m and "NOPE_URL is not set" in m for m in msgs)


def test_bad_references_and_types(tmp_path: Path) -> None:
    assert any(
        "unknown model 'ghost'" in m
        for m in _errors(tmp_path, POLICY.replace("fallbacks: [backup]", "fallbacks: [ghost]"))
    )
    assert any(
        "routes[0]: " in m and "min_score" in m
        for m in _errors(tmp_path, POLICY.replace("min_score: 0.8", "min_score: 0.3"))
    )
    assert any(
        "limits.max_body_bytes" in m
        for m in _errors(tmp_path, POLICY.replace("max_body_bytes: 2000", "max_body_bytes: lots"))
    )


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    msgs = _errors(tmp_path, "models: [\n  - name: x\n")
    assert len(msgs) == 1 and "invalid YAML at line" in msgs[0]


def test_unpriced_model_is_an_error(tmp_path: Path) -> None:
    policy = (
        POLICY.replace("name: backup", "name: backup-unpriced-xyz")
        .replace("    price: {input_usd_per_mtok: 3, output_usd_per_mtok: 15}\n", "")
        .replace("[backup]", "[backup-unpriced-xyz]")
        .replace("model: backup,", "model: backup-unpriced-xyz,")
    )
    msgs = _errors(tmp_path, policy)
    assert any("no price for 'backup-unpriced-xyz'" in m for m in msgs)


def test_shipped_policies_are_valid() -> None:
    root = Path(__file__).resolve().parents[3] / "policies"
    env = {"MOCK_UPSTREAM_URL": "http://127.0.0.1:1/v1"}
    for path in [root / "default.yaml", *sorted((root / "examples").glob("*.yaml"))]:
        assert load_policy(path, env=env).policy.models
