"""What the encoder reads: the last user turn plus a short context, cut to a token budget.

Everything here is pure (no model, no I/O) so the serving path, training and ``router score``
build exactly the same encoder input from a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CHARS_PER_TOKEN_BOUND = 12
"""A text longer than ``CHARS_PER_TOKEN_BOUND * max_tokens`` characters is cut to its head and
tail before tokenizing: no WordPiece token is that long, so the budget is never starved, and a
100 kB prompt costs no more to tokenize than a 3 kB one."""

DEFAULT_CONTEXT_CHARS = 400
"""How much of the earlier turns of a chat is kept (their tail, in characters)."""


@dataclass(frozen=True, slots=True)
class PromptText:
    """The encoder's view of a request: the last user turn and a little of what came before."""

    user: str
    context: str = ""
    turns: int = 1
    """User and assistant messages in the chat (1 for a single prompt)."""


def prompt_from_messages(
    messages: Sequence[tuple[str, str]], context_chars: int = DEFAULT_CONTEXT_CHARS
) -> PromptText:
    """Build a :class:`PromptText` from ``(role, text)`` pairs in chat order.

    The last user message is the prompt. The tail of the earlier messages (system prompt and
    previous turns, at most ``context_chars`` characters) is kept as context: a follow-up such as
    "now do it in O(n)" is only hard because of what came before it.
    """
    last_user = -1
    for i in range(len(messages) - 1, -1, -1):
        if messages[i][0] == "user":
            last_user = i
            break
    if last_user < 0:
        # No user turn (e.g. only a system prompt): score the last message with text.
        texts = [t for _, t in messages if t.strip()]
        return PromptText(user=texts[-1] if texts else "", context="", turns=0)
    before = "\n".join(t for _, t in messages[:last_user] if t.strip())
    context = before[-context_chars:] if context_chars > 0 else ""
    turns = sum(1 for role, _ in messages if role in ("user", "assistant"))
    return PromptText(user=messages[last_user][1], context=context, turns=max(1, turns))


def clip_chars(text: str, max_tokens: int) -> str:
    """Keep the head and tail of a very long ``text`` so tokenizing it stays cheap."""
    limit = CHARS_PER_TOKEN_BOUND * max_tokens
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n" + text[-half:]


def head_tail(ids: Sequence[int], budget: int, head_fraction: float = 0.5) -> list[int]:
    """Cut ``ids`` to ``budget`` tokens, keeping the first and the last ones.

    Long prompts put the task at either end (instructions first and the question last, or a pasted
    document followed by the request), so the middle is what goes.
    """
    if budget <= 0:
        return []
    if len(ids) <= budget:
        return list(ids)
    head = max(1, round(budget * head_fraction)) if budget > 1 else budget
    tail = budget - head
    return list(ids[:head]) + (list(ids[-tail:]) if tail > 0 else [])


def assemble(
    user_ids: Sequence[int],
    context_ids: Sequence[int],
    max_tokens: int,
    cls_id: int,
    sep_id: int,
    context_tokens: int,
) -> list[int]:
    """Lay out ``[CLS] context-tail [SEP] user-head … user-tail [SEP]`` within ``max_tokens``.

    The context gets at most ``context_tokens`` (its most recent tokens); the user turn gets the
    rest of the budget, cut by :func:`head_tail`.
    """
    if max_tokens < 3:
        raise ValueError("max_tokens must leave room for [CLS], [SEP] and one token")
    ctx: list[int] = []
    if context_ids and context_tokens > 0:
        keep = min(len(context_ids), context_tokens)
        ctx = [*context_ids[-keep:], sep_id]
    room = max_tokens - 2 - len(ctx)
    if room < 1:
        ctx = []
        room = max_tokens - 2
    return [cls_id, *ctx, *head_tail(user_ids, room), sep_id]
