"""The running stack against its data: one status table, and every difference named.

playbooks/status.yml reads each host (read-only: `docker inspect`, the images' own environment,
the log files' sizes, nvidia-smi, each instance's /v1/models, /metrics or /api/ps, the gateway's
drained members and health state, the backend firewall unit) into one observation per host, and
`status_report` compares it with the stack. `python -m memoryx_deploy status` runs that playbook
through ansible-runner and prints the same report, or its JSON (`--json`).
"""

from __future__ import annotations

import csv
import fnmatch
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from memoryx_deploy.operate.container_logs import log_files
from memoryx_deploy.operate.runner_events import task_results
from memoryx_deploy.schema.stack import Stack

# vLLM's gauges (V1 names; the V0 name of the KV-cache gauge is read too)
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
# the columns playbooks/status.yml asks nvidia-smi for, in this order
GPU_QUERY = ("index", "memory.used", "memory.total", "utilization.gpu")


class InstanceRow(TypedDict):
    instance: str
    kind: str
    host: str
    gpu: int
    container: str
    state: str
    health: str
    restarts: int | None
    uptime_s: int | None
    image: str
    model: str | None
    pool: str
    pool_state: str
    running: float | None
    waiting: float | None
    kv_cache: float | None
    log_bytes: int | None


class ContainerRow(TypedDict):
    container: str
    host: str
    state: str
    restarts: int | None
    uptime_s: int | None
    image: str
    log_bytes: int | None


class GpuRow(TypedDict):
    host: str
    gpu: int
    memory_used_mib: int | None
    memory_total_mib: int | None
    utilization_pct: int | None


class Report(TypedDict):
    time: str
    healthy: bool
    instances: list[InstanceRow]
    gateway: list[ContainerRow]
    gpus: list[GpuRow]
    problems: list[str]


def status_report(stack: Stack, observed: Mapping[str, Any], now: str = "") -> Report:
    """The report of `observed` (host -> what playbooks/status.yml read there, None when the
    host was not reached) against `stack`, for the hosts in `observed`."""
    moment = _time(now) or datetime.now(UTC)
    problems: list[str] = []
    hosts = [host for host in _hosts_of(stack) if host in observed]  # a --limit reads fewer
    for host in hosts:
        if not isinstance(observed.get(host), Mapping):
            problems.append(f"{host}: not reached: nothing on it could be checked")
    seen = {host: _Host(host, observed[host]) for host in hosts if isinstance(observed.get(host), Mapping)}
    gateway_host = seen.get(stack["gateway"]["host"])
    drained = gateway_host.drained() if gateway_host else set()
    down = gateway_host.gateway_down() if gateway_host else set()

    rows: list[InstanceRow] = []
    for instance in [*stack["vllm_instances"], *stack["ollama_instances"]]:
        where = seen.get(instance["host"])
        if where is not None:
            kind = "vllm" if "served_model_name" in instance else "ollama"
            rows.append(_instance_row(instance, kind, where, moment, drained, down, problems))
    gateway_rows: list[ContainerRow] = []
    if gateway_host is not None:
        for name in gateway_host.data.get("gateway_containers") or []:
            gateway_rows.append(_gateway_row(gateway_host, name, stack["gateway"]["image"], moment, problems))
        for name in sorted(drained):
            problems.append(f"{gateway_host.name}: gateway member {name} is left drained "
                            "(playbooks/restart_vllm.yml undrains it when its instance is back)")
    for one in seen.values():
        problems.extend(_host_problems(stack, one, _expected_names(stack, one.name, gateway_host)))
    gpus = [row for one in seen.values() for row in _gpu_rows(stack, one, problems)]
    return Report(time=moment.isoformat(timespec="seconds"), healthy=not problems, instances=rows,
                  gateway=gateway_rows, gpus=gpus, problems=problems)


def _host_problems(stack: Stack, host: _Host, expected: set[str]) -> list[str]:
    """Managed containers the data does not have, the backend firewall's unit, the boot unit and
    the monitoring services' units."""
    found = []
    for container in host.containers.values():
        role = ((container.get("Config") or {}).get("Labels") or {}).get("memoryx.role")
        if role and _name(container) not in expected:
            found.append(f"{host.name}: container {_name(container)} (memoryx.role={role}) is not in the data")
    state = host.data.get("firewall")
    if stack["by_host"][host.name]["firewall_ports"] and state != "active":
        found.append(f"{host.name}: the backend firewall unit is {state or 'not found'}: "
                     "the instances' ports are open to the whole LAN")
    boot = str(host.data.get("boot_unit") or "").split()
    if stack["by_host"][host.name]["boot_waves"] and boot != ["active", "enabled"]:
        found.append(f"{host.name}: the boot unit memoryx-boot is {' '.join(boot) or 'not found'}: "
                     "at the next reboot Docker starts its containers at once, not in waves "
                     "(site.yml installs, enables and starts it)")
    for unit, unit_state in sorted((host.data.get("monitoring_units") or {}).items()):
        if unit_state != "active":
            found.append(f"{host.name}: monitoring unit {unit} is {unit_state or 'not found'}: "
                         "this host's metrics or alerts are missing (site.yml starts it)")
    return found


def _hosts_of(stack: Stack) -> list[str]:
    """The hosts that run a part of the stack (not the controller)."""
    return sorted(name for name, view in stack["by_host"].items()
                  if view["vllm_instances"] or view["ollama_instances"] or view["gateway"] or view["gpus"])


class _Host:
    """One host's observation, indexed."""

    def __init__(self, name: str, data: Mapping[str, Any]) -> None:
        self.name = name
        self.data = data
        self.containers: dict[str, Mapping[str, Any]] = {
            _name(c): c for c in data.get("containers") or [] if isinstance(c, Mapping)}
        self.image_env: dict[str, list[str]] = {
            str(i.get("Id")): list((i.get("Config") or {}).get("Env") or [])
            for i in data.get("images") or [] if isinstance(i, Mapping)}

    def drained(self) -> set[str]:
        state = self.data.get("drained")
        names = state.get("drained") if isinstance(state, Mapping) else None
        return {str(n) for n in names} if isinstance(names, list) else set()

    def gateway_down(self) -> set[str]:
        state = self.data.get("gateway_health")
        down = state.get("down") if isinstance(state, Mapping) else None
        return {str(n) for n in down} if isinstance(down, Mapping) else set()

    def log_bytes(self, container: Mapping[str, Any]) -> int | None:
        """The size of the container's log files, the rotated ones included (where
        `container_logs.log_files` says its driver keeps them)."""
        files = log_files(container)
        if files is None:
            return None
        sizes = [int(f.get("size") or 0) for f in self.data.get("log_files") or []
                 if isinstance(f, Mapping) and fnmatch.fnmatchcase(str(f.get("path", "")), files.glob)]
        return sum(sizes) if sizes else None


def log_search(containers: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Where playbooks/status.yml looks for the log files of these containers (`docker inspect`
    objects): the folders and file patterns `container_logs.log_files` gives for each."""
    found = [files for files in map(log_files, containers) if files is not None]
    return {"paths": sorted({f.directory for f in found}), "patterns": sorted({f.pattern for f in found})}


def probe_results(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Instance name -> what its endpoints answered, from the results of playbooks/status.yml's
    probe loop (items [instance, path]): /v1/models and /api/ps as JSON, /metrics as text; an
    endpoint that did not answer 200 is left out."""
    keys = {"/v1/models": "models", "/metrics": "metrics", "/api/ps": "ps"}
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        instance, path = result["item"]
        answers = found.setdefault(str(instance["name"]), {})
        if result.get("status") != 200 or path not in keys:
            continue
        answers[keys[path]] = result.get("json") if path != "/metrics" else result.get("content", "")
    return found


def _name(container: Mapping[str, Any]) -> str:
    return str(container.get("Name", "")).lstrip("/")


def _expected_names(stack: Stack, host: str, gateway: _Host | None) -> set[str]:
    view = stack["by_host"][host]
    names = {i["container_name"] for i in [*view["vllm_instances"], *view["ollama_instances"]]}
    if gateway is not None and gateway.name == host:
        names |= set(gateway.data.get("gateway_containers") or [])
    return names


def _instance_row(instance: Any, kind: str, host: _Host, moment: datetime, drained: set[str],
                  down: set[str], problems: list[str]) -> InstanceRow:
    name, record = instance["name"], instance["container"]
    where = f"{host.name}: instance {name} (container {record['name']})"
    container = host.containers.get(record["name"])
    probes = (host.data.get("probes") or {}).get(name) or {}
    row = InstanceRow(instance=name, kind=kind, host=host.name, gpu=instance["gpu"],
                      container=record["name"], state="missing", health="-", restarts=None,
                      uptime_s=None, image=record["image"], model=None, pool=instance["pool"],
                      pool_state="drained" if name in drained else "serving", running=None,
                      waiting=None, kv_cache=None, log_bytes=None)
    if container is None:
        problems.append(f"{where} is missing")
        row["pool_state"] = "drained" if name in drained else "failing"
        return row
    state = container.get("State") or {}
    row["state"] = str(state.get("Status", "unknown"))
    row["restarts"] = container.get("RestartCount")
    row["image"] = str((container.get("Config") or {}).get("Image", ""))
    row["uptime_s"] = _uptime(state, moment)
    row["log_bytes"] = host.log_bytes(container)
    problems.extend(f"{where} {difference}" for difference in
                    container_differences(record, container, host.image_env.get(str(container.get("Image")), [])))
    if row["state"] != "running":
        problems.append(f"{where} is {row['state']} (exit code {state.get('ExitCode')})")
    if kind == "vllm":
        row["model"] = _listed_model(probes.get("models"), instance["served_model_name"])
        metrics = _gauges(probes.get("metrics"))
        row["running"], row["waiting"] = metrics.get(RUNNING), metrics.get(WAITING)
        row["kv_cache"] = next((metrics[k] for k in KV_CACHE if k in metrics), None)
        wanted = instance["served_model_name"]
    else:
        row["model"] = _loaded_model(probes.get("ps"), instance["model"])
        wanted = instance["model"]
    row["health"] = _health(state, row["model"] is not None)
    if row["state"] == "running" and row["health"] != "healthy":
        problems.append(f"{where} is {row['health']}" + (
            "" if row["model"] is not None else f": it does not serve {wanted}"))
    elif row["state"] == "running" and row["model"] is None:
        problems.append(f"{where} does not serve {wanted}")
    if name not in drained and (name in down or row["health"] != "healthy"):
        row["pool_state"] = "failing"
    return row


def _gateway_row(host: _Host, name: str, image: str, moment: datetime,
                 problems: list[str]) -> ContainerRow:
    container = host.containers.get(name)
    if container is None:
        problems.append(f"{host.name}: gateway container {name} is missing")
        return ContainerRow(container=name, host=host.name, state="missing", restarts=None,
                            uptime_s=None, image=image, log_bytes=None)
    state = container.get("State") or {}
    row = ContainerRow(container=name, host=host.name, state=str(state.get("Status", "unknown")),
                       restarts=container.get("RestartCount"), uptime_s=_uptime(state, moment),
                       image=str((container.get("Config") or {}).get("Image", "")),
                       log_bytes=host.log_bytes(container))
    if row["image"] != image:
        problems.append(f"{host.name}: gateway container {name} runs image {row['image']}, "
                        f"the data says {image}")
    if row["state"] != "running":
        problems.append(f"{host.name}: gateway container {name} is {row['state']}")
    return row


def container_differences(record: Mapping[str, Any], container: Mapping[str, Any],
                          image_env: Iterable[str]) -> list[str]:
    """How a container differs from its record: image, command, environment, GPU."""
    config = container.get("Config") or {}
    found: list[str] = []
    if config.get("Image") != record["image"]:
        found.append(f"runs image {config.get('Image')}, the data says {record['image']}")
    command = record.get("command")
    if command is not None and list(config.get("Cmd") or []) != list(command):
        found.append(f"runs command {_args_difference(list(config.get('Cmd') or []), list(command))}")
    env = _env(config.get("Env") or [])
    image = _env(image_env)
    for key, value in sorted(record["env"].items()):
        if env.get(key) != value:
            have = f"{key}={env[key]}" if key in env else f"no {key}"
            found.append(f"has {have} in its environment, the data says {key}={value}")
    for key in sorted(set(env) - set(record["env"])):
        if image.get(key) != env[key]:
            found.append(f"has {key}={env[key]} in its environment, set neither by the data "
                         "nor by its image")
    gpus = sorted(_device_ids(container))
    wanted = sorted(str(d) for r in record["device_requests"] for d in r.get("device_ids") or [])
    if gpus != wanted:
        found.append(f"runs on GPU {','.join(gpus) or 'none'}, the data says {','.join(wanted) or 'none'}")
    return found


def _args_difference(have: list[str], want: list[str]) -> str:
    extra = [a for a in have if a not in want]
    missing = [a for a in want if a not in have]
    if not extra and not missing:
        return f"{' '.join(have)} (arguments in another order than the data's)"
    parts = ([f"with {' '.join(extra)}"] if extra else []) + ([f"without {' '.join(missing)}"] if missing else [])
    return " and ".join(parts) + " (against the data)"


def _env(items: Iterable[str]) -> dict[str, str]:
    pairs = (str(item).split("=", 1) for item in items)
    return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}


def _device_ids(container: Mapping[str, Any]) -> list[str]:
    requests = (container.get("HostConfig") or {}).get("DeviceRequests") or []
    return [str(d) for r in requests for d in (r.get("DeviceIDs") or [])]


def _time(text: str) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds; Python takes microseconds."""
    if not text or text.startswith("0001-"):
        return None
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(trimmed)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _uptime(state: Mapping[str, Any], moment: datetime) -> int | None:
    started = _time(str(state.get("StartedAt", "")))
    if state.get("Status") != "running" or started is None:
        return None
    return max(0, int((moment - started).total_seconds()))


def _health(state: Mapping[str, Any], serving: bool) -> str:
    if state.get("Status") != "running":
        return "-"
    docker = (state.get("Health") or {}).get("Status")
    if docker in ("unhealthy", "starting"):
        return str(docker)
    return "healthy" if serving else "not serving"


def _listed_model(models: object, wanted: str) -> str | None:
    data = models.get("data") if isinstance(models, Mapping) else None
    ids = [m.get("id") for m in data if isinstance(m, Mapping)] if isinstance(data, list) else []
    return wanted if wanted in ids else None


def _loaded_model(ps: object, wanted: str) -> str | None:
    models = ps.get("models") if isinstance(ps, Mapping) else None
    names = [str(m.get("name", "")) for m in models if isinstance(m, Mapping)] if isinstance(models, list) else []
    return wanted if any(n == wanted or n.split(":")[0] == wanted.split(":")[0] for n in names) else None


def _gauges(text: object) -> dict[str, float]:
    """Prometheus text: the sum of each metric's samples (one instance serves one model)."""
    values: dict[str, float] = {}
    for line in str(text or "").splitlines():
        match = SAMPLE.match(line)
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        values[match.group(1)] = values.get(match.group(1), 0.0) + value
    return values


def _gpu_rows(stack: Stack, host: _Host, problems: list[str]) -> list[GpuRow]:
    wanted = stack["by_host"][host.name]["gpus"]
    if not wanted:
        return []
    text = host.data.get("gpus")
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{host.name}: nvidia-smi did not answer: {host.data.get('gpus_error') or 'no output'}")
        return []
    rows: dict[int, GpuRow] = {}
    for fields in csv.reader(text.strip().splitlines(), skipinitialspace=True):
        values = dict(zip(GPU_QUERY, (f.strip() for f in fields), strict=False))
        try:
            index = int(values["index"])
        except (KeyError, ValueError):
            continue
        rows[index] = GpuRow(host=host.name, gpu=index, memory_used_mib=_int(values.get("memory.used")),
                             memory_total_mib=_int(values.get("memory.total")),
                             utilization_pct=_int(values.get("utilization.gpu")))
    for index in wanted:
        if index not in rows:
            problems.append(f"{host.name}: GPU {index} of the data is not listed by nvidia-smi")
    return [rows[i] for i in sorted(rows)]


def _int(text: str | None) -> int | None:
    """nvidia-smi's "15360 MiB", "87 %"; None for "[N/A]" or "[Not Supported]"."""
    match = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)", text or "")
    return int(float(match.group(1))) if match else None


# --------------------------------------------------------------------------- the table


def format_status(report: Report) -> list[str]:
    """The report as text: instances, gateway containers, GPUs, then every problem."""
    lines = [f"MemoryX stack status at {report['time']}: "
             + ("healthy, as the data says" if report["healthy"]
                else f"{len(report['problems'])} problem(s)"), ""]
    lines += _table(["instance", "host", "gpu", "container", "state", "health", "restarts", "uptime",
                     "image", "model", "pool", "running", "waiting", "kv cache", "log"],
                    [[r["instance"], r["host"], str(r["gpu"]), r["container"], r["state"], r["health"],
                      _show(r["restarts"]), _duration(r["uptime_s"]), r["image"], r["model"] or "-",
                      f"{r['pool']}: {r['pool_state']}", _show(r["running"]), _show(r["waiting"]),
                      _percent(r["kv_cache"]), _size(r["log_bytes"])] for r in report["instances"]])
    if report["gateway"]:
        lines += ["", *_table(["gateway container", "host", "state", "restarts", "uptime", "image", "log"],
                               [[r["container"], r["host"], r["state"], _show(r["restarts"]),
                                 _duration(r["uptime_s"]), r["image"], _size(r["log_bytes"])]
                                for r in report["gateway"]])]
    if report["gpus"]:
        lines += ["", *_table(["host", "gpu", "memory used", "memory total", "utilisation"],
                               [[r["host"], str(r["gpu"]), _mib(r["memory_used_mib"]),
                                 _mib(r["memory_total_mib"]), _pct(r["utilization_pct"])]
                                for r in report["gpus"]])]
    if report["problems"]:
        lines += ["", "Differences from the data and failures:"]
        lines += [f" - {problem}" for problem in report["problems"]]
    return lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(row) for row in rows]


def _show(value: float | int | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _pct(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value} MiB"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


# --------------------------------------------------------------------------- the Python face


def report_from_events(events: Iterable[Mapping[str, Any]]) -> Report | None:
    """The report playbooks/status.yml computed, from ansible-runner's events (None when the
    run stopped before it: the preflight refused the data, or the controller failed)."""
    for result in task_results(events):
        facts = result.res.get("ansible_facts") or {}
        if isinstance(facts.get("memoryx_status"), Mapping):
            report: Report = facts["memoryx_status"]
            return report
    return None
