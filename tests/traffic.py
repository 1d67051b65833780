"""A steady stream of chat requests through the gateway, counted.

Used while a rolling restart (tests/lab) or a gateway reload (tests/gateway) runs: every
request must succeed. The client never retries (max_retries=0), so a request the gateway
drops counts as failed. Bounded: it stops when told to, or after `max_seconds`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx2
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, error: str | None) -> None:
        with self.lock:
            self.sent += 1
            if error is not None:
                self.failed += 1
                self.errors.append(error)


class Traffic:
    """`workers` threads, each alternating streamed and plain chat requests."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        workers: int = 4,
        max_seconds: float = 600,
        max_tokens: int = 12,
        http_client: httpx2.Client | None = None,
    ) -> None:
        """`http_client`: the openai client's transport (e.g. HTTP/2 and a CA bundle); httpx2's
        default (HTTP/1.1, the system's CAs) when None."""
        self.client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120,
                             http_client=http_client)
        self.model = model
        self.max_tokens = max_tokens
        self.tally = Tally()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._threads = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(workers)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=180)

    def _work(self, index: int) -> None:
        n = 0
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            self.tally.record(self._one(stream=(n + index) % 2 == 0))
            n += 1

    def _one(self, stream: bool) -> str | None:
        text = "extract the entities of: Alice met Bob in Paris"
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": text}]
        try:
            if stream:
                with self.client.chat.completions.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    stream=True,
                    messages=messages,
                ) as chunks:  # read to the end ([DONE]) and release the connection, as clients do
                    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
                return None if any(reasons) else "stream ended without a finish_reason"
            reply = self.client.chat.completions.create(
                model=self.model, max_tokens=self.max_tokens, messages=messages
            )
            return None if reply.choices[0].message.content else "empty answer"
        except Exception as error:
            cause = f" ({error.__cause__!r})" if error.__cause__ else ""
            return f"{type(error).__name__}: {error}{cause}"
