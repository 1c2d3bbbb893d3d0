"""Lexical lab columns: what they measure, and a nested choice that cannot see the family."""

from __future__ import annotations

import numpy as np
import pytest

from router.lab.lexical import COLUMNS, lexical_columns, nested_gains


def test_columns_measure_rare_long_words_and_sentences() -> None:
    texts = ["hi there. ok!", "Electroencephalography characterises neurophysiology", ""]
    pieces = {"electroencephalography": 5, "characterises": 2, "neurophysiology": 3}
    cols = lexical_columns(texts, lambda w: pieces.get(w, 1))
    assert list(cols) == list(COLUMNS)
    assert cols["rare_share"].tolist() == [0.0, 1.0, 0.0]
    assert cols["pieces_per_word"][1] == pytest.approx(10 / 3)
    assert cols["long_word_share"].tolist() == [0.0, 1.0, 0.0]
    assert cols["words_per_sentence"][0] == pytest.approx(3 / 2)
    assert cols["upper_share"][1] == pytest.approx(1 / len(texts[1]))
    assert cols["ttr"][2] == 1.0 and cols["pieces_per_word"][2] == 1.0  # empty text


def _data(
    helps_everywhere: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 800
    units = np.asarray(["a", "b", "c", "d"] * (n // 4), dtype=np.str_)
    length = rng.normal(size=n)
    signal = rng.normal(size=n)
    sign = np.where(units == "d", -1.0, 1.0) if not helps_everywhere else np.ones(n)
    need = (0.3 * length + sign * signal + 0.5 * rng.normal(size=n)) > 0
    weak = np.where(need, 0.0, 1.0)
    strong = np.ones(n)
    return signal, length, units, weak, strong


def test_a_column_that_helps_every_family_is_chosen_without_seeing_it() -> None:
    signal, length, units, weak, strong = _data(helps_everywhere=True)
    res = nested_gains(signal, length, units, weak, strong, [0.5, 1.0, 2.0])
    assert all(lam > 0 and gain > 0.05 for lam, gain in res.values())


def test_a_column_whose_sign_flips_is_left_out_where_it_would_hurt() -> None:
    signal, length, units, weak, strong = _data(helps_everywhere=False)
    res = nested_gains(signal, length, units, weak, strong, [0.5, 1.0, 2.0])
    # d is the family it hurts: chosen on a, b and c, it gets the signal and loses.
    assert res["d"][0] > 0 and res["d"][1] < 0
    # holding out a, the other three disagree, so λ is 0 and a is scored by length alone.
    assert res["a"] == (0.0, 0.0)
