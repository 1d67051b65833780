"""Inventory hostname -> ansible_host, read from YAML inventory files (no connection)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


def inventory_addresses(path: Path) -> dict[str, str]:
    """Every host of a YAML inventory file, or of the *.yml files of an inventory folder.
    A host without ansible_host maps to '' (as `memoryx_addresses` does)."""
    files = sorted([*path.glob("*.yml"), *path.glob("*.yaml")]) if path.is_dir() else [path]
    addresses: dict[str, str] = {}
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        for group in (data or {}).values():
            _walk(group, addresses)
    return addresses


def _walk(group: Any, addresses: dict[str, str]) -> None:
    if not isinstance(group, Mapping):
        return
    for host, variables in (group.get("hosts") or {}).items():
        address = (variables or {}).get("ansible_host")
        if address:
            addresses[str(host)] = str(address)
        else:
            addresses.setdefault(str(host), "")
    for child in (group.get("children") or {}).values():
        _walk(child, addresses)
