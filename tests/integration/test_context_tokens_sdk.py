"""The context-window gate with the target's tokenizer, end to end: a `router serve` process
whose model ``gpt-small`` is ``gpt-4o-mini`` on the mock upstream with a 130-token window. Its
tokenizer (o200k_base, the copy litellm ships) is known, so a prompt the 4-characters-a-token
estimate would refuse goes through, and ``count_tokens`` answers the same exact count."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from router.backends.token_count import TokenCounter
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import gateway, make_key, own_redis, write_policy

pytestmark = pytest.mark.integration

SMALL = (
    "  - name: gpt-small\n"
    "    backend: openai_compat\n"
    "    upstream_model: gpt-4o-mini\n"
    "    endpoint: ${MOCK_UPSTREAM_URL}\n"
    "    price: {input_usd_per_mtok: 0.15, output_usd_per_mtok: 0.6}\n"
    "    capabilities: {context_window: 130, max_output_tokens: 64}\n"
)
TEXT = "hello " * 100  # 154 tokens by the estimate; about 100 by o200k_base


class Setup:
    def __init__(self, gw: GatewayProcess, key: str) -> None:
        self.gw, self.key = gw, key

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.url, api_key=self.key, max_retries=0, timeout=60)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=self.gw.base_url, api_key=self.key, max_retries=0, timeout=60
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("context-tokens")
    policy = write_policy(tmp, auth="keys", extra_models=SMALL)
    with (
        own_redis(tmp) as redis_url,
        MockUpstreamProcess() as mock,
        gateway(policy, mock.url, redis_url, tmp / "gw.log", HF_HUB_OFFLINE="1") as gw,
    ):
        key, _ = make_key(redis_url, "team-c", 100.0)
        yield Setup(gw, key)


def exact_prompt_tokens(text: str) -> int:
    encoding = TokenCounter().encoding("o200k_base")  # litellm's copy, as the gateway reads it
    assert encoding is not None
    return len(encoding.encode_ordinary(text)) + 4 + 3


def test_the_exact_count_lets_through_what_the_estimate_refuses(setup: Setup) -> None:
    answer = setup.openai().chat.completions.create(
        model="gpt-small", messages=[{"role": "user", "content": TEXT}], max_tokens=8
    )
    assert answer.choices[0].message.content


def test_too_long_by_the_exact_count_is_context_length_exceeded(setup: Setup) -> None:
    need = exact_prompt_tokens(TEXT) + 60
    with pytest.raises(openai.BadRequestError) as err:
        setup.openai().chat.completions.create(
            model="gpt-small", messages=[{"role": "user", "content": TEXT}], max_tokens=60
        )
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    assert f"needs {need} tokens" in body["message"]
    with setup.anthropic() as client, pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="gpt-small", max_tokens=60, messages=[{"role": "user", "content": TEXT}]
        )
    message = info.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith(f"prompt is too long: {need} tokens > 130 maximum")


def test_count_tokens_uses_the_models_tokenizer(setup: Setup) -> None:
    with setup.anthropic() as client:
        counted = client.messages.count_tokens(
            model="gpt-small", messages=[{"role": "user", "content": TEXT}]
        )
    assert counted.input_tokens == exact_prompt_tokens(TEXT)
