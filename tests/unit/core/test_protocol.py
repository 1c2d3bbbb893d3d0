"""Request parsing: strict types, and 400s that name the field."""

from __future__ import annotations

import pytest

from router.errors import InvalidRequest
from router.protocol.chat_request import parse_chat_request

OK = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'


def test_valid_request_keeps_the_raw_body_and_extras() -> None:
    req = parse_chat_request(
        b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "top_k": 5,'
        b' "tools": null}'
    )
    assert req.model == "auto"
    assert req.extra_fields() == ["top_k"]
    assert req.raw_body()["top_k"] == 5
    assert req.raw_body()["tools"] is None


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b'{"model": "auto",', None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (b'{"model": "auto", "messages": []}', "messages", "empty_array"),
        (
            b'{"messages": [{"role": "user", "content": "x"}]}',
            "model",
            "missing_required_parameter",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": 1}]}',
            "messages[0].content",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "robot", "content": "x"}]}',
            "messages[0].role",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}], "temperature": "0.5"}',
            "temperature",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}], "temperature": 3}',
            "temperature",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            "max_tokens",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}], "n": 1.5}',
            "n",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}],'
            b' "stop": ["a","b","c","d","e"]}',
            "stop",
            "invalid_value",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}],'
            b' "tools": [{"type": "function"}]}',
            "tools[0].function",
            "missing_required_parameter",
        ),
        (
            b'{"model": "a", "messages": [{"role": "user", "content": "x"}],'
            b' "response_format": {"type": "yaml"}}',
            "response_format.type",
            "invalid_value",
        ),
    ],
)
def test_bad_requests_name_the_field(body: bytes, param: str | None, code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(body)
    err = info.value
    assert err.status == 400
    assert err.param == param
    assert err.code == code
    if param:
        assert param.split("[")[0].split(".")[0] in err.message


def test_multipart_content_and_images() -> None:
    req = parse_chat_request(
        b'{"model": "a", "messages": [{"role": "user", "content": [{"type": "text", "text": "what'
        b' is this"}, {"type": "image_url", "image_url": {"url": "data:x"}}]}]}'
    )
    assert req.has_images()
    assert req.last_user_text() == "what is this"
