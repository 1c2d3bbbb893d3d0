"""The heuristic score: bounded, and ordered the way a person would order these prompts."""

from __future__ import annotations

from router.classify.heuristic import HeuristicClassifier, extract_features, heuristic_score
from router.protocol.chat_request import ChatRequest


def req(text: str, turns: int = 0) -> ChatRequest:
    msgs: list[dict[str, str]] = []
    for i in range(turns):
        msgs += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    msgs.append({"role": "user", "content": text})
    return ChatRequest.model_validate({"model": "auto", "messages": msgs})


EASY = ["hi", "What is the capital of France?", "Thanks!", "Translate 'cat' to German."]
HARD = [
    "Implement a thread-safe LRU cache in Python with O(1) get and put. It must support TTL "
    "eviction, should never exceed max_size, and ensure that concurrent readers never block. "
    "Explain the trade-offs step by step.\n```python\nclass LRU:\n    pass\n```",
    "Prove that the sum of 1/n^2 converges, then derive its exact value. First state the "
    "theorem you use, then show each step. The proof must be rigorous; at most one page.",
    "Design a rate limiter for a distributed API: compare token bucket and sliding window, "
    "analyze failure modes, and give a plan that handles 1) clock skew 2) Redis outages "
    "3) bursty tenants. Must not exceed 2 round trips per request.",
]


async def test_scores_are_bounded_and_ordered() -> None:
    clf = HeuristicClassifier()
    easy = [(await clf.classify(req(t))).score for t in EASY]
    hard = [(await clf.classify(req(t))).score for t in HARD]
    assert all(0.0 <= s <= 1.0 for s in easy + hard)
    assert max(easy) < 0.35 < 0.6 < min(hard)


def test_features_count_code_math_steps_and_constraints() -> None:
    f = extract_features(req(HARD[0]))
    assert f.code >= 3 and f.steps >= 1 and f.constraints >= 3
    assert extract_features(req(HARD[1])).math >= 2
    assert extract_features(req("a", turns=3)).turns == 7


def test_more_turns_and_length_raise_the_score() -> None:
    short = heuristic_score(extract_features(req("Summarise this.")))
    longer = heuristic_score(extract_features(req("Summarise this. " + "Context sentence. " * 200)))
    assert longer > short
    assert heuristic_score(extract_features(req("Summarise.", turns=5))) > heuristic_score(
        extract_features(req("Summarise."))
    )
