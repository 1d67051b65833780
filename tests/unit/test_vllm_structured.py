"""Structured output of the vLLM simulator (lab/simulators/vllm_structured.py): schema instances,
vLLM's refusals, and real clients (the openai library's parse helper, JSON mode, tool calls)
against the simulator on loopback."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import openai
import pytest
import vllm_structured as vs
from pydantic import BaseModel
from test_vllm_sim import SERVED, Lab, Sim, chat_body, lab, sim

__all__ = ["lab", "sim"]  # the fixtures, shared with test_vllm_sim.py


class Event(StrEnum):
    ADD = "ADD"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    NONE = "NONE"


class Memory(BaseModel):
    id: str
    text: str
    event: Event
    old_memory: str | None = None


class Decision(BaseModel):
    """A memory framework's update decision, as its pydantic model."""

    memory: list[Memory]
    confidence: float


SCHEMAS: dict[str, Any] = {
    "object, required and optional": {
        "type": "object", "required": ["facts"],
        "properties": {"facts": {"type": "array", "items": {"type": "string"}}, "note": {"type": "string"}},
        "additionalProperties": False},
    "nested, enum, bounds, formats": {
        "type": "object", "required": ["who", "age", "tags", "when", "ok", "level"],
        "properties": {
            "who": {"type": "object", "required": ["name", "mail"],
                    "properties": {"name": {"type": "string", "minLength": 12},
                                   "mail": {"type": "string", "format": "email"}}},
            "age": {"type": "integer", "minimum": 18, "maximum": 30},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 3, "maxItems": 3},
            "when": {"type": "string", "format": "date-time"},
            "ok": {"type": "boolean"},
            "level": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 5}}},
    "anyOf and const": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"v": {"const": 3}},
                                                     "required": ["v"]}]},
    "pydantic, with $defs and $ref": Decision.model_json_schema(),
    "recursive $ref": {"$defs": {"node": {"type": "object", "required": ["name", "children"], "properties": {
        "name": {"type": "string", "maxLength": 3},
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}, "$ref": "#/$defs/node"},
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_an_instance_satisfies_its_schema(name: str) -> None:
    for seed in (b"one", b"two", b"three"):
        jsonschema.validate(vs.instance(SCHEMAS[name], seed), SCHEMAS[name])


def test_instances_follow_the_prompt() -> None:
    schema = SCHEMAS["nested, enum, bounds, formats"]
    assert vs.instance(schema, b"same") == vs.instance(schema, b"same")
    assert len({json.dumps(vs.instance(schema, str(i).encode())) for i in range(8)}) > 1


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"response_format": {"type": "json_schema"}}, "response_format", "'json_schema' field must be provided"),
    ({"response_format": {"type": "yaml"}}, "response_format", "must be one of"),
    ({"structured_outputs": {"json": {}, "choice": ["a"]}}, "structured_outputs", "['json', 'choice']"),
    ({"structured_outputs": {"regex": "[a-z]+"}}, "structured_outputs", "vLLM SIMULATOR: structured_outputs.regex"),
    ({"structured_outputs": {"json": "{not json"}}, "structured_outputs.json", "not valid JSON"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice", "--enable-auto-tool-choice"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice", "Tool 'g'"),
    ({"tool_choice": "required"}, "tool_choice", "`tools` must be set"),
    ({"tools": [{"type": "function"}], "tool_choice": "required"}, "tools", "function with a name"),
])
def test_vllm_refuses_what_it_refuses(body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(vs.StructuredError) as caught:
        vs.constraint("chat", {"messages": [], **body}, auto_tools=False)
    assert caught.value.param == param
    assert words in str(caught.value)


def test_text_where_nothing_constrains_the_answer() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert vs.constraint("chat", {"tools": tools, "tool_choice": "none"}, auto_tools=False) == vs.TEXT
    assert vs.constraint("chat", {"response_format": {"type": "text"}}, auto_tools=False) == vs.TEXT
    # auto answers a tool's result in text, and calls the tool otherwise
    answered = {"tools": tools, "messages": [{"role": "tool", "content": "42"}]}
    assert vs.constraint("chat", answered, auto_tools=True) == vs.TEXT
    assert vs.constraint("chat", {"tools": tools, "messages": []}, auto_tools=True).kind == "tools"


def client(sim: Sim) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{sim.port}/v1", api_key="none", max_retries=0)


def test_the_openai_parse_helper_gets_its_pydantic_model(sim: Sim) -> None:
    reply = client(sim).chat.completions.parse(
        model=SERVED, messages=[{"role": "user", "content": "decide"}], response_format=Decision)
    assert isinstance(reply.choices[0].message.parsed, Decision)
    assert reply.choices[0].finish_reason == "stop"


def test_json_mode_answers_an_object_streamed_or_not(sim: Sim) -> None:
    body = chat_body("extract the facts", response_format={"type": "json_object"})
    status, reply = sim.json("POST", "/v1/chat/completions", body)
    assert status == 200, reply
    assert isinstance(json.loads(reply["choices"][0]["message"]["content"]), dict)
    stream = client(sim).chat.completions.create(
        model=SERVED, messages=body["messages"], response_format={"type": "json_object"}, stream=True)
    assert json.loads("".join(c.choices[0].delta.content or "" for c in stream if c.choices)) == json.loads(
        reply["choices"][0]["message"]["content"])


def test_a_json_answer_cut_by_max_tokens_is_not_json(sim: Sim) -> None:
    status, reply = sim.json("POST", "/v1/chat/completions", chat_body(
        "x", max_tokens=2, structured_outputs={"json": SCHEMAS["nested, enum, bounds, formats"]}))
    assert status == 200
    assert reply["choices"][0]["finish_reason"] == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply["choices"][0]["message"]["content"])


def test_choice_answers_one_of_them(sim: Sim) -> None:
    status, reply = sim.json("POST", "/v1/completions", {
        "model": SERVED, "prompt": "sentiment", "structured_outputs": {"choice": ["positive", "negative"]}})
    assert status == 200
    assert reply["choices"][0]["text"] in ("positive", "negative")


WEATHER: Any = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "required": ["city", "unit"],
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}}}}


def test_a_required_tool_is_called_streamed_or_not(sim: Sim) -> None:
    messages: Any = [{"role": "user", "content": "weather in Hangzhou?"}]
    reply = client(sim).chat.completions.create(
        model=SERVED, messages=messages, tools=[WEATHER], tool_choice="required")
    call: Any = reply.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.function.name, reply.choices[0].finish_reason) == ("weather", "tool_calls")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])
    arguments, names = "", []
    for chunk in client(sim).chat.completions.create(
            model=SERVED, messages=messages, tools=[WEATHER], tool_choice="required", stream=True):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            names += [delta.function.name] if delta.function and delta.function.name else []
            arguments += delta.function.arguments or "" if delta.function else ""
    assert names == ["weather"]
    assert json.loads(arguments) == json.loads(call.function.arguments)


def test_auto_tool_choice_needs_the_server_flags(lab: Lab) -> None:
    plain = lab.start()
    plain.wait_healthy()
    status, reply = plain.json("POST", "/v1/chat/completions", chat_body("hi", tools=[WEATHER]))
    assert status == 400
    assert "--enable-auto-tool-choice" in reply["error"]["message"]
    tooled = lab.start("--enable-auto-tool-choice", "--tool-call-parser", "hermes", gpu="1")
    tooled.wait_healthy()
    status, reply = tooled.json("POST", "/v1/chat/completions", chat_body("hi", tools=[WEATHER]))
    assert status == 200
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "weather"
