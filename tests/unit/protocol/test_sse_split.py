"""sse.DataSplitter, fed a stream in pieces of any size, gives what one pass over the whole
stream gives: the reference below is the relay's parser before the splitter (whole buffer, CRLF
read as LF, events split at blank lines, one payload per ``data:`` line, stop at ``[DONE]``)."""

from __future__ import annotations

import itertools

import orjson
import pytest

from router.protocol.sse import DataSplitter


def reference(stream: bytes) -> tuple[list[bytes], bool]:
    """Every payload of ``stream`` in one pass, and whether ``[DONE]`` came."""
    out: list[bytes] = []
    buf = stream.replace(b"\r\n", b"\n")
    while (end := buf.find(b"\n\n")) >= 0:
        event, buf = buf[:end], buf[end + 2 :]
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return out, True
            out.append(payload)
    return out, False


def fed(stream: bytes, cuts: list[int]) -> tuple[list[bytes], bool]:
    """``stream`` fed to one splitter in the pieces between ``cuts``."""
    splitter = DataSplitter()
    out: list[bytes] = []
    bounds = [0, *cuts, len(stream)]
    for start, end in itertools.pairwise(bounds):
        out += splitter.feed(stream[start:end])
    return out, splitter.done


def chunk(content: str | None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return orjson.dumps({"id": "c1", "choices": choices, "usage": usage})


STREAMS = {
    "usage in the last chunk": b"".join(
        [
            b"data: " + chunk("Hel") + b"\n\n",
            b"data: " + chunk("lo") + b"\n\n",
            b"data: " + chunk(None, {"prompt_tokens": 3, "completion_tokens": 2}) + b"\n\n",
            b"data: [DONE]\n\n",
        ]
    ),
    "CRLF line ends": b"data: " + chunk("a") + b"\r\n\r\ndata: " + chunk("b") + b"\r\n\r\n"
    b"data: [DONE]\r\n\r\n",
    "multi-line event, comments and other fields": b": keep-alive\n\n"
    b"event: message\nid: 7\ndata: " + chunk("x") + b"\ndata: " + chunk("y") + b"\n\n"
    b"retry: 100\n\ndata:" + chunk("no space") + b"\n\ndata: [DONE]\n\n",
    "nothing after [DONE] counts": b"data: " + chunk("a") + b"\n\ndata: [DONE]\n\n"
    b"data: " + chunk("after") + b"\n\n",
    "[DONE] inside an event": b"data: "
    + chunk("a")
    + b"\ndata: [DONE]\ndata: "
    + chunk("b")
    + b"\n\n",
    "ends without [DONE], last event open": b"data: " + chunk("a") + b"\n\ndata: " + chunk("b"),
    "blank-line noise": b"\n\n\n\ndata: " + chunk("a") + b"\n\n\n\ndata: [DONE]\n\n",
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_every_single_cut_agrees_with_one_pass(name: str) -> None:
    stream = STREAMS[name]
    whole = reference(stream)
    assert fed(stream, []) == whole
    for cut in range(1, len(stream)):
        assert fed(stream, [cut]) == whole, f"cut at byte {cut}"


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_byte_by_byte_agrees_with_one_pass(name: str) -> None:
    stream = STREAMS[name]
    assert fed(stream, list(range(1, len(stream)))) == reference(stream)


def test_cr_and_lf_split_across_reads() -> None:
    splitter = DataSplitter()
    assert splitter.feed(b"data: " + chunk("a") + b"\r") == []
    assert splitter.feed(b"\n\r") == []
    assert splitter.feed(b"\ndata: [DONE]\r\n\r\n") == [chunk("a")]
    assert splitter.done


def test_payloads_come_out_in_order_and_nothing_after_done() -> None:
    splitter = DataSplitter()
    stream = STREAMS["usage in the last chunk"]
    payloads = splitter.feed(stream)
    assert [orjson.loads(p)["choices"] for p in payloads][:2] == [
        [{"index": 0, "delta": {"content": "Hel"}}],
        [{"index": 0, "delta": {"content": "lo"}}],
    ]
    assert orjson.loads(payloads[2])["usage"] == {"prompt_tokens": 3, "completion_tokens": 2}
    assert splitter.done and splitter.feed(b"data: " + chunk("late") + b"\n\n") == []
