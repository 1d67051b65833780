"""The Jinja filters, over plain copies of Ansible's values, with Ansible's error type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from memoryx_deploy.inputs.engines import host_gpu_problems
from memoryx_deploy.inputs.variables import readable_names
from memoryx_deploy.model.hostview import image_records
from memoryx_deploy.model.stack import build_stack, stack_from_variables
from memoryx_deploy.operate.bench import bench_plan
from memoryx_deploy.operate.images import daemon_json, pull_plan, registry_auth, running_digests
from memoryx_deploy.operate.smoke import smoke_failures, smoke_runs, smoke_todo
from memoryx_deploy.operate.status import format_status, log_search, probe_results, status_report
from memoryx_deploy.render.client_config import client_config, render_env, render_python
from memoryx_deploy.render.monitoring import alert_rules, scrape_configs
from memoryx_deploy.render.plan import format_plan
from memoryx_deploy.render.tls import expiry_report
from memoryx_deploy.schema.stack import StackError

Filter = Callable[..., Any]


def plain(value: Any) -> Any:
    """A plain-Python copy: Ansible may pass tagged strings and lazily templated containers,
    which this walks through their own iteration (a JSON dump could read them raw)."""
    if isinstance(value, Mapping):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    for kind in (bool, int, float, str):  # bool before int: True is an int too
        if isinstance(value, kind):
            return kind(value)
    return value


FUNCTIONS: dict[str, Filter] = {
    "memoryx_stack": build_stack,
    "memoryx_stack_from_variables": stack_from_variables,
    "memoryx_data_variables": readable_names,
    "memoryx_plan": format_plan,
    "memoryx_client_config": client_config,
    "memoryx_client_env": render_env,
    "memoryx_client_python": render_python,
    "memoryx_image_records": image_records,
    # issue 8: the GPUs a host really has, and the smoke runs before an image replaces anything
    "memoryx_gpu_check": host_gpu_problems,
    "memoryx_smoke_runs": smoke_runs,
    "memoryx_smoke_todo": smoke_todo,
    "memoryx_smoke_failures": smoke_failures,
    # issue 10: registries, moved tags, and the digest each container runs
    "memoryx_pull_plan": pull_plan,
    "memoryx_registry_auth": registry_auth,
    "memoryx_daemon_json": daemon_json,
    "memoryx_running_digests": running_digests,
    # issue 11: the gateway certificate's expiry (plan, preflight)
    "memoryx_tls_expiry": expiry_report,
    # issue 12: the running stack against its data (playbooks/status.yml)
    "memoryx_status_report": status_report,
    "memoryx_status_probes": probe_results,
    "memoryx_status_log_search": log_search,
    "memoryx_status_table": format_status,
    # Prometheus's files (playbooks/monitoring.yml) and the benchmark's plan (playbooks/bench.yml)
    "memoryx_alert_rules": alert_rules,
    "memoryx_scrape_configs": scrape_configs,
    "memoryx_bench_plan": bench_plan,
}
# What a filter's StackError is about, where it is not the stack's layout.
SUBJECTS = {"memoryx_bench_plan": "the benchmark's parameters (nothing was sent)"}


def filters(error: type[Exception]) -> dict[str, Filter]:
    """name -> filter; a StackError becomes `error` whose message starts with the name."""
    return {name: _wrap(name, function, error) for name, function in FUNCTIONS.items()}


def _wrap(name: str, function: Filter, error: type[Exception]) -> Filter:
    def run(*args: Any) -> Any:
        try:
            return function(*(plain(arg) for arg in args))
        except StackError as problem:
            raise error(message(name, problem)) from None

    run.__name__ = name
    return run


def message(name: str, problem: StackError) -> str:
    count = len(problem.problems)
    plural = "s" if count != 1 else ""
    subject = SUBJECTS.get(name)
    lines = ([f"{name}: {count} problem{plural} with {subject}:"] if subject
             else [f"{name}: the stack layout has {count} problem{plural}:"])
    return "\n".join(lines + [f" - {line}" for line in problem.problems])
