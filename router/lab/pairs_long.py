"""Labelled pairs of ordinary-length prompts (50-300 tokens) for ``router cache eval``.

Prompts come from the files of ``../shared/data/router``, read at generation time (never
copied into the repository); each prompt goes to one set only (tuning or holdout). A true pair
rewords a prompt lightly; a near miss changes one thing (a number, an entity, a polarity, one
content word). ``python -m router.lab.pairs --long`` regenerates both checked-in sets.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import orjson

LONG_SOURCES = (
    "zeroeval_math_l5.jsonl",
    "mmlu_mixtral_gpt4.jsonl",
    "alpaca_eval.jsonl",
    "arena_bench_v1.jsonl",
    "routerbench.jsonl",
    "zeroeval_crux.jsonl",
)
"""The files of ``../shared/data/router`` whose prompts seed the long pair sets (read at
generation time, never copied into the repository)."""
LONG_TOKENS = (50, 300)
"""Word pieces (all-MiniLM-L6-v2's tokenizer, no special tokens) of a seed prompt, inclusive."""
_PREFIXES = (
    "",
    "Please answer the following.\n\n",
    "Question:\n",
    "Here is a problem for you.\n",
    "Could you help me with this?\n\n",
    "I need help with this.\n",
)
_SUFFIXES = ("", "\n\nThanks!", "\n\nThank you in advance.", "\nThanks a lot.")
_SYNONYMS = (
    ("find", "determine"), ("calculate", "compute"), ("explain", "describe"),
    ("choose", "select"), ("give", "provide"), ("help", "assist"), ("simple", "easy"),
    ("large", "big"), ("each", "every"), ("quickly", "rapidly"), ("use", "utilize"),
    ("want", "would like"), ("begin", "commence"), ("about", "regarding"),
    ("shows", "displays"), ("need", "require"), ("method", "approach"),
)  # fmt: skip
_CONTRACTIONS = (
    ("do not", "don't"), ("does not", "doesn't"), ("is not", "isn't"), ("are not", "aren't"),
    ("cannot", "can't"), ("what is", "what's"), ("it is", "it's"),
)  # fmt: skip
_NEGATABLE = re.compile(r"\b(is|are|was|were|does|do|can|should|will)\b(?! not)")
_NEGATED = re.compile(r"\b(is|are|was|were|does|do|can|should|will) not\b")
_DIGITS = re.compile(r"(?<![\w.])\d+(?![\w.])")
_CONTENT = re.compile(r"(?<![\w'’])[a-z]{5,}(?![\w'’])")
_CAP_WORD = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]{3,}(?![\w'’])")
LongKind = Literal["numbers", "entities", "negation", "polarity", "topic"]


def _sub_word(text: str, old: str, new: str, rng: random.Random) -> str:
    """Replace one whole-word occurrence of ``old`` (either case of its first letter)."""
    hits = [m for m in re.finditer(rf"\b({re.escape(old)}|{re.escape(old.capitalize())})\b", text)]
    if not hits:
        return text
    m = rng.choice(hits)
    rep = new.capitalize() if m.group(0)[0].isupper() else new
    return text[: m.start()] + rep + text[m.end() :]


def paraphrase_long(text: str, rng: random.Random) -> str:
    """A light rewording of ``text`` that keeps its answer: another preamble or sign-off, a few
    synonyms and contractions, and sometimes fewer blank lines."""
    out = text
    rules = [*_SYNONYMS, *_CONTRACTIONS]
    for old, new in rng.sample(rules, len(rules)):
        if rng.random() < 0.5:
            old, new = new, old
        if rng.random() < 0.6:
            out = _sub_word(out, old, new, rng)
    if rng.random() < 0.3:
        out = re.sub(r"\n\s*\n", "\n", out)
    return rng.choice(_PREFIXES) + out.strip() + rng.choice(_SUFFIXES)


def _long_near_miss(
    text: str, rng: random.Random, entities: Sequence[str], content: Sequence[str]
) -> tuple[str, LongKind] | None:
    """``text`` with one change that alters its answer, and the kind of change; None when no
    change of the drawn kind applies."""
    kind: LongKind = rng.choice(("numbers", "entities", "negation", "polarity", "topic"))
    if kind == "numbers":
        hits = list(_DIGITS.finditer(text))
        if not hits:
            return None
        m = rng.choice(hits)
        value = int(m.group(0))
        new = str(value + rng.randint(1, 9) if value < 1000 else value * 2)
        return text[: m.start()] + new + text[m.end() :], kind
    if kind == "entities":
        hits = [m for m in _CAP_WORD.finditer(text) if m.group(0).lower() not in _FUNCTION_SET]
        if not hits:
            return None
        m = rng.choice(hits)
        others = [e for e in entities if e != m.group(0)]
        if not others:
            return None
        return text[: m.start()] + rng.choice(others) + text[m.end() :], kind
    if kind == "negation":
        negated = list(_NEGATED.finditer(text))
        if negated and rng.random() < 0.5:
            m = rng.choice(negated)
            return text[: m.start()] + m.group(1) + text[m.end() :], kind
        hits = list(_NEGATABLE.finditer(text))
        if not hits:
            return None
        m = rng.choice(hits)
        return text[: m.end()] + " not" + text[m.end() :], kind
    if kind == "polarity":
        for x, y in rng.sample(_POLAR_PAIRS, len(_POLAR_PAIRS)):
            if re.search(rf"\b{x}\b", text):
                return _sub_word(text, x, y, rng), kind
        return None
    hits = [m for m in _CONTENT.finditer(text) if m.group(0) not in _FUNCTION_SET]
    if not hits:
        return None
    m = rng.choice(hits)
    others = [w for w in content if w != m.group(0)]
    if not others:
        return None
    return text[: m.start()] + rng.choice(others) + text[m.end() :], kind


_POLAR_PAIRS = (
    ("largest", "smallest"), ("smallest", "largest"), ("maximum", "minimum"),
    ("minimum", "maximum"), ("more", "less"), ("increase", "decrease"), ("before", "after"),
    ("after", "before"), ("least", "most"), ("most", "least"), ("first", "last"),
    ("longest", "shortest"), ("positive", "negative"), ("advantages", "disadvantages"),
)  # fmt: skip
_FUNCTION_SET = frozenset(
    """about above after again against along among another because before being below
    between both could during either every following further given having other should their
    there these those though through under until which while whose within without would
    answer question write explain below above following""".split()  # noqa: SIM905
)


def long_prompts(data_dir: Path, part: int, parts: int = 2) -> list[str]:
    """Prompts of ``LONG_SOURCES`` with 50-300 word pieces, deduplicated, in file order; only
    those whose id hashes to ``part`` of ``parts`` (so two sets share no seed prompt)."""
    import hashlib

    from tokenizers import Tokenizer

    from router.classify.encoder import default_model_dir

    tok = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    lo, hi = LONG_TOKENS
    out: list[str] = []
    seen: set[str] = set()
    for name in LONG_SOURCES:
        path = data_dir / name
        if not path.is_file():
            continue
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        texts = []
        for row in rows:
            digest = hashlib.sha256(str(row["id"]).encode()).digest()
            text = str(row["prompt"]).strip()
            if digest[0] % parts == part and text not in seen:
                texts.append(text)
                seen.add(text)
        counts = tok.encode_batch(texts, add_special_tokens=False)
        out.extend(t for t, e in zip(texts, counts, strict=True) if lo <= len(e.ids) <= hi)
    return out


def generate_long(
    prompts: Sequence[str], n_true: int = 200, n_false: int = 200, seed: int = 21
) -> Iterator[dict[str, object]]:
    """Yield ``n_true`` paraphrase pairs and ``n_false`` near misses of ordinary-length prompts,
    deterministic by ``seed`` and ``prompts``. A near miss changes one number, entity, negation,
    polarity word or content word of a prompt; one time in four its two sides are also worded
    differently, so that only the similarity threshold can catch it."""
    for row, _seed_prompt in generate_long_seeded(prompts, n_true, n_false, seed):
        yield row


def generate_long_seeded(
    prompts: Sequence[str], n_true: int = 200, n_false: int = 200, seed: int = 21
) -> Iterator[tuple[dict[str, object], str]]:
    """:func:`generate_long`'s pairs, each with the prompt it was made from."""
    rng = random.Random(seed)
    pool = list(prompts)
    rng.shuffle(pool)
    entities = sorted({m.group(0) for t in pool for m in _CAP_WORD.finditer(t)})
    content = sorted({m.group(0) for t in pool for m in _CONTENT.finditer(t)})
    made_true = made_false = 0
    for i, text in enumerate(pool):
        if made_true >= n_true and made_false >= n_false:
            break
        if i % 2 == 0 and made_true < n_true:
            a, b = paraphrase_long(text, rng), paraphrase_long(text, rng)
            if a != b:
                made_true += 1
                yield {"a": a, "b": b, "same": True, "kind": "paraphrase", "template": "long"}, text
        elif i % 2 == 1 and made_false < n_false:
            changed = _long_near_miss(text, rng, entities, content)
            if changed is None:
                continue
            other, kind = changed
            state = rng.getstate()
            a = paraphrase_long(text, rng)
            if rng.random() < 0.75:  # the same wording on both sides
                rng.setstate(state)
                b = paraphrase_long(other, rng)
            else:
                b = paraphrase_long(other, rng)
            if a != b:
                made_false += 1
                yield {"a": a, "b": b, "same": False, "kind": kind, "template": "long"}, text


CHECKED_IN_SEED = 21
"""The seed of the two checked-in long sets (tuning: part 0, holdout: part 1)."""
FRESH_SEED = 2112
"""The seed of the fresh long holdout (``cache_pairs_long_holdout2.jsonl``)."""


def _prompt_key(text: str) -> str:
    """A prompt's start, lower-cased, whitespace collapsed: the same question copied into two
    source files (MMLU in RouterBench, say) under other ids and formatting has the same key."""
    return " ".join(text.lower().split())[:80]


def used_long_prompts(data_dir: Path) -> set[str]:
    """The keys (:func:`_prompt_key`) of every prompt that seeds a pair of the two checked-in
    long sets, as :func:`write_long_pairs` regenerates them."""
    used: set[str] = set()
    for part in (0, 1):
        seeded = generate_long_seeded(long_prompts(data_dir, part), seed=CHECKED_IN_SEED)
        used.update(_prompt_key(text) for _row, text in seeded)
    return used


def fresh_long_prompts(data_dir: Path) -> list[str]:
    """The holdout half's prompts (part 1) that seed no pair of either checked-in long set:
    the seeds of a fresh holdout, after the first one was used to judge a guard change."""
    used = used_long_prompts(data_dir)
    return [t for t in long_prompts(data_dir, 1) if _prompt_key(t) not in used]


def write_long_pairs(
    path: Path,
    data_dir: Path,
    part: int,
    n_true: int = 200,
    n_false: int = 200,
    seed: int = CHECKED_IN_SEED,
) -> int:
    """Write the long pair set seeded by ``part`` of the data's prompts (``part`` -1: the
    fresh holdout's prompts, :func:`fresh_long_prompts`); returns how many."""
    prompts = fresh_long_prompts(data_dir) if part == -1 else long_prompts(data_dir, part)
    rows = list(generate_long(prompts, n_true, n_false, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return len(rows)
