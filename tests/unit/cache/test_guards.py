"""The false-hit guards on their own (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.cache.guards import _wording_reason, false_hit_reason, features

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "Which city is the capital of France?"),
        ("Convert 5 km to miles", "How many miles are in five kilometres?"),
        ("What is 1,000 divided by 8?", "What is 1000 divided by 8?"),
        ("Explain how Python manages memory", "how does python manage memory?"),
        ("What does `x.sort()` do?", "Explain what `x.sort()` does"),
        ("Why can't penguins fly?", "Why are penguins not able to fly?"),
        ("How do I write a good cover letter?", "Tips for writing a strong cover letter?"),
        ("What foods are high in iron?", "Which foods are rich in iron?"),
    ],
)
def test_paraphrases_pass(a: str, b: str) -> None:
    assert false_hit_reason(a, b) is None


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Convert 5 km to miles", "Convert 8 km to miles", "numbers"),
        ("What is 12 * 7?", "What is 12 + 7?", "operators"),
        ("Convert 5 km to miles", "Convert 5 km to feet", "units"),
        ("Boil water at 100 °C", "Boil water at 100 °F", "units"),
        ("What is the capital of France?", "What is the capital of Germany?", "entities"),
        ("Flights from New York to Paris", "Flights from New Jersey to Paris", "entities"),
        ("What does `x.sort()` do?", "What does `sorted(x)` do?", "code"),
        ("Why is my_var undefined?", "Why is my_val undefined?", "code"),
        ("Which birds can fly?", "Which birds cannot fly?", "negation"),
        ("List fruits with vitamin C", "List fruits without vitamin C", "negation"),
        ("Find the largest element", "Find the smallest element", "polarity"),
        ("How do I grow tomatoes indoors?", "How do I grow tomatoes outdoors?", "one content"),
    ],
)
def test_near_misses_blocked(a: str, b: str, reason: str) -> None:
    got = false_hit_reason(a, b)
    assert got is not None and reason[:5] in got.replace("named ", "")


def test_single_substitution_needs_identical_rest() -> None:
    assert (
        false_hit_reason("How do I center a div in CSS?", "How do I center a div with CSS?") is None
    )


def test_identical_text_always_passes() -> None:
    assert false_hit_reason("x 1 `y`", "x 1 `y`") is None


STORY = (
    "A farmer keeps sheep and goats on a hillside farm. Every morning she walks the animals to "
    "the upper meadow, counts them at the gate, and brings them back to the barn before dark. "
    "Some days the weather turns and the flock has to shelter under the old oak trees near the "
    "river. Describe how she could organise the daily routine so that no animal is left behind."
)


def test_long_prompt_with_one_swapped_word_is_refused_even_when_reworded() -> None:
    swapped = STORY.replace("oak trees", "pine trees")
    reworded = "Here is a problem for you.\n" + swapped + "\n\nThanks!"
    assert false_hit_reason(STORY, reworded) == "a content word was swapped"
    # a single-synonym rewording looks the same, and is refused too
    synonym = STORY.replace("could organise", "could arrange")
    assert false_hit_reason(STORY, "Question:\n" + synonym) == "a content word was swapped"


def test_long_prompt_with_another_preamble_passes() -> None:
    assert false_hit_reason(STORY, "Question:\n" + STORY + "\nThank you in advance.") is None
    assert false_hit_reason(STORY, "Could you help me with this?\n\n" + STORY) is None


MCQ = (  # 27 words: under the old 40-word floor, as the long holdout's three false hits were
    "When a retrovirus inserted its DNA into a bacterial gene, it altered the normal reading "
    "frame by one base pair. This type of mutation is called\nA. inversion\nB. frameshift"
)


def test_mid_length_prompt_with_one_swapped_word_is_refused_behind_another_preamble() -> None:
    swapped = MCQ.replace("reading frame", "reading laboratories")
    assert false_hit_reason("Here is a problem for you.\n" + MCQ, swapped) == (
        "a content word was swapped"
    )
    assert false_hit_reason("Question:\n" + MCQ, MCQ + "\n\nThanks!") is None


def test_swap_guard_leaves_short_prompts_to_the_old_rules() -> None:
    # under 20 words, a reworded prompt with one different word is the threshold's business
    assert (
        false_hit_reason("Tips for growing tomatoes indoors", "How to grow tomatoes inside") is None
    )


def _eager_reason(cached: str, new: str) -> str | None:
    """The guards' verdict from every feature of both prompts, computed up front: what
    :func:`false_hit_reason` decided before it extracted features lazily."""
    if cached == new:
        return None
    a, b = features(cached), features(new)
    checks = [
        (a.numbers != b.numbers, "numbers differ"),
        (a.operators != b.operators, "operators differ"),
        (a.units != b.units, "units differ"),
        (not a.entities <= b.words or not b.entities <= a.words, "named entities differ"),
        (a.code != b.code, "code differs"),
        (a.negations != b.negations, "negation differs"),
    ]
    for failed, reason in checks:
        if failed:
            return reason
    return _wording_reason(cached, new, a.polarity, b.polarity)


def test_lazy_verdicts_equal_the_eager_ones_on_every_checked_in_pair() -> None:
    """Extracting a feature only when its check is reached changes no verdict: every pair of
    the checked-in sets, both ways round, and variants that trip each kind of guard."""
    seen: dict[str | None, int] = {}
    for path in sorted(DATA.glob("cache_pairs*.jsonl")):
        for line in path.read_text().splitlines():
            pair = json.loads(line)
            a, b = pair["a"], pair["b"]
            for x, y in (
                (a, b),
                (b, a),
                (a, a + " not"),
                (a, a.replace("1", "2")),
                (a, f"The {a} in `f(x)` for 5 km"),
                (a, a.replace("e", "E")),
                (f"{a} 3 + 4", f"{a} 3 * 4"),
            ):
                reason = false_hit_reason(x, y)
                assert reason == _eager_reason(x, y), (x, y)
                seen[reason] = seen.get(reason, 0) + 1
    assert len(seen) == 10, seen  # every guard and None were exercised
