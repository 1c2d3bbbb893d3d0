"""Numbers the gateway cannot carry get a 400 naming the field; nothing else changes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.app import ContainErrors
from router.cache.canonical import _hash, canonicalize
from router.errors import InvalidRequest
from router.protocol.chat_request import parse_chat_request
from router.protocol.jsonsafe import INT_MAX, INT_MIN, check_numbers, out_of_range_field

BASE = '{"model": "auto", "messages": [{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (f'"seed": {INT_MAX + 1}', "seed"),
        (f'"seed": {INT_MIN - 1}', "seed"),
        (f'"logit_bias": {{"50256": {10**40}}}', "logit_bias.50256"),
        (f'"foo": {{"a": [0, {10**25}]}}', "foo.a[1]"),
    ],
)
def test_out_of_range_integers_name_the_field(extra: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_chat_request((BASE + ", " + extra + "}").encode())
    assert err.value.param == param and err.value.code == "integer_out_of_range"


PROTOCOL_BODIES = {  # every public protocol endpoint's parser -> a valid body without its "}"
    "responses": '{"model": "auto", "input": "hi"',
    "messages": '{"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]',
    "count_tokens": '{"model": "auto", "messages": [{"role": "user", "content": "x"}]',
    "embeddings": '{"model": "m", "input": "hi"',
}


def _protocol_parser(name: str) -> Callable[[bytes], object]:
    from router.api.embeddings import parse_embeddings_request
    from router.protocol.messages import parse_count_tokens_request, parse_messages_request
    from router.protocol.responses import parse_responses_request

    return {
        "responses": parse_responses_request,
        "messages": parse_messages_request,
        "count_tokens": parse_count_tokens_request,
        "embeddings": parse_embeddings_request,
    }[name]


@pytest.mark.parametrize("name", sorted(PROTOCOL_BODIES))
def test_every_protocol_names_the_out_of_range_field(name: str) -> None:
    parse = _protocol_parser(name)
    parse((PROTOCOL_BODIES[name] + "}").encode())  # the base body is valid
    body = PROTOCOL_BODIES[name] + f', "foo": {{"a": [0, {10**40}]}}}}'
    with pytest.raises(InvalidRequest) as err:
        parse(body.encode())
    assert (err.value.code, err.value.param) == ("integer_out_of_range", "foo.a[1]")
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        with pytest.raises(InvalidRequest) as err:
            parse((PROTOCOL_BODIES[name] + f', "x": {literal}}}').encode())
        assert err.value.code == "invalid_json", literal


def test_in_range_values_and_digit_strings_pass() -> None:
    body = BASE + f', "seed": {INT_MAX}, "x": {INT_MIN}, "s": "{"9" * 40}", "f": 1e300}}'
    req = parse_chat_request(body.encode())
    assert req.seed == INT_MAX
    canonicalize(req, "t")  # digests without error


def test_message_field_is_named() -> None:
    body = (
        '{"model": "a", "messages": [{"role": "user", "content": "x", "y": ' + str(10**20) + "}]}"
    )
    with pytest.raises(InvalidRequest) as err:
        parse_chat_request(body.encode())
    assert err.value.param == "messages[0].y"


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    deep: object = 10**30
    for _ in range(5000):
        deep = [deep]
    assert out_of_range_field({"a": deep}) == "a" + "[0]" * 5000
    with pytest.raises(InvalidRequest):
        check_numbers(b"[" * 3000 + b"1" * 30 + b"]" * 3000)


def test_digest_survives_what_orjson_cannot_write() -> None:
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    assert _hash({"x": deep}) == _hash({"x": deep})
    assert _hash({"x": 10**40}) != _hash({"x": 10**41})


async def test_unexpected_errors_are_a_500_without_reset() -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/", boom)], middleware=[Middleware(ContainErrors)])
    transport = httpx.ASGITransport(app=app)  # raises if the app raises
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/")
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
