"""Structured output of the vLLM SIMULATOR (lab/simulators/vllm_sim.py). This is NOT vLLM.

What vLLM 0.19.1's OpenAI server does with a request that constrains its answer, reproduced
because MemoryX's clients parse those answers (the design document's "JSON稳定性 (强制)": a memory
framework's fact extraction and memory update run with ``response_format`` json_object; the
openai client's ``beta.chat.completions.parse`` sends a json_schema; agents send ``tools``):

* ``response_format``: ``{"type": "text"}``, ``{"type": "json_object"}`` (a JSON object),
  ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` (an instance of the
  schema); a json_schema without its ``json_schema`` is a 400, as in vLLM.
* ``structured_outputs`` (vLLM's own parameter): exactly one of ``json`` (a schema, or its JSON
  text), ``json_object``, ``choice`` (one of the strings); more than one is a 400 naming them.
  ``regex``, ``grammar`` and ``structural_tag`` need a grammar engine: the simulator refuses them
  with a 400 that says it is the simulator's limit.
* ``tools`` with ``tool_choice``: ``none`` answers text; a named function or ``required`` calls
  a tool (arguments: an instance of its ``parameters`` schema); ``auto`` (the default when tools
  are given) needs ``--enable-auto-tool-choice`` and ``--tool-call-parser``, as in vLLM, else
  400; with them the simulator calls the first tool unless the conversation ends with a tool's
  result, which it answers in text.

The instances come from a JSON Schema subset: ``type`` (or a list of types), ``properties`` and
``required``, ``items``/``prefixItems`` with ``minItems``/``maxItems``, ``enum``, ``const``,
``anyOf``/``oneOf``/``allOf`` (the first choice), ``$ref`` into ``$defs``/``definitions`` (as
pydantic writes them), string ``format`` (date-time, date, time, email, uri, uuid) and lengths,
number bounds. Everything else in a schema is ignored, not enforced. The values are
deterministic in the prompt, like the simulator's words.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

# The simulator's words (its generated text, and the strings of schema instances).
WORDS = (
    "memory", "vector", "lab", "signal", "river", "stone", "cloud", "token", "answer", "garden",
    "light", "cluster", "engine", "paper", "window", "bridge", "model", "night", "summer", "number",
    "quiet", "simple", "bright", "north", "green", "orbit", "seed", "market", "letter", "silver",
    "forest", "harbor",
)
FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
MAX_DEPTH = 6
UNSIMULATED = ("regex", "grammar", "structural_tag")
AUTO_NEEDS = ('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser '
              "to be set")


class StructuredError(ValueError):
    """A request vLLM answers with 400: the message and the parameter it names."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Constraint:
    """What the answer must be: text, a JSON value of `schema`, one of `choice`, or a call of `tool`."""

    kind: str  # "text" | "json" | "choice" | "tools"
    schema: Any = None  # json: the schema (None: any JSON object)
    choice: tuple[str, ...] = ()
    tool: Any = None  # tools: the function to call (one call per answer)
    named: bool = False  # tools: a named function (finish_reason "stop", as vLLM answers it)


TEXT = Constraint("text")


def _pick(seed: bytes, salt: str, count: int) -> int:
    return hashlib.sha256(seed + salt.encode()).digest()[0] % max(count, 1)


class _Instance:
    def __init__(self, root: Any, seed: bytes) -> None:
        self.defs: dict[str, Any] = {}
        if isinstance(root, dict):
            self.defs = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.seed = seed

    def of(self, schema: Any, path: str, depth: int) -> Any:
        if not isinstance(schema, dict):
            return self.word(path)  # `true` or an empty schema: anything, a string will do
        if "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            return self.of(self.defs.get(name, {}), path, depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][_pick(self.seed, path, len(schema["enum"]))]
        for key in ("anyOf", "oneOf", "allOf"):
            options = [o for o in schema.get(key) or [] if not (isinstance(o, dict) and o.get("type") == "null")]
            if options:
                return self.of(options[0], path, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return getattr(self, "_" + str(kind), self._string)(schema, path, depth)

    def word(self, path: str) -> str:
        return WORDS[_pick(self.seed, path, len(WORDS))]

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        keys = required if depth >= MAX_DEPTH else [*required, *(k for k in properties if k not in required)]
        return {key: self.of(properties.get(key, {}), f"{path}.{key}", depth + 1) for key in keys}

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        prefix = list(schema.get("prefixItems") or [])
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, len(prefix), 0 if depth >= MAX_DEPTH else 2)))
        count = max(low, min(high, max(len(prefix), 0 if depth >= MAX_DEPTH else 2)))
        items = schema.get("items", {})
        return [self.of(prefix[i] if i < len(prefix) else items, f"{path}[{i}]", depth + 1) for i in range(count)]

    def _string(self, schema: dict[str, Any], path: str, depth: int) -> str:
        text = FORMATS.get(str(schema.get("format")), self.word(path))
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        while len(text) < low:
            text += " " + self.word(path + str(len(text)))
        return text[: int(high)] if high is not None else text

    def _integer(self, schema: dict[str, Any], path: str, depth: int) -> int:
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100) - 1)
        return int(low) + _pick(self.seed, path, int(high) - int(low) + 1)

    def _number(self, schema: dict[str, Any], path: str, depth: int) -> float:
        return float(self._integer(schema, path, depth))

    def _boolean(self, schema: dict[str, Any], path: str, depth: int) -> bool:
        return _pick(self.seed, path, 2) == 1

    def _null(self, schema: dict[str, Any], path: str, depth: int) -> None:
        return None


def instance(schema: Any, seed: bytes) -> Any:
    """A value of `schema`, the same for the same seed."""
    return _Instance(schema, seed).of(schema, "$", 0)


def _schema_of(value: Any, param: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise StructuredError(f"{param} is not valid JSON: {exc}", param) from exc
    if not isinstance(value, dict):
        raise StructuredError(f"{param} must be a JSON schema object", param)
    return value


def _from_response_format(value: Any) -> Constraint | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        raise StructuredError("response_format.type must be one of 'text', 'json_object', 'json_schema'",
                              "response_format")
    if value["type"] == "text":
        return None
    if value["type"] == "json_object":
        return Constraint("json")
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or "name" not in spec:
        raise StructuredError("When response_format type is 'json_schema', the 'json_schema' field "
                              "must be provided, with its 'name'.", "response_format")
    return Constraint("json", _schema_of(spec.get("schema", {}), "response_format.json_schema.schema"))


def _from_structured_outputs(value: Any) -> Constraint | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StructuredError("structured_outputs must be an object", "structured_outputs")
    given = [k for k in ("json", "json_object", "choice", *UNSIMULATED) if value.get(k) not in (None, False)]
    if len(given) > 1:
        raise StructuredError("You can only use one kind of structured outputs constraint but "
                              f"multiple are specified: {given}", "structured_outputs")
    if not given:
        return None
    kind = given[0]
    if kind in UNSIMULATED:
        raise StructuredError(f"vLLM SIMULATOR: structured_outputs.{kind} is not simulated (the lab's "
                              "stand-in has no grammar engine; real vLLM accepts it)", "structured_outputs")
    if kind == "json_object":
        return Constraint("json")
    if kind == "choice":
        choice = value["choice"]
        if not isinstance(choice, list) or not choice or not all(isinstance(c, str) for c in choice):
            raise StructuredError("structured_outputs.choice must be a non-empty list of strings",
                                  "structured_outputs")
        return Constraint("choice", choice=tuple(choice))
    return Constraint("json", _schema_of(value["json"], "structured_outputs.json"))


def _functions(tools: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(tools, list) or not tools:
        raise StructuredError("tools must be a non-empty list", "tools")
    functions = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise StructuredError("each tool needs a function with a name", "tools")
        functions.append(function)
    return tuple(functions)


def _from_tools(body: dict[str, Any], auto_tools: bool) -> Constraint | None:
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not tools:
        if choice not in (None, "none"):
            raise StructuredError("When using `tool_choice`, `tools` must be set.", "tool_choice")
        return None
    functions = _functions(tools)
    choice = "auto" if choice is None else choice
    if choice == "none":
        return None
    if choice == "required":
        return Constraint("tools", tool=functions[0])
    if choice == "auto":
        if not auto_tools:
            raise StructuredError(AUTO_NEEDS, "tool_choice")
        messages = body.get("messages") or []
        answered = bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool"
        return None if answered else Constraint("tools", tool=functions[0])
    name = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    named = [f for f in functions if f["name"] == name]
    if not named:
        raise StructuredError(f"Tool '{name}' has not been passed in `tools`.", "tool_choice")
    return Constraint("tools", tool=named[0], named=True)


def constraint(kind: str, body: dict[str, Any], auto_tools: bool) -> Constraint:
    """The constraint of one request ("chat" or "completion"); StructuredError as vLLM's 400."""
    found = [c for c in (_from_response_format(body.get("response_format")),
                         _from_structured_outputs(body.get("structured_outputs")),
                         _from_tools(body, auto_tools) if kind == "chat" else None) if c is not None]
    return found[0] if found else TEXT


def answer_text(constraint: Constraint, seed: bytes, words: str) -> str:
    """The content of a json or choice answer (text answers keep the simulator's words)."""
    if constraint.kind == "choice":
        return constraint.choice[_pick(seed, "choice", len(constraint.choice))]
    if constraint.schema is None:
        return json.dumps({"answer": words.strip()})
    return json.dumps(instance(constraint.schema, seed))


def tool_call(constraint: Constraint, seed: bytes) -> dict[str, Any]:
    """The tool call of a tools answer, in OpenAI's shape (arguments as JSON text)."""
    function = constraint.tool
    return {"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function",
            "function": {"name": function["name"],
                         "arguments": json.dumps(instance(function.get("parameters", {}), seed))}}
