"""Typed reading of user data. A bad field adds a problem and yields a placeholder value;
the caller checks `Reader.failed` once, after reading every field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

# Instance names become container names and nginx server comments.
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Pool names also become Python constants of the client config: start with a letter.
POOL = re.compile(r"^[a-z][a-z0-9-]*$")
# Model names as clients send them in the JSON body (`llama3.1-8b`, `bge-m3:latest`).
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
# name[:tag]@sha256:<64 hex>: the only digest Docker registries use.
DIGEST_REFERENCE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def show(value: object) -> str:
    """A value as the user wrote it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def range_problem(
    value: float, low: float | None, high: float | None, above: float | None
) -> str | None:
    """'between 1 and 65535' style wording for a value outside its range, else None."""
    if low is not None and high is not None and above is None and not low <= value <= high:
        return f"between {low:g} and {high:g}"
    parts = []
    if above is not None and value <= above:
        parts.append(f"greater than {above:g}")
    if low is not None and value < low:
        parts.append(f"at least {low:g}")
    if high is not None and value > high:
        parts.append(f"at most {high:g}")
    return " and ".join(parts) or None


def pinned(image: str) -> bool:
    """An image reference with a digest or a tag other than `latest`."""
    if "@" in image:
        return DIGEST_REFERENCE.match(image) is not None
    last = image.rsplit("/", 1)[-1]
    return ":" in last and not last.endswith(":latest")


_REQUIRED: Any = object()


class Reader:
    """Reads the mapping `data` of the item `where`, rejecting keys not in `allowed`."""

    def __init__(
        self, problems: list[str], where: str, data: object, allowed: Iterable[str]
    ) -> None:
        self.problems = problems
        self.where = where
        self.failed = False
        self.data: Mapping[Any, Any] = {}
        self.shapeless = not isinstance(data, Mapping)  # its fields are not reported then
        if data is _REQUIRED:  # a required section that is missing, already reported
            self.failed = True
            return
        if not isinstance(data, Mapping):
            self.fail(f"must be a mapping, got {show(data)}")
            return
        self.data = data
        names = sorted(allowed)
        for key in data:
            if key not in names:
                self.fail(f"unknown key {show(key)} (allowed: {', '.join(names)})")

    def fail(self, message: str) -> None:
        self.problems.append(f"{self.where}: {message}")
        self.failed = True

    def raw(self, key: str, default: Any = _REQUIRED) -> Any:
        """The value of `key`; an optional key that is absent or null gives `default`."""
        if key in self.data and (self.data[key] is not None or default is _REQUIRED):
            return self.data[key]
        if default is _REQUIRED and not self.shapeless:
            self.fail(f"{key} is required")
        return default

    def _bad(self, key: str, kind: str, value: object) -> None:
        self.fail(f"{key} must be {kind}, got {show(value)}")

    def integer(
        self, key: str, low: int | None = None, high: int | None = None, default: Any = _REQUIRED
    ) -> int:
        value = self.raw(key, default)
        if not is_int(value):
            if key in self.data:
                self._bad(key, "an integer", value)
            return 0
        wrong = range_problem(value, low, high, None)
        if wrong:
            self.fail(f"{key} must be {wrong}, got {value}")
        return int(value)

    def number(
        self,
        key: str,
        low: float | None = None,
        high: float | None = None,
        above: float | None = None,
        default: Any = _REQUIRED,
    ) -> float:
        value = self.raw(key, default)
        if not is_number(value):
            if key in self.data:
                self._bad(key, "a number", value)
            return 0.0
        wrong = range_problem(value, low, high, above)
        if wrong:
            self.fail(f"{key} must be {wrong}, got {value}")
        return value

    def string(
        self, key: str, pattern: re.Pattern[str] | None = None, default: Any = _REQUIRED
    ) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or not value:
            if key in self.data:
                self._bad(key, "a non-empty string", value)
            return ""
        if pattern is not None and not pattern.match(value):
            self.fail(f"{key} must match {pattern.pattern}, got {value!r}")
        return str(value)

    def optional_string(self, key: str, pattern: re.Pattern[str] | None = None) -> str | None:
        """A string that may be absent or null."""
        return None if self.data.get(key) is None else self.string(key, pattern)

    def image(self, key: str, default: Any = _REQUIRED) -> str:
        value = self.string(key, default=default)
        if value and not pinned(value):
            self.fail(f"{key} {value!r} must be pinned by a tag other than latest, or a digest "
                      "(name@sha256:<64 hex digits>)")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            self._bad(key, "true or false", value)
            return default
        return value

    def mapping(self, key: str, default: Any = _REQUIRED) -> Mapping[Any, Any]:
        value = self.raw(key, default)
        if not isinstance(value, Mapping):
            if key in self.data:
                self._bad(key, "a mapping", value)
            return {}
        return value

    def sequence(self, key: str, default: Any = _REQUIRED) -> list[Any]:
        value = self.raw(key, default)
        if not isinstance(value, list):
            if key in self.data:
                self._bad(key, "a list", value)
            return []
        return value

    def env(self, key: str) -> dict[str, str]:
        """An environment mapping: NAME -> string or number (numbers become strings)."""
        result: dict[str, str] = {}
        for name, value in self.mapping(key, default={}).items():
            if not isinstance(name, str) or not ENV_KEY.match(name):
                self.fail(f"{key} name {show(name)} must match {ENV_KEY.pattern}")
            elif isinstance(value, str) or is_number(value):
                result[name] = str(value)
            else:
                self._bad(f"{key}.{name}", "a string or a number", value)
        return result
