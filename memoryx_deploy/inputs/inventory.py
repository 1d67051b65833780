"""Inventory hostnames, their ansible_host and their groups, read from YAML inventory files
(no connection)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Inventory:
    addresses: dict[str, str] = field(default_factory=dict)  # host -> ansible_host ('' if none)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> hosts, children included


def read_inventory(path: Path) -> Inventory:
    """Every host and group of a YAML inventory file, or of the *.yml files of an inventory
    folder. A host without ansible_host maps to '' (as the preflight does)."""
    files = sorted([*path.glob("*.yml"), *path.glob("*.yaml")]) if path.is_dir() else [path]
    inventory = Inventory()
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for name, group in (data or {}).items():
            _walk(str(name), group, inventory)
    return inventory


def inventory_addresses(path: Path) -> dict[str, str]:
    return read_inventory(path).addresses


def _walk(name: str, group: Any, inventory: Inventory) -> list[str]:
    """The hosts of `group` and of its children, recorded under `name`."""
    members = inventory.groups.setdefault(name, [])
    if not isinstance(group, Mapping):
        return members
    for host, variables in (group.get("hosts") or {}).items():
        address = (variables or {}).get("ansible_host")
        if address:
            inventory.addresses[str(host)] = str(address)
        else:
            inventory.addresses.setdefault(str(host), "")
        if str(host) not in members:
            members.append(str(host))
    for child, data in (group.get("children") or {}).items():
        for host in _walk(str(child), data, inventory):
            if host not in members:
                members.append(host)
    return members
