"""Worst-case cost of a request before it is sent: what a reservation holds.

Worst case = an upper bound on input tokens x the input price + the output limit x the output
price, maximised over the target and its fallbacks (any of them may answer).

The input bound needs no tokenizer: byte-level BPE tokenizers never emit more tokens than the
UTF-8 bytes they encode, so the byte count of every text plus a per-message overhead bounds the
prompt. Images are counted at ``IMAGE_TOKENS`` each (OpenAI's high-detail cost of a 2048 px
image). The output limit is the request's ``max_completion_tokens``/``max_tokens`` capped by the
model's ``max_output_tokens`` (else that maximum), times ``n``.
"""

from __future__ import annotations

import orjson

from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest

MESSAGE_OVERHEAD_TOKENS = 8
REPLY_PRIMING_TOKENS = 3
IMAGE_TOKENS = 1_600


def input_tokens_upper_bound(req: ChatRequest) -> int:
    """An upper bound on the prompt's tokens for any byte-level BPE tokenizer."""
    total = REPLY_PRIMING_TOKENS
    for m in req.messages:
        total += MESSAGE_OVERHEAD_TOKENS + len(m.text().encode())
        if m.name:
            total += len(m.name.encode())
        if m.tool_calls:
            total += len(orjson.dumps(m.tool_calls))
        if m.has_image():
            parts = m.content if isinstance(m.content, list) else []
            total += IMAGE_TOKENS * sum(1 for p in parts if p.type == "image_url")
    if req.tools:
        total += len(orjson.dumps([t.model_dump(exclude_none=True) for t in req.tools]))
    if req.response_format is not None and req.response_format.json_schema:
        total += len(orjson.dumps(req.response_format.json_schema))
    return total


def output_tokens_upper_bound(req: ChatRequest, model: ModelSpec) -> int:
    """The most completion tokens ``model`` may produce for ``req`` (all ``n`` choices)."""
    cap = model.capabilities.max_output_tokens
    limit = req.output_limit
    per_choice = min(limit, cap) if limit is not None else cap
    return per_choice * (req.n or 1)


def worst_case_usd(req: ChatRequest, models: tuple[ModelSpec, ...], prompt_upper: int) -> float:
    """The highest cost any of ``models`` could charge for ``req``, in US dollars."""
    worst = 0.0
    for m in models:
        if m.price is None:
            continue
        out = output_tokens_upper_bound(req, m)
        cost = (
            prompt_upper * m.price.input_usd_per_mtok + out * m.price.output_usd_per_mtok
        ) / 1_000_000
        worst = max(worst, cost)
    return worst


def worst_case_tokens(req: ChatRequest, models: tuple[ModelSpec, ...], prompt_upper: int) -> int:
    """Prompt plus output upper bound over ``models``: what ``tpm`` limits count up front."""
    return prompt_upper + max((output_tokens_upper_bound(req, m) for m in models), default=0)
