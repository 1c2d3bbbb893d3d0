"""``router eval --adapt K`` replays exactly one labelled file; anything else is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.cli.main import main


@pytest.mark.parametrize("extra", [("--data", "{dir}"), ("--data", "{a}", "{b}")])
def test_adapt_needs_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("")
    b.write_text("")
    args = [x.format(dir=tmp_path, a=a, b=b) for x in extra]
    assert main(["eval", "--adapt", "5", *args]) == 2
    assert "--adapt replays one labelled file" in capsys.readouterr().err


def test_eval_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--adapt", "5", "--data", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
