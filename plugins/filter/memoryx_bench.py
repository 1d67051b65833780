"""Jinja filter memoryx_bench_plan (playbooks/bench.yml): a shim over memoryx_deploy.bench."""

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from memoryx_deploy.bench import bench_plan
from memoryx_deploy.filters import Filter, plain
from memoryx_deploy.model import StackError


def memoryx_bench_plan(*args: Any) -> Any:
    try:
        return bench_plan(*(plain(arg) for arg in args))
    except StackError as problem:
        count = len(problem.problems)
        lines = [f"memoryx_bench_plan: {count} problem{'s' if count != 1 else ''} with the benchmark's "
                 "parameters (nothing was sent):", *(f" - {line}" for line in problem.problems)]
        raise AnsibleFilterError("\n".join(lines)) from None


class FilterModule:
    def filters(self) -> dict[str, Filter]:
        return {"memoryx_bench_plan": memoryx_bench_plan}
