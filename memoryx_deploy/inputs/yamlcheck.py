"""A YAML syntax error in an inventory's or the project's group_vars/host_vars, named by file,
line and column. (ansible-core 2.19 reports such an error without the file it is in.)"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

SUFFIXES = {".yml", ".yaml", ".json", ""}


def vars_files(folder: Path) -> list[Path]:
    """The files Ansible reads as variables under `folder`/group_vars and `folder`/host_vars."""
    found: list[Path] = []
    for kind in ("group_vars", "host_vars"):
        top = folder / kind
        if top.is_dir():
            found += sorted(path for path in top.rglob("*")
                            if path.is_file() and path.suffix in SUFFIXES
                            and not path.name.startswith("."))
    return found


def yaml_problem(path: Path) -> str | None:
    """What is wrong with the YAML of `path`, or None. Vault-encrypted files are left to Ansible."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return f"{path}: cannot be read ({error})"
    if text.startswith("$ANSIBLE_VAULT"):
        return None
    try:
        yaml.load(text, Loader=AnsibleYamlLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}:" if mark is not None else ""
        what = getattr(error, "problem", None) or str(error)
        return f"{path}:{where} not valid YAML ({what}); fix this file"
    return None


def yaml_problems(folders: Iterable[Path]) -> list[str]:
    problems = []
    for folder in folders:
        problems += [p for p in map(yaml_problem, vars_files(folder)) if p is not None]
    return problems


class AnsibleYamlLoader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that accepts Ansible's own tags (!vault, !unsafe) without building them."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
    return None


AnsibleYamlLoader.add_multi_constructor("!", _tagged)
