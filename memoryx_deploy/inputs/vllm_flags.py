"""The flags of `vllm serve` of one vLLM version, read from vLLM itself by scripts/vllm-flags
and stored as memoryx_deploy/data/vllm-flags-VERSION.json; `args` keys are checked against them."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from memoryx_deploy.inputs.fields import show

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class Flag:
    option: str  # "--max-model-len"
    kind: str  # "value", "switch" (bare), "boolean_pair" (--x and --no-x)
    choices: tuple[str, ...] | None


@dataclass(frozen=True)
class VllmFlags:
    version: str
    flags: dict[str, Flag]  # every long option string, --no-x forms included

    def problem(self, key: str, value: object, image: str = "") -> str | None:
        """Why `args.<key>: value` is not a valid flag of this version (of `image`), else None."""
        option = "--" + key.replace("_", "-")
        flag = self.flags.get(option)
        vllm = f"vLLM {self.version}" + (f" (image {image!r})" if image else "")
        if flag is None:
            return f"args.{key} is not a flag of {vllm}{self.suggestion(key)}"
        bare = flag.kind != "value"
        if bare and value is not None and not isinstance(value, bool):
            return f"args.{key} is a switch ({option}) of {vllm}: give true or false, got {show(value)}"
        if not bare and value is True:
            return f"args.{key} takes a value ({option} VALUE) in {vllm}, got true"
        if (flag.choices is not None and value is not None and value is not False
                and _text(value) not in flag.choices):
            return f"args.{key} must be one of {', '.join(flag.choices)} in {vllm}, got {show(value)}"
        return None

    def suggestion(self, key: str) -> str:
        names = [option[2:].replace("-", "_") for option in self.flags]
        close = difflib.get_close_matches(key.replace("-", "_"), names, n=1, cutoff=0.75)
        return f"; did you mean {close[0]}?" if close else ""


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def flags_path(version: str) -> Path:
    return DATA_DIR / f"vllm-flags-{version}.json"


@cache
def load_flags(version: str) -> VllmFlags | None:
    """The stored flag list of vLLM `version`, None if there is none."""
    path = flags_path(version)
    if not path.is_file():
        return None
    return parse_flags(json.loads(path.read_text(encoding="utf-8")))


def parse_flags(data: Mapping[str, Any]) -> VllmFlags:
    flags: dict[str, Flag] = {}
    for action in data["actions"]:
        choices = action.get("choices")
        for option in action["options"]:
            if option.startswith("--"):
                flags[option] = Flag(option=option, kind=str(action["kind"]),
                                     choices=tuple(str(c) for c in choices) if choices else None)
    return VllmFlags(version=str(data["vllm_version"]), flags=flags)
