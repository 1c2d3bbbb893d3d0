"""A realistic traffic mix for hybrid-router (or any OpenAI-compatible endpoint) with Locust.

The mix, per simulated user (weights in brackets):

- [5] short chat, JSON reply;
- [2] long prompt (about 400-1,500 words of context, a document to summarise), JSON reply;
- [2] streaming chat (SSE): the time to the first content chunk is reported as ``SSE ttft``;
- [3] cache-friendly repeats: a small pool of FAQ prompts at ``temperature: 0``, so an exact
  response cache answers most of them; ``CACHE hit`` / ``CACHE miss`` count the gateway's
  ``x-router-cache`` header;
- [1] ``model: auto`` (the classifier decides the tier).

Each user takes a random one of the keys in ``HR_KEYS`` (comma-separated; several teams or
tenants, made with ``router keys create --team T --budget-usd X --json``); without it, no
Authorization header is sent (``auth: none`` policies). ``HR_MODEL`` is the explicit model
(default ``mock-local``), ``HR_AUTO_MODEL`` the route alias (default ``auto``). A 429 from an
exhausted budget counts as a failure. Headless smoke run against the mock policy::

    .venv/bin/python -m router.testing.mock_upstream --port 9100 &
    MOCK_UPSTREAM_URL=http://127.0.0.1:9100/v1 .venv/bin/router serve \\
        --policy policies/examples/mock.yaml --port 8080 &
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 20 -r 10 -t 30s \\
        --host http://127.0.0.1:8080
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from locust import HttpUser, between, task

FAQ = (
    "What are your opening hours?",
    "How do I reset my password?",
    "Where can I download my invoice?",
    "How do I change the email address on my account?",
    "What payment methods do you accept?",
    "How do I cancel my subscription?",
    "Is there a student discount?",
    "How long does shipping to Canada take?",
    "Can I export my data as CSV?",
    "How do I enable two-factor authentication?",
)
SHORT = (
    "Say hello in one word.",
    "Translate 'good morning' into Spanish.",
    "What is the capital of Australia?",
    "Give me a synonym for 'quick'.",
    "Is 17 a prime number?",
    "Write a haiku about autumn.",
    "Convert 5 miles to kilometres.",
)
HARD = (
    "Prove that there are infinitely many primes, then explain the proof to a ten-year-old.",
    "Design a rate limiter for a distributed API gateway and discuss its failure modes.",
    "Compare B-trees and LSM-trees for a write-heavy workload, with a recommendation.",
)
TEXT = (
    "the gateway routes each request to a local or hosted model by its complexity while "
    "budgets ledger cache and keys live in redis shared by every replica so that scaling out "
    "is a matter of adding stateless processes behind a load balancer"
)


def _document(rng: random.Random, min_words: int = 400, max_words: int = 1500) -> str:
    """A pseudo-document of ``min_words``..``max_words`` words (a long-context prompt)."""
    words = TEXT.split()
    n = rng.randint(min_words, max_words)
    return " ".join(rng.choice(words) for _ in range(n))


class ChatUser(HttpUser):
    """One application calling the gateway: a mix of chat shapes with think time between."""

    wait_time = between(0.2, 1.5)

    def on_start(self) -> None:
        """Pick this user's key, model names and random stream."""
        self.rng = random.Random()
        keys = [k.strip() for k in os.environ.get("HR_KEYS", "").split(",") if k.strip()]
        key = self.rng.choice(keys) if keys else None
        self.headers = {"content-type": "application/json"}
        if key:
            self.headers["authorization"] = f"Bearer {key}"
        self.model = os.environ.get("HR_MODEL", "mock-local")
        self.auto_model = os.environ.get("HR_AUTO_MODEL", "auto")

    def _chat(self, name: str, body: dict[str, Any]) -> None:
        with self.client.post(
            "/v1/chat/completions", json=body, headers=self.headers, name=name, catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            choices = resp.json().get("choices") or []
            if not choices:
                resp.failure("no choices in the reply")
                return
            resp.success()
            cache = resp.headers.get("x-router-cache")
            if cache is not None and name == "chat repeat":
                self._count("CACHE", "hit" if cache.startswith("hit") else "miss")

    def _count(self, kind: str, name: str, ms: float = 0.0, exc: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=name,
            response_time=ms,
            response_length=0,
            exception=exc,
            context={},
        )

    @task(5)
    def short_chat(self) -> None:
        """A short question, JSON reply."""
        prompt = self.rng.choice(SHORT)
        self._chat("chat short", {"model": self.model, "messages": [_user(prompt)]})

    @task(2)
    def long_chat(self) -> None:
        """A long document to summarise, JSON reply."""
        doc = _document(self.rng)
        body = {
            "model": self.model,
            "max_tokens": 256,
            "messages": [
                {"role": "system", "content": "You summarise documents in three bullet points."},
                _user(f"Summarise this document:\n\n{doc}"),
            ],
        }
        self._chat("chat long", body)

    @task(3)
    def repeat_chat(self) -> None:
        """A frequently asked question at temperature 0 (exact-cache friendly)."""
        body = {"model": self.model, "temperature": 0, "messages": [_user(self.rng.choice(FAQ))]}
        self._chat("chat repeat", body)

    @task(1)
    def auto_chat(self) -> None:
        """``model: auto``: easy or hard prompts, the router picks the tier."""
        prompt = self.rng.choice(SHORT + HARD)
        self._chat("chat auto", {"model": self.auto_model, "messages": [_user(prompt)]})

    @task(2)
    def stream_chat(self) -> None:
        """A streamed reply: reads SSE to ``[DONE]``; reports the time to the first chunk."""
        body = {
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [_user(self.rng.choice(SHORT + FAQ))],
        }
        start = time.perf_counter()
        first: float | None = None
        with self.client.post(
            "/v1/chat/completions",
            json=body,
            headers=self.headers,
            name="chat stream",
            stream=True,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
                return
            done = False
            for line in resp.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                if first is None:
                    first = time.perf_counter()
                if line == b"data: [DONE]":
                    done = True
                    break
            if not done:
                resp.failure("stream ended without [DONE]")
                return
            resp.success()
        if first is not None:
            self._count("SSE", "ttft", (first - start) * 1000)


def _user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}
