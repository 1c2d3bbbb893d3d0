"""Fuzz the public HTTP surface: no 5xx, no connection reset, nothing charged when rejected.

A live ``router serve`` (mock upstream, its own Redis, a global budget so that every served
request is reserved and settled) is driven by

* schemathesis, from the gateway's own OpenAPI document: for each operation with a body,
  schema-violating (negative) and schema-conforming (positive) cases; for the GETs and DELETEs,
  positive cases (chat, OpenAI Responses and stored responses, Anthropic Messages and
  count_tokens, embeddings, feedback, the admin API for keys, models, health, metrics);
* hypothesis JSON strategies: arbitrary JSON of any shape (integers far beyond 64 bits, deep
  nesting, unknown fields) in and around valid chat, Responses, Messages, count_tokens,
  embeddings, feedback and admin bodies, all sent over one keep-alive connection, which must
  never be reset.

Every error is in its protocol's shape (Anthropic's ``{"type": "error", "error": {...}}`` on
``/v1/messages*``, OpenAI's envelope elsewhere). Afterwards the ledger and the budget counters
must agree: a rejected request is charged $0, and no hold is left behind. Bounded so that it
stays under three minutes here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aredis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from router.budget.reserve import Budgets
from router.ledger.writer import Ledger
from router.redis import keys as bk
from router.redis.embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MOCK_POLICY = ROOT / "policies" / "examples" / "mock.yaml"
ADMIN_KEY = "fuzz-admin-key"
AUTH = {"authorization": f"Bearer {ADMIN_KEY}"}
EXAMPLES = {  # (method, mode) -> examples per operation
    ("POST", GenerationMode.NEGATIVE): 60,
    ("POST", GenerationMode.POSITIVE): 25,
    ("PATCH", GenerationMode.NEGATIVE): 40,
    ("PATCH", GenerationMode.POSITIVE): 10,
    ("GET", GenerationMode.POSITIVE): 3,
    ("DELETE", GenerationMode.POSITIVE): 3,
}
JSON_EXAMPLES = 150
"""Hypothesis examples per endpoint for the JSON strategies."""
MALFORMED = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"\xff\xfe\x00",
    b"NaN",
    b'{"x": Infinity}',
    b'{"x": 1e400}',
    b'{"model": "auto", "messages": "hello"}',
    b'{"request_id": {"$gt": ""}, "thumbs": "up"}',
    b"{" + b'"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "seed": '
    + str(2**64).encode()
    + b"}",
    b'{"team": "t", "rpm": ' + str(10**40).encode() + b"}",
]
FUZZ_PATHS = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/embeddings",
    "/v1/feedback",
    "/admin/keys",
]
EMBEDDING_MODEL = (
    "  - name: mock-embed\n"
    "    kind: embedding\n"
    "    backend: openai_compat\n"
    "    upstream_model: text-embedding-3-small\n"
    "    endpoint: ${MOCK_UPSTREAM_URL}\n"
    "    price: {input_usd_per_mtok: 0.02, output_usd_per_mtok: 0}\n"
)
"""An embedding model on the mock upstream, so that valid embeddings bodies are served."""


def _policy(tmp: Path) -> Path:
    """The mock policy with a global budget (every served request holds and settles) and an
    embedding model."""
    text = MOCK_POLICY.read_text().replace(
        "prices_file: ../prices.yaml", f"prices_file: {ROOT / 'policies' / 'prices.yaml'}"
    )
    text = text.replace("\nroutes:\n", "\n" + EMBEDDING_MODEL + "routes:\n", 1)
    path = tmp / "policy.yaml"
    path.write_text(text + "budgets:\n  global: {limit_usd: 1000, window: total}\n")
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with (
        EmbeddedRedis(tmp / "redis", transport="tcp", appendfsync="no") as redis,
        MockUpstreamProcess() as mock,
        GatewayProcess(
            _policy(tmp),
            env={
                "MOCK_UPSTREAM_URL": mock.url,
                "REDIS_URL": redis.url,
                "ROUTER_ACCESS_LOG": "0",
                "ROUTER_ADMIN_KEY": ADMIN_KEY,
            },
            log_path=tmp / "gateway.log",
        ) as gw,
    ):
        yield gw, redis.url


@pytest.fixture(scope="module")
def gateway(stack: tuple[GatewayProcess, str]) -> GatewayProcess:
    return stack[0]


def _fuzz(
    gateway: GatewayProcess, op: Any, mode: GenerationMode, n: int, statuses: Counter[int]
) -> None:
    """Run ``n`` examples of ``op`` in ``mode``; every answer must be below 500."""
    # The admin models parse leniently (``"expires": 0`` is a Unix time, ``"rpm": "5"`` a
    # number, as the CLI sends them), so a schema-violating admin body may still be accepted.
    negative = mode is GenerationMode.NEGATIVE and not op.path.startswith("/admin")

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        r = case.call(base_url=gateway.base_url, timeout=15, headers=AUTH)
        statuses[r.status_code] += 1
        assert r.status_code < 500, (case.method, case.path, case.body, r.text[:300])
        if negative:
            assert r.status_code >= 400, (case.path, case.body)
        if r.status_code >= 400:
            _assert_error_shape(case.path, r)

    check()


@pytest.mark.timeout(300)
def test_no_server_error_on_generated_requests(gateway: GatewayProcess) -> None:
    schema = schemathesis.openapi.from_url(gateway.base_url + "/openapi.json")
    statuses: Counter[int] = Counter()
    methods: set[str] = set()
    for result in schema.get_all_operations():
        op: Any = result.ok()  # type: ignore[union-attr]
        methods.add(f"{op.method.upper()} {op.path}")
        for (method, mode), n in EXAMPLES.items():
            if op.method.upper() == method:
                _fuzz(gateway, op, mode, n, statuses)
    assert {"POST /v1/chat/completions", "POST /v1/feedback", "POST /admin/keys"} <= methods
    assert {"PATCH /admin/keys/{key_id}", "DELETE /admin/keys/{key_id}"} <= methods
    assert {"POST /v1/responses", "POST /v1/messages", "POST /v1/messages/count_tokens"} <= methods
    assert {"POST /v1/embeddings", "GET /v1/responses/{response_id}"} <= methods
    assert "DELETE /v1/responses/{response_id}" in methods
    seen = dict(sorted(statuses.items()))
    print(f"schemathesis: {sum(statuses.values())} requests, statuses {seen}")
    assert sum(statuses.values()) >= 600
    assert statuses[200] > 0 and statuses[400] > 0 and statuses[201] > 0


JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: far beyond 64 bits too
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "assistant"]), "content": st.text(max_size=30)},
        optional={"name": JSON, "extra": JSON},
    ),
    min_size=1,
    max_size=3,
)
CHAT_FIELDS = ["seed", "max_tokens", "n", "temperature", "logit_bias", "stop", "tools", "user"]
CHAT = st.one_of(
    st.fixed_dictionaries(  # a valid request with unknown fields of any shape
        {"model": st.just("auto"), "messages": MESSAGES},
        optional={"stream": st.booleans(), "foo": JSON, "x_extra": JSON, "metadata": JSON},
    ),
    st.fixed_dictionaries(  # known fields with values of any shape
        {"model": st.sampled_from(["auto", "mock-local", "nope"]), "messages": MESSAGES},
        optional={k: JSON for k in CHAT_FIELDS},
    ),
    st.dictionaries(st.sampled_from(["model", "messages", *CHAT_FIELDS]), JSON),
    JSON,
)
FEEDBACK = st.one_of(
    st.fixed_dictionaries(
        {"request_id": st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True) | JSON},
        optional={"score": JSON, "thumbs": JSON, "needed_strong": JSON, "comment": JSON},
    ),
    JSON,
)
ADMIN = st.one_of(
    st.fixed_dictionaries(
        {"team": st.text(min_size=1, max_size=8) | JSON},
        optional={k: JSON for k in ("budget_usd", "rpm", "tpm", "window", "models", "expires")},
    ),
    JSON,
)


ITEMS = st.text(max_size=30) | st.lists(  # Responses input: a string or items
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "developer", "assistant"]), "content": JSON},
        optional={
            "type": st.sampled_from(["message", "function_call", "function_call_output"]) | JSON,
            **{k: JSON for k in ("call_id", "output", "name", "arguments", "id", "status")},
        },
    ),
    min_size=1,
    max_size=3,
)
RESPONSES_FIELDS = [
    "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens", "temperature",
    "top_p", "reasoning", "metadata", "store", "previous_response_id", "truncation", "user",
    "parallel_tool_calls",
]  # fmt: skip
RESPONSES = st.one_of(
    st.fixed_dictionaries(  # a valid request with unknown fields of any shape
        {"model": st.just("auto"), "input": st.text(min_size=1, max_size=30)},
        optional={"stream": st.booleans(), "store": st.booleans(), "foo": JSON},
    ),
    st.fixed_dictionaries(  # known fields with values of any shape
        {"model": st.sampled_from(["auto", "mock-local", "nope"]), "input": ITEMS},
        optional={k: JSON for k in RESPONSES_FIELDS if k != "input"},
    ),
    st.dictionaries(st.sampled_from(["model", *RESPONSES_FIELDS]), JSON),
    JSON,
)
BLOCK = st.fixed_dictionaries(  # an Anthropic content block, of a known type or not
    {"type": st.sampled_from(["text", "image", "document", "tool_use", "tool_result"]) | JSON},
    optional={
        k: JSON
        for k in ("text", "source", "id", "name", "input", "tool_use_id", "content", "is_error")
    }
    | {"cache_control": st.just({"type": "ephemeral"}) | JSON},
)
ANTHROPIC_MESSAGES = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system"]),
            "content": st.text(max_size=30) | st.lists(BLOCK, max_size=3),
        },
        optional={"extra": JSON},
    ),
    min_size=1,
    max_size=3,
)
MESSAGES_FIELDS = [
    "max_tokens", "system", "tools", "tool_choice", "thinking", "stop_sequences", "temperature",
    "top_p", "top_k", "metadata", "cache_control", "service_tier",
]  # fmt: skip
ANTHROPIC = st.one_of(
    st.fixed_dictionaries(  # a valid request with unknown fields of any shape
        {
            "model": st.just("auto"),
            "max_tokens": st.integers(1, 64),
            "messages": st.lists(
                st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=30)}),
                min_size=1,
                max_size=2,
            ),
        },
        optional={"stream": st.booleans(), "foo": JSON, "metadata": JSON},
    ),
    st.fixed_dictionaries(  # known fields with values of any shape
        {"model": st.sampled_from(["auto", "mock-local", "nope"]), "messages": ANTHROPIC_MESSAGES},
        optional={k: JSON for k in MESSAGES_FIELDS},
    ),
    st.dictionaries(st.sampled_from(["model", "messages", *MESSAGES_FIELDS]), JSON),
    JSON,
)
EMBEDDINGS = st.one_of(
    st.fixed_dictionaries(
        {
            "model": st.sampled_from(["mock-embed", "auto", "nope"]),
            "input": st.text(max_size=20)
            | st.lists(st.text(max_size=20), max_size=3)
            | st.lists(st.integers(), max_size=3)
            | JSON,
        },
        optional={
            "encoding_format": st.sampled_from(["float", "base64"]) | JSON,
            **{k: JSON for k in ("dimensions", "user", "foo")},
        },
    ),
    st.dictionaries(st.sampled_from(["model", "input", "encoding_format", "dimensions"]), JSON),
    JSON,
)


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("path", "strategy"),
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/responses", RESPONSES),
        ("/v1/messages", ANTHROPIC),
        ("/v1/messages/count_tokens", ANTHROPIC),
        ("/v1/embeddings", EMBEDDINGS),
        ("/v1/feedback", FEEDBACK),
        ("/admin/keys", ADMIN),
    ],
    ids=["chat", "responses", "messages", "count_tokens", "embeddings", "feedback", "admin"],
)
def test_json_of_any_shape_over_one_connection(
    gateway: GatewayProcess, path: str, strategy: Any
) -> None:
    """Every body gets an answer below 500 on the same keep-alive connection (no reset)."""
    statuses: Counter[int] = Counter()
    transport = httpx.HTTPTransport(retries=0)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(
        base_url=gateway.base_url, timeout=15, transport=transport, limits=limits, headers=AUTH
    ) as client:

        @given(body=strategy)
        @settings(
            max_examples=JSON_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(body: Any) -> None:
            data = _dumps(body)
            r = client.post(path, content=data, headers={"content-type": "application/json"})
            statuses[r.status_code] += 1
            assert r.status_code < 500, (path, data[:300], r.text[:300])
            if r.status_code >= 400:
                _assert_error_shape(path, r)

        check()
    print(
        f"{path}: {sum(statuses.values())} JSON bodies, statuses {dict(sorted(statuses.items()))}"
    )
    assert statuses[400] > 0, statuses


def _assert_error_shape(path: str, r: httpx.Response) -> None:
    """Anthropic's error shape on ``/v1/messages*``, OpenAI's envelope elsewhere."""
    body = r.json()
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
        assert body["error"]["type"] and body["error"]["message"], body
    else:
        assert set(body) == {"error"} and body["error"]["message"], body
        assert set(body["error"]) == {"message", "type", "param", "code"}, body


def _dumps(body: Any) -> bytes:
    """JSON text of ``body`` (the standard library writes integers of any size)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        import json

        return json.dumps(body).encode()


@pytest.mark.parametrize("path", FUZZ_PATHS)
def test_malformed_bodies_are_4xx(gateway: GatewayProcess, path: str) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=15, headers=AUTH) as client:
        for body in MALFORMED:
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text[:200])
            _assert_error_shape(path, r)


def test_big_integers_name_the_field(gateway: GatewayProcess) -> None:
    """The issue's cases: a 400 naming the field, the same with ``Cache-Control: no-store``."""
    base = '{"model": "auto", "messages": [{"role": "user", "content": "hi"}], '
    cases = {
        f'"seed": {2**64}': "seed",
        f'"seed": {-(2**63) - 1}': "seed",
        f'"logit_bias": {{"50256": {10**40}}}': "logit_bias.50256",
        f'"foo": {10**40}': "foo",
        f'"foo": [1, {{"bar": {10**30}}}]': "foo[1].bar",
    }
    with httpx.Client(base_url=gateway.base_url, timeout=15) as client:
        for extra, param in cases.items():
            for cc in ("", "no-store"):
                headers = {"content-type": "application/json", "cache-control": cc}
                r = client.post("/v1/chat/completions", content=base + extra + "}", headers=headers)
                assert r.status_code == 400, (extra, r.text)
                assert r.json()["error"]["param"] == param
                assert r.json()["error"]["code"] == "integer_out_of_range"
        in_range = base + f'"seed": {2**63 - 1}, "x": 1e300}}'
        ok = client.post("/v1/chat/completions", content=in_range)
        assert ok.status_code == 200, ok.text  # in range: passed through


def test_nothing_charged_for_rejected_requests(stack: tuple[GatewayProcess, str]) -> None:
    """Runs after the fuzz tests (module order): the ledger and the counters agree."""
    _, redis_url = stack

    async def check() -> None:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await asyncio.sleep(0.5)  # the last background ledger writes
            records = [r async for r in Ledger(client, Budgets(client)).read()]
            assert records, "the fuzz run served nothing"
            charged_rejections = [r for r in records if r.status >= 400 and r.cost_usd]
            print(f"ledger after the fuzz run: {len(records)} rows, "
                  f"{sum(r.status >= 400 for r in records)} of them rejections")  # fmt: skip
            assert charged_rejections == []
            key = bk.scope_key("g", "total")
            spent, reserved = await client.hmget(key, ["spent", "reserved"])
            assert int(reserved or 0) == 0
            total = sum(bk.to_nano(r.cost_usd) for r in records)
            assert abs(int(spent or 0) - total) <= len(records)
        finally:
            await client.aclose()

    asyncio.run(check())
