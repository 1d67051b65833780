"""Shared by the testinfra verify of the monitoring scenarios (gateway_mtail, node_exporter_gpu,
prometheus_server): the scenario's inventory variables, the stack's monitoring view its converge
builds from them, Prometheus text read from an exporter, and polling until a condition holds."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from memoryx_deploy import build_stack

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
Sample = tuple[str, dict[str, str], float]
T = TypeVar("T")


def scenario_vars(test_file: str) -> dict[str, Any]:
    """The group_vars `all` of the molecule.yml of the scenario holding `test_file`."""
    molecule = yaml.safe_load((Path(test_file).resolve().parents[1] / "molecule.yml").read_text())
    variables: dict[str, Any] = molecule["provisioner"]["inventory"]["group_vars"]["all"]
    return variables


def monitoring_view(variables: dict[str, Any]) -> dict[str, Any]:
    """The monitoring part of the stack the scenario's converge builds: the shared layout, the
    project's engines and the lab's stand-ins, the scenario's monitoring data and addresses."""
    layout = yaml.safe_load((ROOT / "molecule" / "shared" / "vars" / "layout.yml").read_text())["mxmol_layout"]
    layout["engines"] = yaml.safe_load(
        (ROOT / "group_vars" / "all" / "memoryx.yml").read_text())["memoryx_engines"]
    layout["extra_engines"] = yaml.safe_load(
        (ROOT / "inventory" / "lab" / "group_vars" / "lab" / "engines.yml").read_text())["memoryx_extra_engines"]
    layout["monitoring"] = variables["mxmol_monitoring"]
    return dict(build_stack(layout, variables["mxmol_addresses"])["monitoring"])


def scrape(url: str) -> list[Sample]:
    """The samples of a Prometheus text endpoint as this machine (another host on the LAN) reads it."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    matches = (SAMPLE.match(line) for line in text.splitlines())
    return [(m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))) for m in matches if m]


def poll(read: Callable[[], T], done: Callable[[T], bool], seconds: float, pause: float = 0.5) -> T:
    """`read()` until `done` holds or `seconds` pass; the last value read."""
    deadline = time.monotonic() + seconds
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(pause)
        value = read()
    return value
