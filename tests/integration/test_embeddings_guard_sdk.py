"""The PII guard on ``/v1/embeddings`` end to end: the openai SDK against a `router serve`
process whose policy redacts e-mail addresses, pins card numbers to local models and blocks
secrets, with the gateway's own encoder and a hosted embedding model on the mock upstream."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import gateway, make_key, own_redis, policy_yaml
from tests.integration.protocol_support import ledger_rows
from tests.integration.test_embeddings_sdk import EMBEDDING_MODELS, Setup

pytestmark = pytest.mark.integration

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"
SECRET = "sk-proj-abcdefghijklmnopqrstuvwx12"
GUARD = (
    "guard:\n"
    "  pii_kinds: {email: redact, credit_card: pin-local, secret: block}\n"
    "  teams:\n"
    "    legal: {always_local: true}\n"
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("embeddings-guard")
    policy = tmp / "policy.yaml"
    policy.write_text(policy_yaml(auth="keys", extra_models=EMBEDDING_MODELS) + GUARD)
    with (
        own_redis(tmp) as redis_url,
        MockUpstreamProcess() as mock,
        gateway(policy, mock.url, redis_url, tmp / "gw.log") as gw,
    ):
        s = Setup(mock, gw, redis_url)
        s.key, _ = make_key(redis_url, "team-e", 100.0)
        yield s


def _hosted_bodies(setup: Setup) -> list[dict[str, object]]:
    return [r["body"] for r in setup.mock.stats()["last_requests"]]


def test_a_secret_is_blocked_before_anything_is_sent_or_charged(setup: Setup) -> None:
    setup.mock.reset()
    with pytest.raises(openai.BadRequestError) as err:
        setup.client().embeddings.create(model="mock-embed", input=["fine", f"key {SECRET}"])
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "pii_blocked"
    assert body["param"] == "input[1]" and SECRET not in str(body)
    assert _hosted_bodies(setup) == []
    request_id = err.value.response.headers["x-request-id"]
    assert not [r for r in ledger_rows(setup.redis_url) if r.request_id == request_id]


def test_an_email_is_redacted_for_the_hosted_model(setup: Setup) -> None:
    setup.mock.reset()
    raw = setup.client().embeddings.with_raw_response.create(
        model="mock-embed", input=[f"write to {EMAIL}", f"cc {EMAIL}"], encoding_format="float"
    )
    resp = raw.parse()
    assert resp.model == "mock-embed" and len(resp.data) == 2
    assert raw.headers["x-router-privacy"] == "redacted" and raw.headers["x-router-pii"] == "email"
    sent = _hosted_bodies(setup)[-1]
    assert sent["input"] == ["write to [EMAIL_1]", "cc [EMAIL_1]"] and EMAIL not in str(sent)


def test_a_card_number_is_served_by_the_local_encoder(setup: Setup) -> None:
    setup.mock.reset()
    raw = setup.client().embeddings.with_raw_response.create(
        model="mock-embed", input=f"card {CARD}"
    )
    resp = raw.parse()
    assert resp.model == "minilm" and len(resp.data[0].embedding) == 384
    assert raw.headers["x-router-privacy"] == "pinned-local"
    assert raw.headers["x-router-model"] == "minilm"
    assert _hosted_bodies(setup) == []
    row = setup.row(raw.headers["x-request-id"])
    assert row.model == "minilm" and row.status == 200


def test_a_pinned_request_the_encoder_cannot_serve_says_why(setup: Setup) -> None:
    setup.mock.reset()
    with pytest.raises(openai.BadRequestError) as err:
        setup.client().embeddings.create(model="mock-embed", input=f"card {CARD}", dimensions=8)
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "privacy_pinned_local"
    assert body["param"] == "dimensions" and CARD not in str(body)
    assert _hosted_bodies(setup) == []


def test_clean_inputs_pass_untouched(setup: Setup) -> None:
    setup.mock.reset()
    raw = setup.client().embeddings.with_raw_response.create(
        model="mock-embed", input="nothing personal", encoding_format="float"
    )
    assert raw.parse().model == "mock-embed" and "x-router-privacy" not in raw.headers
    assert _hosted_bodies(setup)[-1]["input"] == "nothing personal"
