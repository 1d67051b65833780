"""vLLM flags from profile and instance `args` (key -> --key-with-dashes)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from memoryx_deploy.inputs.fields import Reader, is_int, is_number, show

ArgValue = str | int | float | bool | None | Mapping[str, Any]

ARG_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")
# Flags memoryx-deploy sets itself, and where the user says what they mean instead.
OWNED = {
    "model": "set model_path in the profile",
    "served_model_name": "set served_model_name in the profile",
    "port": "set the instance's port; the container listens on 8000",
    "host": "the container listens on all its interfaces; the published address is computed",
}
MODEL_DIR = "/model_data"


def read_args(reader: Reader, key: str = "args") -> dict[str, ArgValue]:
    """The `args` mapping of a profile or instance, keys normalized to snake_case."""
    result: dict[str, ArgValue] = {}
    for name, value in reader.mapping(key, default={}).items():
        if not isinstance(name, str) or not ARG_KEY.match(name):
            reader.fail(f"{key} key {show(name)} must match {ARG_KEY.pattern}")
            continue
        flag = name.replace("-", "_")
        if flag in OWNED:
            reader.fail(f"{key}.{name} is owned by memoryx-deploy ({OWNED[flag]}); remove it")
        elif not _valid_value(value):
            reader.fail(f"{key}.{name} must be a string, number, boolean, null or mapping, "
                        f"got {show(value)}")
        else:
            result[flag] = value
    check_memory_args(reader, key, result)
    return result


def _valid_value(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool | Mapping)


def check_memory_args(reader: Reader, key: str, args: Mapping[str, ArgValue]) -> None:
    """The two flags the memory checks read must have the right types when present."""
    util = args.get("gpu_memory_utilization")
    if util is not None and not (is_number(util) and 0 < util <= 1):
        reader.fail(f"{key}.gpu_memory_utilization must be a number greater than 0 and "
                    f"at most 1, got {show(util)}")
    length = args.get("max_model_len")
    if length is not None and not (is_int(length) and length >= 1):
        reader.fail(f"{key}.max_model_len must be a positive integer, got {show(length)}")


def render_args(model_path: str, served_model_name: str, args: Mapping[str, ArgValue]) -> list[str]:
    """The container command: model flags first, then `args` in their order."""
    rendered = ["--model", f"{MODEL_DIR}/{model_path}", "--served-model-name", served_model_name]
    for name, value in args.items():
        if value is None or value is False:
            continue
        rendered.append("--" + name.replace("_", "-"))
        if value is not True:
            rendered.append(render_value(value))
    return rendered


def render_value(value: ArgValue) -> str:
    if isinstance(value, Mapping):
        return json.dumps(dict(value), separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return str(value)
