"""Keys with policies (issue 21; variant `policy`, keys in conftest.POLICY_KEYS): a key limited
to some models gets 403 for the others, in the route's error shape, and /v1/models lists its own;
a pool's own route is open to it only if it may use the whole pool; each key has its own
concurrency (by default what its pools run at once) and rate, and one key at its limit leaves
the others served; a trusted client calls without a key under its own policy, and nobody else
does."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import harness as h
import pytest
from harness import POLICY_KEYS, TRUSTED, Stack

KEYS = {k["name"]: k["key"] for k in POLICY_KEYS}


def call(stack: Stack, key: str, method: str, path: str, body: Any = None) -> h.Reply:
    return h.request(stack.port("policy"), method, path, body,
                     headers={"Authorization": f"Bearer {KEYS[key]}"})


def error(reply: h.Reply) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(reply.body)["error"]
    return parsed


def test_a_key_uses_only_its_models(stack: Stack) -> None:
    refused = call(stack, "embedder", "POST", "/v1/chat/completions", h.chat("llama3.1-8b", "hi", 2))
    assert (refused.status, error(refused)["code"], error(refused)["param"]) == (403, "model_not_allowed", "model")
    assert error(refused)["message"] == (
        "The API key embedder may not use the model `llama3.1-8b`. Its models: bge-m3")
    embedded = call(stack, "embedder", "POST", "/v1/embeddings", {"model": "bge-m3", "input": "x"})
    assert embedded.status == 200, embedded.body
    chat = call(stack, "chat", "POST", "/v1/chat/completions", h.chat("qwen2.5-14b", "hi", 2))
    assert chat.status == 200, chat.body


def test_the_model_list_and_an_unknown_model_show_the_keys_models_only(stack: Stack) -> None:
    listed = {name: sorted(m["id"] for m in json.loads(call(stack, name, "GET", "/v1/models").body)["data"])
              for name in ("embedder", "chat", "whole")}
    assert listed == {"embedder": ["bge-m3"], "chat": ["llama3.1-8b", "qwen2.5-14b"],
                      "whole": ["bge-m3", "llama3.1-8b", "qwen2.5-14b"]}
    unknown = call(stack, "chat", "POST", "/v1/chat/completions", h.chat("gpt-4o", "hi", 2))
    assert (unknown.status, error(unknown)["message"]) == (
        404, "The model `gpt-4o` does not exist. Served models: llama3.1-8b, qwen2.5-14b")


@pytest.mark.parametrize(("key", "path", "body", "status"), [
    ("embedder", "/llama/v1/chat/completions", h.chat("llama3.1-8b", "hi", 2), 403),
    ("embedder", "/embed/v1/embeddings", {"model": "bge-m3", "input": "x"}, 200),
    ("embedder", "/api/embed", {"model": "bge-m3", "input": "x"}, 200),
    ("chat", "/qwen/v1/chat/completions", h.chat("qwen2.5-14b", "hi", 2), 200),
])
def test_a_pools_own_route_is_open_to_keys_that_may_use_the_pool(
        stack: Stack, key: str, path: str, body: Any, status: int) -> None:
    reply = call(stack, key, "POST", path, body)
    assert reply.status == status, reply.body
    if status == 403:
        assert (error(reply)["code"], error(reply)["message"]) == (
            "model_not_allowed", "The API key embedder may not use the llama pool. Its models: bge-m3")


def test_a_refusal_on_the_ollama_api_has_ollamas_shape(stack: Stack) -> None:
    reply = call(stack, "chat", "POST", "/api/embed", {"model": "bge-m3", "input": "x"})
    assert (reply.status, json.loads(reply.body)) == (403, {
        "error": "The API key chat may not use the bge pool. Its models: llama3.1-8b, qwen2.5-14b"})


@contextmanager
def held_stream(stack: Stack, key: str) -> Iterator[None]:
    """A streamed chat on Llama held open (40 tokens, 25 ms apart) with `key`."""
    conn = http.client.HTTPConnection(h.LOOPBACK, stack.port("policy"), timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(h.chat("llama3.1-8b", "hold", 40, stream=True)),
                     {"Content-Type": "application/json", "Authorization": f"Bearer {KEYS[key]}"})
        response = conn.getresponse()
        assert response.status == 200
        response.readline()  # the first event: the request is in progress
        yield
    finally:
        conn.close()


def free_again(stack: Stack, key: str) -> None:
    """`key` is served again once its held requests end. nginx frees a request's slot when it
    sees the client gone, at its next write of the stream (25 ms apart), not when the client
    closes: bounded, but not at once on a busy machine."""
    h.wait_until(lambda: call(stack, key, "GET", "/v1/models").status == 200, 10,
                 f"the key {key}'s requests to be counted as ended")


def test_a_keys_concurrency_defaults_to_its_pools_capacity(stack: Stack) -> None:
    """whole has no policy: llama 3 + qwen 1 + bge 2 = 6 requests at once; the 7th gets a JSON
    429 while another key is served."""
    with ExitStack() as held:
        for _ in range(6):
            held.enter_context(held_stream(stack, "whole"))
        over = call(stack, "whole", "GET", "/v1/models")
        assert (over.status, over.headers["content-type"]) == (429, "application/json")
        assert call(stack, "embedder", "GET", "/v1/models").status == 200
    free_again(stack, "whole")


def test_a_keys_own_concurrency_is_its_bound(stack: Stack) -> None:
    """pair may hold 2 requests at once: the third is refused, another key is served."""
    with ExitStack() as held:
        for _ in range(2):
            held.enter_context(held_stream(stack, "pair"))
        assert call(stack, "pair", "GET", "/v1/models").status == 429
        assert call(stack, "chat", "GET", "/v1/models").status == 200
    free_again(stack, "pair")


def test_a_keys_rate_is_its_own(stack: Stack) -> None:
    """rated: 1 request a minute with a burst of its concurrency (the qwen pool's 1): 2 pass at
    once, then 429 in OpenAI's shape, while another key is served."""
    replies = [call(stack, "rated", "GET", "/v1/models") for _ in range(4)]
    assert [r.status for r in replies] == [200, 200, 429, 429]
    assert set(error(replies[2])) == {"message", "type", "param", "code"}
    assert call(stack, "chat", "GET", "/v1/models").status == 200


LAN = TRUSTED[0]["networks"][0].split("/")[0]  # 127.0.0.2


def keyless(stack: Stack, method: str, path: str, body: Any = None, source: str = LAN,
            headers: dict[str, str] | None = None) -> h.Reply:
    return h.request(stack.port("policy"), method, path, body, headers=headers, source=source)


def test_a_trusted_client_calls_without_a_key_under_its_policy(stack: Stack) -> None:
    assert keyless(stack, "POST", "/v1/embeddings", {"model": "bge-m3", "input": "x"}).status == 200
    assert keyless(stack, "POST", "/api/embed", {"model": "bge-m3", "input": "x"}).status == 200
    listed = json.loads(keyless(stack, "GET", "/v1/models").body)["data"]
    assert [m["id"] for m in listed] == ["bge-m3"]
    refused = keyless(stack, "POST", "/v1/chat/completions", h.chat("llama3.1-8b", "hi", 2))
    assert (refused.status, error(refused)["message"]) == (403, (
        "The trusted client lan-embedder may not use the model `llama3.1-8b`. Its models: bge-m3"))
    log = (stack.variants["policy"].runtime / "access.log").read_text().splitlines()
    assert '"key":"lan-embedder"' in log[-1], log[-1]  # the access log names the policy


def test_everyone_else_still_needs_a_key(stack: Stack) -> None:
    assert keyless(stack, "GET", "/v1/models", source=h.LOOPBACK).status == 401
    wrong = {"Authorization": "Bearer sk-not-a-key-of-this-gateway-000"}
    assert keyless(stack, "GET", "/v1/models", headers=wrong).status == 401  # a key is judged as one
    chat = keyless(stack, "POST", "/v1/chat/completions", h.chat("llama3.1-8b", "hi", 2),
                   headers={"Authorization": f"Bearer {KEYS['chat']}"})
    assert chat.status == 200  # a trusted address with a key: the key's policy
