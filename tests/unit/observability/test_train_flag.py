"""``router train --from-ledger``: the flag, and the rows made from feedback (no Redis)."""

from __future__ import annotations

import orjson
import pytest

from router.cli.main import build_parser
from router.learning.feedback_rows import build_rows, ledger_training_data

FACTS = {"model": "small", "prompt_sha256": "ab" * 32, "tenant": "default"}
MESSAGES = orjson.dumps([{"role": "user", "content": "prove it"}]).decode()


def test_flag_parses_without_data() -> None:
    args = build_parser().parse_args(["train", "--from-ledger", "--out", "m"])
    assert args.from_ledger is True and args.data == []


def test_nothing_to_train_on_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["train", "--out", "m"])
    assert ledger_training_data(args) is None
    assert "--from-ledger" in capsys.readouterr().err


def test_rows_need_a_label_and_a_stored_prompt() -> None:
    feedback = [
        {**FACTS, "request_id": "a", "needed_strong": "1", "messages": MESSAGES},
        {**FACTS, "request_id": "b", "needed_strong": "0", "messages": MESSAGES},
        {**FACTS, "request_id": "c", "needed_strong": "", "thumbs": "up", "messages": MESSAGES},
        {**FACTS, "request_id": "d", "needed_strong": "1"},
    ]
    rows, stats = build_rows(feedback, "weak", "strong")
    assert [r["label"] for r in rows] == [1, 0]
    assert rows[0]["scores"] == {"weak": 0.0, "strong": 1.0}
    assert rows[1]["scores"] == {"weak": 1.0, "strong": 1.0}
    assert rows[0]["prompt"] == [{"role": "user", "content": "prove it"}]
    assert rows[0]["source"] == "feedback/small" and rows[0]["id"] == "feedback/default/a"
    assert (stats.feedback, stats.rows, stats.unlabelled, stats.without_prompt) == (4, 2, 1, 1)
