"""What the preflight accepts, the deploy deploys: no role input, playbook or role reads a
memoryx_* data variable (or a vault secret) directly. Each reads the stack the preflight
validated (memoryx_stack, memoryx_host) or a secret through the variable the stack names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from memoryx_deploy.inputs.variables import DATA, SECRETS, VAULT_TLS

ROOT = Path(__file__).resolve().parents[2]
# Keys whose value Ansible evaluates as a bare Jinja expression.
BARE = frozenset({"when", "that", "failed_when", "changed_when", "until"})
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
NAME = re.compile(r"(?<![\w.'\"])(?:vault_)?memoryx_[a-z0-9_]+")
FORBIDDEN = frozenset({*DATA, *(name for names in SECRETS.values() for name in names), *VAULT_TLS})


def expressions(node: Any, key: str = "") -> Iterator[str]:
    """Every Jinja expression of a YAML document: {{ }} and {% %} in strings, and the bare
    expressions of when/that/...; a comment is never one."""
    if isinstance(node, dict):
        for k, value in node.items():
            yield from expressions(value, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item, key)
    elif isinstance(node, str):
        yield from (node,) if key in BARE else JINJA.findall(node)


def reads(expression: str) -> set[str]:
    return {name for name in NAME.findall(expression) if name in FORBIDDEN}


def yaml_files() -> list[Path]:
    files = [ROOT / "site.yml", ROOT / "group_vars/all/roles.yml", ROOT / "group_vars/all/derived.yml",
             *sorted((ROOT / "playbooks").rglob("*.yml")), *sorted((ROOT / "roles").rglob("*.yml"))]
    return [f for f in files if "molecule" not in f.parts]


def offenders(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".j2":
        found = set().union(*map(reads, JINJA.findall(text))) if JINJA.search(text) else set()
    else:
        found = set()
        for document in yaml.safe_load_all(text):
            for expression in expressions(document):
                found |= reads(expression)
    return sorted(found)


def test_the_scanner_finds_a_direct_read() -> None:
    document = yaml.safe_load("""
- name: t
  vars: {a: "{{ memoryx_gateway.auth }}", b: "{{ memoryx_stack.gateway.auth }}"}
  when: memoryx_image_source == 'archive'
  # memoryx_verify in a comment
  debug: {msg: "memoryx_verify is a word here, {{ vault_memoryx_gateway_api_keys[0] }}"}
""")
    found = set().union(*map(reads, expressions(document)))
    assert found == {"memoryx_gateway", "memoryx_image_source", "vault_memoryx_gateway_api_keys"}


def test_the_preflight_reads_the_data_by_listing_it_not_by_name() -> None:
    """The preflight is where the data is read; even it names no data variable."""
    assert offenders(ROOT / "playbooks/preflight.yml") == []


@pytest.mark.parametrize("path", [*yaml_files(), *sorted((ROOT / "roles").rglob("*.j2"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_role_input_playbook_or_role_reads_the_data_directly(path: Path) -> None:
    assert offenders(path) == [], f"{path.relative_to(ROOT)} reads data the preflight validated: " \
                                  "read memoryx_stack or memoryx_host instead"
