"""Streaming text assembly: partial characters and stop sequences that span tokens."""

from __future__ import annotations

from collections.abc import Sequence

from router.backends.local_decode import TextAssembler, held_back_chars


def pieces_decoder(pieces: Sequence[str]) -> TextAssembler:
    return TextAssembler(lambda ids: "".join(pieces[i] for i in ids))


def run(pieces: Sequence[str], stops: Sequence[str] = ()) -> tuple[list[str], bool]:
    asm = TextAssembler(lambda ids: "".join(pieces[i] for i in ids), stops)
    out: list[str] = []
    for i in range(len(pieces)):
        step = asm.push(i)
        if step.text:
            out.append(step.text)
        if step.stopped:
            return out, True
    if tail := asm.finish():
        out.append(tail)
    return out, False


def test_held_back_is_the_longest_stop_prefix_at_the_end() -> None:
    assert held_back_chars("hello wor", ["world"]) == 3
    assert held_back_chars("hello", ["xyz"]) == 0
    assert held_back_chars("ab", ["b", "abc"]) == 2
    assert held_back_chars("", ["abc"]) == 0


def test_without_stops_every_piece_is_released_at_once() -> None:
    out, stopped = run(["Hel", "lo", " world"])
    assert out == ["Hel", "lo", " world"]
    assert not stopped


def test_a_stop_spanning_pieces_cuts_the_text_before_it() -> None:
    out, stopped = run(["The ans", "wer is 4", "2.\nUs", "er: more"], stops=["\nUser:"])
    assert "".join(out) == "The answer is 42."
    assert stopped


def test_a_prefix_that_does_not_become_a_stop_is_released_later() -> None:
    out, stopped = run(["a\n", "Us", "ually"], stops=["\nUser:"])
    assert out == ["a", "\nUsually"]
    assert not stopped


def test_partial_utf8_is_held_until_the_character_is_complete() -> None:
    raw = [b"caf", "é".encode()[:1], "é".encode()[1:] + b"!"]
    asm = TextAssembler(lambda ids: b"".join(raw[i] for i in ids).decode(errors="replace"))
    out = [asm.push(i).text for i in range(3)]
    assert out == ["caf", "", "é!"]


def test_stop_at_the_very_start_releases_nothing() -> None:
    out, stopped = run(["STOP", "more"], stops=["STOP"])
    assert out == []
    assert stopped


def test_text_property_collects_what_was_released() -> None:
    asm = pieces_decoder(["a", "b"])
    asm.push(0)
    asm.push(1)
    assert asm.text == "ab"


def test_each_token_decodes_a_short_window_only() -> None:
    seen: list[int] = []
    words = [f"w{i} " for i in range(300)]

    def decode(ids: Sequence[int]) -> str:
        seen.append(len(ids))
        return "".join(words[i] for i in ids)

    asm = TextAssembler(decode, ["STOP"])
    out = "".join(asm.push(i).text for i in range(300)) + asm.finish()
    assert out == "".join(words)
    assert max(seen) <= 3


def test_a_leading_space_dropped_at_a_window_start_is_kept() -> None:
    # Like SentencePiece: a token's leading space is dropped when it starts the decoded text.
    pieces = [" Hello", " big", " world"]

    def decode(ids: Sequence[int]) -> str:
        return "".join(pieces[i] for i in ids).removeprefix(" ")

    asm = TextAssembler(decode)
    out = [asm.push(i).text for i in range(3)]
    assert "".join(out) == "Hello big world"
