"""`python -m memoryx_deploy plan|gateway-url|archive-name|pull-reference`: the per-GPU plan, the
gateway's URL, an image's archive name or pulled reference, from the stack data and an inventory,
on the controller alone (nothing is contacted); `status`: playbooks/status.yml through
ansible-runner (read-only), as a table or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from memoryx_deploy.filters import message
from memoryx_deploy.inputs.containers import archive_name
from memoryx_deploy.inputs.inventory import read_inventory
from memoryx_deploy.inputs.registry import Registry
from memoryx_deploy.inputs.variables import CONFIG_KEYS
from memoryx_deploy.model.stack import stack_from_variables
from memoryx_deploy.operate.status_run import run_status
from memoryx_deploy.render.plan import format_plan
from memoryx_deploy.schema.stack import StackError

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m memoryx_deploy")
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser("plan", help="print the per-GPU plan (no host is contacted)")
    url = commands.add_parser("gateway-url", help="print the URL MemoryX calls (the gateway)")
    for sub in (plan, url):
        _common(sub)
    archive = commands.add_parser("archive-name",
                                  help="print the file name of an image's docker-save archive")
    archive.add_argument("image", nargs="+")
    pulled = commands.add_parser("pull-reference",
                                 help="print the reference a host pulls for an image from a "
                                      "private registry (memoryx_registry mode private)")
    pulled.add_argument("--registry", required=True, metavar="ADDRESS", help="host[:port]")
    pulled.add_argument("--prefix", default="", help="path below the address")
    pulled.add_argument("image", nargs="+")
    status = commands.add_parser("status", help="the running stack against its data "
                                 "(playbooks/status.yml, read-only); exit 1 names each difference")
    status.add_argument("--json", action="store_true", help="print the report as JSON")
    status.add_argument("-i", "--inventory", type=Path, metavar="PATH",
                        help="inventory (default: ansible.cfg's, the lab)")
    status.add_argument("--limit", metavar="HOSTS", help="read these hosts only")
    return parser.parse_args(argv)


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--group-vars", type=Path, action="append", metavar="PATH",
                     help="YAML file of memoryx_* variables; repeat to layer "
                          "(default: group_vars/all/memoryx.yml)")
    sub.add_argument("--inventory", type=Path, metavar="PATH",
                     default=ROOT / "inventory" / "lab" / "hosts.yml",
                     help="YAML inventory file or folder (default: inventory/lab/hosts.yml)")


def load_variables(paths: list[Path]) -> dict[str, Any]:
    """The variables of YAML files, later files winning; a syntax error names its file."""
    variables: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            raise StackError([f"{path}:{where}: not valid YAML "
                              f"({getattr(error, 'problem', None) or error}); fix the file"]) from None
        if not isinstance(data, dict):
            raise StackError([f"{path}: must be a mapping of variables, got {type(data).__name__}"])
        variables.update(data)
    return variables


def load_config(paths: list[Path]) -> dict[str, Any]:
    """memoryx_config (CONFIG_KEYS) from the memoryx_* variables of YAML files."""
    variables = load_variables(paths)
    return {key: variables[f"memoryx_{key}"] for key in CONFIG_KEYS
            if f"memoryx_{key}" in variables}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "archive-name":
        print("\n".join(archive_name(image) for image in args.image))
        return 0
    if args.command == "pull-reference":
        registry = Registry(mode="private", address=args.registry, prefix=args.prefix.strip("/"))
        print("\n".join(registry.reference(image) for image in args.image))
        return 0
    if args.command == "status":
        return run_status(args.inventory, args.limit, args.json)
    try:
        variables = load_variables(args.group_vars or [ROOT / "group_vars" / "all" / "memoryx.yml"])
        names = [name for name in variables if isinstance(name, str)]
        inventory = read_inventory(args.inventory)
        stack = stack_from_variables(variables, names, inventory.addresses, inventory.groups,
                                     [str(args.inventory)], str(ROOT / "playbooks"), secrets=False)
    except StackError as problem:
        print(message(args.command, problem), file=sys.stderr)
        return 1
    if args.command == "gateway-url":
        print(stack["gateway"]["tls"]["url"])  # https:// with TLS (issue 11)
    else:
        print("\n".join(format_plan(stack)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
