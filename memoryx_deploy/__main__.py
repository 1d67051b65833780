"""`python -m memoryx_deploy plan|gateway-url`: the per-GPU plan, or the gateway's URL, from
the stack data and an inventory, on the controller alone (nothing is contacted)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from memoryx_deploy.filters import message
from memoryx_deploy.inventory import inventory_addresses
from memoryx_deploy.model import CONFIG_KEYS, StackError
from memoryx_deploy.plan import format_plan
from memoryx_deploy.stack import build_stack

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m memoryx_deploy")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="print the per-GPU plan (no host is contacted)")
    url = commands.add_parser("gateway-url", help="print the URL MemoryX calls (the gateway)")
    for sub in (plan, url):
        _common(sub)
    return parser.parse_args(argv)


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--group-vars", type=Path, action="append", metavar="PATH",
                     help="YAML file of memoryx_* variables; repeat to layer "
                          "(default: group_vars/all/memoryx.yml)")
    sub.add_argument("--inventory", type=Path, metavar="PATH",
                     default=ROOT / "inventory" / "lab" / "hosts.yml",
                     help="YAML inventory file or folder (default: inventory/lab/hosts.yml)")


def load_config(paths: list[Path]) -> dict[str, Any]:
    """memoryx_config as group_vars/all/derived.yml builds it."""
    variables: dict[str, Any] = {}
    for path in paths:
        variables.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return {key: variables[f"memoryx_{key}"] for key in CONFIG_KEYS
            if f"memoryx_{key}" in variables}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    config = load_config(args.group_vars or [ROOT / "group_vars" / "all" / "memoryx.yml"])
    try:
        stack = build_stack(config, inventory_addresses(args.inventory))
    except StackError as problem:
        print(message(args.command, problem), file=sys.stderr)
        return 1
    if args.command == "gateway-url":
        print(f"http://{stack['gateway']['address']}:{stack['gateway']['port']}")
    else:
        print("\n".join(format_plan(stack)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
