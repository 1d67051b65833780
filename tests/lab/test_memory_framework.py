"""A memory framework's whole pipeline through the lab's gateway, as MemoryX runs one (issue 21).

mem0 (mem0ai from PyPI, the lock's version), configured as its documentation says for an
OpenAI-compatible server: its LLM on the gateway's /v1 (Qwen) with the lab's key, its embedder on
the gateway's bge pool (/v1/embeddings, bge-m3), and a local Qdrant store. add() asks for facts
in JSON mode (response_format json_object, the design document's "JSON稳定性"); an add() with
infer=False embeds and stores; search() embeds the query and finds the stored memory.

The stand-in cannot extract facts, so this proves that every JSON-mode answer parses and each step
completes through the gateway, not what the framework remembers. The openai client's
structured-output helper (parse with a pydantic model) goes through the gateway too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import openai
import pytest
from labkit import GATEWAY_URL
from pydantic import BaseModel

MODEL = "qwen2.5-14b"
FACT = "Alice deploys the MemoryX stack with ansible-playbook site.yml"


class Fact(BaseModel):
    subject: str
    statement: str
    confidence: float


def test_the_parse_helper_gets_its_model_through_the_gateway(deployed: None, api_key: str) -> None:
    client = openai.OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0)
    for model in (MODEL, "llama3.1-8b"):
        reply = client.chat.completions.parse(
            model=model, messages=[{"role": "user", "content": FACT}], response_format=Fact)
        assert isinstance(reply.choices[0].message.parsed, Fact), reply


def mem0_config(api_key: str, home: Path) -> dict[str, Any]:
    base = f"{GATEWAY_URL}/v1"
    return {
        "llm": {"provider": "openai",
                "config": {"model": MODEL, "api_key": api_key, "openai_base_url": base, "max_tokens": 512}},
        # no embedding_dims: mem0 would send `dimensions`, which bge-m3 does not take
        "embedder": {"provider": "openai",
                     "config": {"model": "bge-m3", "api_key": api_key, "openai_base_url": base}},
        "vector_store": {"provider": "qdrant",
                         "config": {"collection_name": "memoryx", "path": str(home / "qdrant"),
                                    "embedding_model_dims": 1024, "on_disk": True}},
        "history_db_path": str(home / "history.db"),
    }


def test_mem0_adds_and_searches_through_the_gateway(
        deployed: None, api_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MEM0_TELEMETRY", "False")  # read when mem0 is imported: no PostHog
    monkeypatch.setenv("MEM0_DIR", str(tmp_path / "mem0"))
    from mem0 import Memory  # type: ignore[import-untyped]
    from mem0.memory import telemetry  # type: ignore[import-untyped]

    assert telemetry.MEM0_TELEMETRY is False  # nothing leaves the lab
    memory = Memory.from_config(mem0_config(api_key, tmp_path))
    conversation = [{"role": "user", "content": "I run the MemoryX deploy every Monday."},
                    {"role": "assistant", "content": "Noted: the deploy runs on Mondays."}]
    with caplog.at_level(logging.WARNING):
        memory.add(conversation, user_id="alice")  # extraction: JSON mode through the gateway
        stored = memory.add(FACT, user_id="alice", infer=False)  # embedded by the bge pool
        found = memory.search(FACT, filters={"user_id": "alice"}, top_k=3)
    problems = [f"{r.name}: {r.getMessage()}" for r in caplog.records
                if r.levelno >= logging.ERROR or "pars" in r.getMessage().lower()]
    assert problems == []  # "Error parsing extraction response" is what a plain-text answer gave
    assert [r["memory"] for r in stored["results"]] == [FACT]
    best = found["results"][0]
    assert (best["memory"], best["score"] > 0.99) == (FACT, True), found
