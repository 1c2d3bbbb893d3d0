"""Validation of ``POST /v1/feedback`` bodies: 400s that name the field (no Redis needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from router.api.feedback import parse_feedback
from router.errors import InvalidRequest
from tests.unit.core.policy_text import write_policy
from tests.unit.observability.harness import Harness, harness


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"score": 1}, "request_id"),
        ({"request_id": "r1", "score": "5"}, "score"),
        ({"request_id": "r1", "thumbs": "sideways"}, "thumbs"),
        ({"request_id": "r1", "thumbs": "up", "needed_strong": "yes"}, "needed_strong"),
        ({"request_id": "r1", "thumbs": "up", "comment": 5}, "comment"),
        ({"request_id": "r1", "thumbs": "up", "extra": 1}, "extra"),
        ({"request_id": "bad id with spaces", "thumbs": "up"}, "request_id"),
        ({"request_id": "r1"}, "score"),
        ({"request_id": "r1", "score": 1e400}, "score"),
    ],
)
def test_invalid_bodies_name_the_field(body: dict[str, object], param: str) -> None:
    raw = orjson.dumps(body) if "1e400" not in str(body) else b'{"request_id":"r1","score":1e400}'
    with pytest.raises(InvalidRequest) as err:
        parse_feedback(raw)
    assert err.value.param == param, err.value.message


def test_not_json_and_not_an_object() -> None:
    for raw in (b"{", b"[]", b"3"):
        with pytest.raises(InvalidRequest) as err:
            parse_feedback(raw)
        assert err.value.code == "invalid_json"


def test_valid_bodies() -> None:
    fb = parse_feedback(b'{"request_id": "r1", "score": 4, "needed_strong": true}')
    assert fb.rating == 4.0 and fb.needed_strong is True and fb.thumbs is None
    fb = parse_feedback(b'{"request_id": "r1", "thumbs": "down", "comment": "wrong"}')
    assert fb.thumbs == "down" and fb.comment == "wrong"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for x in harness(write_policy(tmp_path)):
        yield x


async def test_http_400_and_503_without_redis(h: Harness) -> None:
    r = await h.client.post("/v1/feedback", json={"request_id": "r1", "thumbs": "meh"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "thumbs"
    r = await h.client.post("/v1/feedback", json={"request_id": "r1", "thumbs": "up"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "feedback_store_unavailable"
