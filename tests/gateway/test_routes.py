"""Every route of the route table reaches the right pool (checked on the backends)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import harness as h
import pytest
from harness import Stack


@dataclass(frozen=True)
class Case:
    route: str  # the route table path this case exercises
    path: str
    body: dict[str, Any]
    pool: str  # where it must land
    check: Callable[[Any], bool]


def _embedding(reply: Any) -> bool:
    return len(reply["data"][0]["embedding"]) == 1024


def _completion(model: str) -> Callable[[Any], bool]:
    return lambda reply: bool(reply["model"] == model and reply["choices"])


CASES = [
    Case("/v1/embeddings", "/v1/embeddings", {"model": "bge-m3", "input": "hi"}, "bge", _embedding),
    Case("/api/", "/api/embeddings", {"model": "bge-m3", "prompt": "hi"}, "bge",
         lambda r: len(r["embedding"]) == 1024),
    Case("/api/", "/api/embed", {"model": "bge-m3", "input": ["a", "b"]}, "bge",
         lambda r: len(r["embeddings"]) == 2),
    Case("/embed/", "/embed/api/embed", {"model": "bge-m3", "input": ["a", "b"]}, "bge",
         lambda r: len(r["embeddings"]) == 2),
    Case("/v1/chat/completions", "/v1/chat/completions", h.chat("llama3.1-8b"), "llama",
         _completion("llama3.1-8b")),
    Case("/v1/chat/completions", "/v1/chat/completions", h.chat("qwen2.5-14b"), "qwen",
         _completion("qwen2.5-14b")),
    Case("/v1/completions", "/v1/completions",
         {"model": "qwen2.5-14b", "prompt": "one two", "max_tokens": 3}, "qwen",
         _completion("qwen2.5-14b")),
    Case("/v1/completions", "/v1/completions",
         {"model": "llama3.1-8b", "prompt": "one two", "max_tokens": 3}, "llama",
         _completion("llama3.1-8b")),
    Case("/llama/", "/llama/v1/chat/completions", h.chat("llama3.1-8b"), "llama",
         _completion("llama3.1-8b")),
    Case("/qwen/", "/qwen/v1/chat/completions", h.chat("qwen2.5-14b"), "qwen",
         _completion("qwen2.5-14b")),
]


def test_every_route_of_the_table_has_a_case() -> None:
    assert {r["path"] for r in h.stack_routes()} == {c.route for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.path}->{c.pool}")
def test_route_reaches_its_pool(stack: Stack, case: Case) -> None:
    before = {"llama": stack.llama_total(), "qwen": stack.qwen_total()}
    reply = h.request(stack.port("base"), "POST", case.path, case.body)
    assert reply.status == 200, reply.body
    assert case.check(reply.json())
    after = {"llama": stack.llama_total(), "qwen": stack.qwen_total()}
    expected = {pool: 1.0 if pool == case.pool else 0.0 for pool in before}
    assert {pool: after[pool] - before[pool] for pool in before} == expected


def test_prefix_is_stripped(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "GET", "/llama/v1/models")
    assert reply.status == 200
    assert [m["id"] for m in reply.json()["data"]] == ["llama3.1-8b"]
    reply = h.request(stack.port("base"), "GET", "/embed/api/tags")
    assert reply.status == 200
    assert [m["name"] for m in reply.json()["models"]] == ["bge-m3:latest"]


def test_unknown_model_on_embeddings_passes_to_ollama(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "POST", "/v1/embeddings", {"model": "nope", "input": "x"})
    assert reply.status == 404
    assert "nope" in reply.json()["error"]["message"]


def test_both_llama_members_serve(stack: Stack) -> None:
    sims = [stack.sims["llama-a"], stack.sims["llama-b"]]
    before = [h.success_total(s.port) for s in sims]
    for _ in range(6):
        assert h.request(stack.port("base"), "POST", "/llama/v1/completions",
                         {"model": "llama3.1-8b", "prompt": "x", "max_tokens": 1}).status == 200
    after = [h.success_total(s.port) for s in sims]
    assert sum(after) - sum(before) == 6
    assert all(a > b for a, b in zip(after, before, strict=True))
