"""The lock is the only source of versions: requirements.in (what the project uses directly),
requirements.txt (the lock scripts/lock makes from it, with hashes) and .venv (what
scripts/bootstrap installed from the lock) must agree, and Ansible runs on them without a warning."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.ansible_env import ansible_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)\s*\\?$")


def parse_lock(text: str) -> dict[str, str]:
    """name -> version of a pip-compile lock; every entry pinned with == and at least one hash."""
    locked: dict[str, str] = {}
    name = ""
    hashes: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            if stripped.startswith("--hash=sha256:") and name:
                hashes[name] += 1
            continue
        match = ENTRY.match(stripped)
        if not match:
            raise ValueError(f"lock line {number}: {stripped!r} is not NAME==VERSION with hashes")
        name = canonicalize_name(match["name"])
        locked[name] = match["version"]
        hashes[name] = 0
    unhashed = sorted(n for n, count in hashes.items() if count == 0)
    if unhashed:
        raise ValueError(f"lock: no hash for {', '.join(unhashed)}")
    return locked


def top_level(text: str) -> list[Requirement]:
    return [Requirement(line.split("#", 1)[0].strip()) for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


Requires = Callable[[str], Iterable[str]]


def closure(roots: Iterable[Requirement], requires: Requires) -> set[str]:
    """Every distribution that `roots` need, extras and environment markers evaluated."""
    needed: set[str] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        needed.add(name)
        for spec in requires(name):
            req = Requirement(spec)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed


def installed_requires(name: str) -> list[str]:
    return metadata.distribution(name).requires or []


def frozen() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], text=True,
                         capture_output=True, check=True).stdout
    pairs = (line.split("==", 1) for line in out.splitlines() if line.strip())
    return {canonicalize_name(name): version for name, version in pairs}


LOCK = parse_lock((ROOT / "requirements.txt").read_text())
TOP = top_level((ROOT / "requirements.in").read_text())


def test_every_top_level_requirement_is_locked_at_an_allowed_version() -> None:
    wrong = [f"{r} (locked: {LOCK.get(canonicalize_name(r.name))})" for r in TOP
             if not r.specifier.contains(LOCK.get(canonicalize_name(r.name), "0+absent"), prereleases=True)]
    assert not wrong, "requirements.in and the lock disagree; run scripts/lock: " + ", ".join(wrong)


def test_the_lock_holds_exactly_what_requirements_in_needs() -> None:
    needed = closure(TOP, installed_requires)
    assert not needed - set(LOCK), f"needed but not locked: {sorted(needed - set(LOCK))}"
    assert not set(LOCK) - needed, f"locked but needed by nothing: {sorted(set(LOCK) - needed)}"


def test_the_venv_is_exactly_the_lock() -> None:
    installed = frozen()
    assert {n: v for n, v in installed.items() if LOCK.get(n) != v} == {}, "installed, not as locked"
    assert sorted(set(LOCK) - set(installed)) == [], "locked, not installed: run scripts/bootstrap"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], text=True, capture_output=True)
    assert check.returncode == 0, check.stdout


@pytest.mark.parametrize("argv", [["ansible", "--version"],
                                  ["ansible-playbook", "--syntax-check", "site.yml"],
                                  ["ansible-inventory", "--graph"]])
def test_ansible_prints_no_warning_on_the_locked_versions(argv: list[str]) -> None:
    result = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=ROOT, env=ansible_env(),
                            text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stderr


# ----------------------------------------------------------------------- the readers themselves


def test_a_lock_entry_without_a_pin_or_a_hash_is_refused() -> None:
    assert parse_lock("a==1.0 \\\n    --hash=sha256:ab\n    # via -r requirements.in\n") == {"a": "1.0"}
    with pytest.raises(ValueError, match=r"lock line 1: 'a>=1.0' is not NAME==VERSION"):
        parse_lock("a>=1.0\n")
    with pytest.raises(ValueError, match="lock: no hash for b"):
        parse_lock("a==1 \\\n    --hash=sha256:ab\nb==2\n")


def test_the_closure_follows_extras_and_markers() -> None:
    graph = {"top": ["dep", "opt; extra == 'docker'", "win; sys_platform == 'win32'"],
             "dep": ["leaf>=1"], "opt": [], "leaf": [], "win": []}
    assert closure(top_level("top==1\n"), graph.__getitem__) == {"top", "dep", "leaf"}
    assert closure(top_level("top[docker]==1\n"), graph.__getitem__) == {"top", "dep", "leaf", "opt"}
