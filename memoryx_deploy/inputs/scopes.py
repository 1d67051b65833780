"""Where memoryx_* variables are set: a data variable set for some hosts only is refused.

The stack is one for every host: the controller validates, plans and renders the gateway from its
own view of the memoryx_* variables, so a value that an inventory group's group_vars (of a group
that does not hold every host), a host's host_vars or an inventory file's own `vars:` give some
hosts only would split it. This reads those places as files (YAML inventories and their
group_vars/host_vars folders, and the playbook folder's), so the cost is the size of the files,
not hosts x data. Vault-encrypted files are skipped (their variables are secrets such as
vault_memoryx_gateway_api_keys, referenced from group_vars/all).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from memoryx_deploy.inputs.variables import INTERNAL, PREFIX, unknown_problems
from memoryx_deploy.inputs.yamlcheck import AnsibleYamlLoader, vars_files

Groups = Mapping[str, list[str]]


def scope_problems(sources: Iterable[str], playbook_dir: str, groups: Groups) -> list[str]:
    """memoryx_* variables set for a group that does not hold every host, or for a host.
    `sources`: the inventory sources (files or folders); their folders and `playbook_dir` hold
    the group_vars/host_vars that Ansible reads."""
    paths = [Path(source) for source in sources]
    folders = [path if path.is_dir() else path.parent for path in paths] + [Path(playbook_dir)]
    files = [file for path in paths
             for file in (sorted(path.glob("*.y*ml")) if path.is_dir() else [path])]
    everyone = set(groups.get("all", []))
    problems: list[str] = []
    for folder in _unique(folders):
        for path in vars_files(folder):
            problems += _problems(_names(_load(path)), _scope(folder, path), str(path), groups,
                                  everyone)
    for path in _unique(files):
        if path.is_file() and path.suffix in (".yml", ".yaml"):
            for scope, names in _inline(_load(path)):
                problems += _problems(names, scope, f"{path} (vars of {scope[1]})", groups, everyone)
    return problems


def _unique(paths: Iterable[Path]) -> list[Path]:
    return list(dict.fromkeys(path.resolve() for path in paths))


def _scope(folder: Path, path: Path) -> tuple[str, str]:
    """('group', name) or ('host', name) of a group_vars/host_vars file."""
    relative = path.relative_to(folder).parts
    kind = "group" if relative[0] == "group_vars" else "host"
    name = relative[1] if len(relative) > 2 else Path(relative[1]).stem
    return (kind, name)


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if text.startswith("$ANSIBLE_VAULT"):
        return None
    try:
        return yaml.load(text, Loader=AnsibleYamlLoader)
    except yaml.YAMLError:
        return None  # named by memoryx_deploy.yamlcheck


def _names(data: Any) -> list[str]:
    if not isinstance(data, Mapping):
        return []
    return [name for name in data
            if isinstance(name, str) and name.startswith(PREFIX) and not name.startswith(INTERNAL)]


def _inline(data: Any) -> list[tuple[tuple[str, str], list[str]]]:
    """The `vars:` of every group and the variables of every host of a YAML inventory."""
    found: list[tuple[tuple[str, str], list[str]]] = []

    def walk(name: str, group: Any) -> None:
        if not isinstance(group, Mapping):
            return
        found.append((("group", name), _names(group.get("vars"))))
        for host, variables in (group.get("hosts") or {}).items():
            found.append((("host", str(host)), _names(variables)))
        for child, data in (group.get("children") or {}).items():
            walk(str(child), data)

    for name, group in (data or {}).items() if isinstance(data, Mapping) else []:
        walk(str(name), group)
    return found


def _problems(names: list[str], scope: tuple[str, str], where: str, groups: Groups,
              everyone: set[str]) -> list[str]:
    kind, name = scope
    if kind == "group" and (name == "all" or set(groups.get(name, [])) >= everyone):
        return []  # seen by the controller too: checked with the stack itself
    who = f"inventory group {name}" if kind == "group" else f"host {name}"
    problems = unknown_problems(names, f" (in {where})")
    problems += [f"variable {variable} is set for {who} only ({where}): the controller would "
                 f"validate and plan one stack while {name} deploys another; set it for all "
                 "hosts (group_vars/all)" for variable in names]
    return problems
