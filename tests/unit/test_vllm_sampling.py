"""n, stop and logprobs of the vLLM simulator (lab/simulators/vllm_sampling.py): vLLM's 400s,
and what the openai client gets back from the simulator on loopback, streamed or not."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import vllm_sampling as vsp
from test_vllm_sim import SERVED, Sim, chat_body, lab, sim

__all__ = ["lab", "sim"]  # the fixtures, shared with test_vllm_sim.py

MESSAGES: Any = [{"role": "user", "content": "tell me about the gateway"}]


def client(sim: Sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{sim.port}/v1", api_key="none", max_retries=0)


@pytest.mark.parametrize(("kind", "body", "param", "words"), [
    ("chat", {"n": 0}, "n", "n must be at least 1, got 0."),
    ("chat", {"n": "2"}, "n", "valid integer"),
    ("chat", {"stop": ["end", ""]}, "stop", "stop cannot contain an empty string."),
    ("chat", {"stop": [3]}, "stop", "list of strings"),
    ("chat", {"top_logprobs": 3}, "top_logprobs", "`logprobs` must be set to true"),
    ("chat", {"logprobs": True, "top_logprobs": -2}, "top_logprobs", "positive value or -1"),
    ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs", "greater than max allowed: 20"),
    ("completion", {"logprobs": -1}, "logprobs", "whole vocabulary, which is greater than max allowed"),
    ("completion", {"logprobs": -3}, "logprobs", "positive value or -1"),
])
def test_vllm_refuses_what_it_refuses(kind: str, body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(vsp.SamplingError) as refused:
        vsp.sampling(kind, body)
    assert (refused.value.param, words in str(refused.value)) == (param, True), str(refused.value)


def test_what_it_accepts() -> None:
    assert vsp.sampling("chat", {}) == vsp.Sampling(1, (), None)
    assert vsp.sampling("chat", {"n": 3, "stop": "x", "logprobs": True}) == vsp.Sampling(3, ("x",), 0)
    assert vsp.sampling("chat", {"logprobs": False, "top_logprobs": 0}).logprobs is None
    assert vsp.sampling("completion", {"logprobs": 20, "stop": ["a", "b"]}) == vsp.Sampling(1, ("a", "b"), 20)


def test_an_answer_ends_before_its_first_stop_string() -> None:
    pieces = ["alpha", " beta", " gamma", " delta"]
    assert vsp.cut_at_stop(pieces, ("delta", "ta g")) == (["alpha", " be"], "ta g")
    assert vsp.cut_at_stop(pieces, ("alpha",)) == ([], "alpha")
    assert vsp.cut_at_stop(pieces, ("omega",)) == (pieces, None)


def test_a_refusal_is_a_400_naming_its_parameter(sim: Sim) -> None:
    status, reply = sim.json("POST", "/v1/chat/completions", chat_body("x", top_logprobs=2))
    assert (status, reply["error"]["param"]) == (400, "top_logprobs"), reply


def test_n_answers_n_choices_and_counts_their_tokens(sim: Sim) -> None:
    reply = client(sim).chat.completions.create(model=SERVED, messages=MESSAGES, n=3, max_tokens=40)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    texts = [c.message.content or "" for c in reply.choices]
    assert len(set(texts)) > 1  # not one answer three times
    assert reply.usage is not None
    assert reply.usage.completion_tokens == sum(len(t.split()) for t in texts)
    streamed: dict[int, str] = {}
    finished: dict[int, str | None] = {}
    for chunk in client(sim).chat.completions.create(
            model=SERVED, messages=MESSAGES, n=3, max_tokens=40, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
            finished[choice.index] = choice.finish_reason or finished.get(choice.index)
    assert [streamed[i] for i in range(3)] == texts
    assert [finished[i] for i in range(3)] == [c.finish_reason for c in reply.choices]


def test_a_stop_string_ends_the_answer_before_it(sim: Sim) -> None:
    whole = client(sim).completions.create(model=SERVED, prompt="a story", max_tokens=30)
    words = whole.choices[0].text.split(" ")
    stop = " " + words[3]
    cut = client(sim).completions.create(model=SERVED, prompt="a story", max_tokens=30, stop=[stop])
    choice: Any = cut.choices[0]
    assert choice.text == whole.choices[0].text.split(stop)[0]
    assert (choice.finish_reason, choice.model_extra["stop_reason"]) == ("stop", stop)
    streamed = "".join(c.choices[0].text for c in client(sim).completions.create(
        model=SERVED, prompt="a story", max_tokens=30, stop=[stop], stream=True) if c.choices)
    assert streamed == choice.text


def test_chat_logprobs_in_openai_shape(sim: Sim) -> None:
    reply = client(sim).chat.completions.create(
        model=SERVED, messages=MESSAGES, max_tokens=6, logprobs=True, top_logprobs=3)
    choice = reply.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    for token in tokens:
        assert len(token.top_logprobs) == 3 and token.top_logprobs[0].token == token.token
        ranked = [t.logprob for t in token.top_logprobs]
        assert ranked == sorted(ranked, reverse=True) and all(lp <= 0 for lp in ranked)
        assert token.bytes == list(token.token.encode())
    plain = client(sim).chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=6)
    assert plain.choices[0].logprobs is None


def test_completion_logprobs_streamed_as_whole(sim: Sim) -> None:
    reply = client(sim).completions.create(model=SERVED, prompt="p", max_tokens=5, logprobs=2)
    logprobs: Any = reply.choices[0].logprobs
    assert "".join(logprobs.tokens) == reply.choices[0].text
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(logprobs.tokens))]
    assert all(len(top) == 3 for top in logprobs.top_logprobs)  # the sampled token and 2 others
    pieces: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "text_offset": []}
    for chunk in client(sim).completions.create(model=SERVED, prompt="p", max_tokens=5, logprobs=2, stream=True):
        part: Any = chunk.choices[0].logprobs if chunk.choices else None
        for key in pieces if part else ():
            pieces[key] += getattr(part, key)
    assert pieces == {k: getattr(logprobs, k) for k in pieces}
