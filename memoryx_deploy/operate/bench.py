"""The design document's benchmark, per pool: each instance alone serially, then the gateway
concurrently (playbooks/bench.yml).

On the controller: `bench_plan` turns the stack and the bench_* parameters into the runs (every
parameter checked first, each bad one named, before any traffic); the load itself runs on the
gateway host (data/bench_load.py); `report` turns the plan and the runs' results into the
document's table (mode, requests, seconds, QPS, speed-up), one JSON document with every raw
number, and a PNG of throughput against concurrency:
`python -m memoryx_deploy.operate.bench report --out DIR < raw.json`.

The speed-up of a gateway run is its QPS over the mean QPS of the pool's instances run alone
serially, as the document computes it: 15.4/s over (5.7 + 5.5)/2 = 2.75x.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import posixpath
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memoryx_deploy.schema.stack import StackError

PREFIX = "bench_"
DEFAULT_PROMPT = ("Extract every entity (people, organisations, places, dates) from this text and "
                  "answer as JSON: 张三 2024年3月加入了北京的清华大学, 他的同事李四来自上海的复旦大学.")
MAX_REQUESTS = 1000
# The gateway admits 64 requests in progress per client address (nginx_unified_client_connections).
MAX_CONCURRENCY = 64
MAX_LEVELS = 10
MAX_TOKENS = 4096
MAX_SECONDS = 3600.0
# What a run asks of each kind of pool: the engine API path and the body.
PATHS = {"vllm": "/v1/chat/completions", "ollama": "/v1/embeddings"}
ENGINE_INFO_PATH = "/sim/info"  # the lab simulators describe themselves; real engines answer 404


@dataclass(frozen=True)
class Parameters:
    """What one benchmark sends (playbooks/bench.yml extra-vars, bench_<field>)."""

    requests: int = 10
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    pools: tuple[str, ...] = ()  # () = every pool
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = 64
    request_timeout: float = 60.0
    run_timeout: float = 120.0
    output_dir: str = "build/bench"


FIELDS = tuple(Parameters.__dataclass_fields__)


# --------------------------------------------------------------------------- parameters


def parameters(raw: Mapping[str, Any], pool_names: Sequence[str]) -> Parameters:
    """The bench_* variables, checked; StackError names every bad one and its value."""
    problems: list[str] = []
    for name in sorted(raw):
        if name.removeprefix(PREFIX) not in FIELDS:
            close = difflib.get_close_matches(name, [PREFIX + f for f in FIELDS], n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else "parameters: " + ", ".join(PREFIX + f for f in FIELDS)
            problems.append(f"{name} is not a parameter of the benchmark; {hint}")
    given = {name.removeprefix(PREFIX): value for name, value in raw.items()
             if name.removeprefix(PREFIX) in FIELDS and value is not None}
    defaults = Parameters()
    requests = _whole(problems, "requests", given.get("requests", defaults.requests), 1, MAX_REQUESTS)
    levels = _levels(problems, given.get("concurrency", list(defaults.concurrency)))
    pools = _pools(problems, given.get("pools", "all"), pool_names)
    prompt = given.get("prompt", defaults.prompt)
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(f"bench_prompt must be a non-empty string, got {prompt!r}")
        prompt = defaults.prompt
    max_tokens = _whole(problems, "max_tokens", given.get("max_tokens", defaults.max_tokens), 1, MAX_TOKENS)
    request_timeout = _seconds(problems, "request_timeout", given.get("request_timeout", defaults.request_timeout))
    run_timeout = _seconds(problems, "run_timeout", given.get("run_timeout", defaults.run_timeout))
    output_dir = given.get("output_dir", defaults.output_dir)
    if not isinstance(output_dir, str) or not output_dir.strip():
        problems.append(f"bench_output_dir must be a directory path, got {output_dir!r}")
        output_dir = defaults.output_dir
    if problems:
        raise StackError(problems)
    return Parameters(requests, levels, pools, prompt, max_tokens, request_timeout, run_timeout, output_dir)


def _number(value: Any) -> float | None:
    """An int, a float or their text (extra-vars given as key=value are strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _whole(problems: list[str], field: str, value: Any, low: int, high: int) -> int:
    number = _number(value)
    if number is None or not number.is_integer() or not low <= number <= high:
        problems.append(f"bench_{field} must be a whole number from {low} to {high}, got {value!r}")
        return low
    return int(number)


def _seconds(problems: list[str], field: str, value: Any) -> float:
    number = _number(value)
    if number is None or not 0 < number <= MAX_SECONDS or math.isnan(number):
        problems.append(f"bench_{field} must be seconds, more than 0 and at most {MAX_SECONDS:g}, got {value!r}")
        return 1.0
    return number


def _items(value: Any) -> list[Any] | None:
    """A list, or comma-separated text ("1,2,4"; "llama,qwen")."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    return None


def _levels(problems: list[str], value: Any) -> tuple[int, ...]:
    items = _items(value)
    if not items:
        problems.append(f"bench_concurrency must list concurrency levels (e.g. 1,2,4,8,16), got {value!r}")
        return ()
    levels: list[int] = []
    for item in items:
        number = _number(item)
        if number is None or not number.is_integer() or not 1 <= number <= MAX_CONCURRENCY:
            problems.append(f"bench_concurrency: {item!r} is not a concurrency from 1 to {MAX_CONCURRENCY} "
                            f"(the gateway admits {MAX_CONCURRENCY} requests in progress per client)")
        elif int(number) not in levels:
            levels.append(int(number))
    if len(levels) > MAX_LEVELS:
        problems.append(f"bench_concurrency: at most {MAX_LEVELS} levels, got {len(levels)}")
    return tuple(sorted(levels))


def _pools(problems: list[str], value: Any, pool_names: Sequence[str]) -> tuple[str, ...]:
    items = _items(value)
    if items in (["all"], ["*"]):
        return tuple(pool_names)
    if not items:
        problems.append(f"bench_pools must name pools or all, got {value!r}")
        return ()
    unknown = [item for item in items if item not in pool_names]
    for item in unknown:
        problems.append(f"bench_pools: {item!r} is not a pool of the stack (pools: {', '.join(pool_names)}, or all)")
    return tuple(name for name in pool_names if name in items)


# --------------------------------------------------------------------------- plan


def gateway_path(stack: Mapping[str, Any], pool: str, model: str, upstream: str) -> str | None:
    """The gateway path that reaches `upstream` (an engine API path) on `pool`, from the route
    table: an exact route first (the document's URL), then a prefix route, then a stripped one."""
    gateway = stack["gateway"]
    for route in gateway["routes"]:
        serves = route["pool"] == pool or (route.get("route_by_model") and gateway["models"].get(model) == pool)
        if serves and route.get("exact") and route["path"] == upstream:
            return str(route["path"])
    for route in gateway["routes"]:
        if route["pool"] == pool and not route.get("exact") and not route.get("strip_prefix") \
                and upstream.startswith(route["path"]):
            return upstream
    for route in gateway["routes"]:
        if route["pool"] == pool and route.get("strip_prefix"):
            return str(route["path"]).rstrip("/") + upstream
    return None


def body(kind: str, model: str, params: Parameters) -> dict[str, Any]:
    if kind == "vllm":
        return {"model": model, "max_tokens": params.max_tokens,
                "messages": [{"role": "user", "content": params.prompt}]}
    return {"model": model, "input": params.prompt}


def gateway_requests(requests: int, concurrency: int) -> int:
    """A gateway run sends the smallest multiple of its concurrency that is >= `requests`:
    every worker sends as many requests as the others."""
    return math.ceil(requests / concurrency) * concurrency


def bench_plan(stack: Mapping[str, Any], raw: Mapping[str, Any], root: str = ".") -> dict[str, Any]:
    """Every run of the benchmark, in order; StackError (every problem) before any traffic."""
    pool_names = list(stack["pools"])
    params = parameters(raw, pool_names)
    gateway = stack["gateway"]
    tls = gateway.get("tls") or {}
    url = tls.get("url") or f"http://{gateway['address']}:{gateway['port']}"
    problems: list[str] = []
    runs: list[dict[str, Any]] = []
    bodies: dict[str, dict[str, Any]] = {}
    for name in params.pools:
        pool = stack["pools"][name]
        kind, model = pool["kind"], pool["models"][0]
        upstream = PATHS[kind]
        path = gateway_path(stack, name, model, upstream)
        if path is None:
            problems.append(f"pool {name!r}: no gateway route reaches {upstream} (gateway routes: "
                            f"{', '.join(r['path'] for r in gateway['routes'])})")
            continue
        bodies[name] = body(kind, model, params)
        for member in pool["members"]:
            runs.append({
                "pool": name, "mode": "serial", "member": member["name"], "concurrency": 1,
                "requests": params.requests, "auth": False, "info_path": ENGINE_INFO_PATH,
                "url": f"http://{member['address']}:{member['port']}{upstream}",
                "label": f"{name}: {member['name']} alone, {params.requests} serial"})
        for level in params.concurrency:
            count = gateway_requests(params.requests, level)
            runs.append({
                "pool": name, "mode": "gateway", "member": None, "concurrency": level,
                "requests": count, "auth": True, "info_path": "", "url": url + path,
                "label": f"{name}: gateway, {count} requests at {level} concurrent"})
    if problems:
        raise StackError(problems)
    output = posixpath.normpath(posixpath.join(root, params.output_dir))  # an absolute one stays
    pools = {name: {"kind": stack["pools"][name]["kind"], "model": stack["pools"][name]["models"][0],
                    "members": [m["name"] for m in stack["pools"][name]["members"]]}
             for name in bodies}
    total = sum(run["requests"] for run in runs)
    seconds = len(runs) * (params.run_timeout + params.request_timeout)
    return {
        "parameters": {**asdict(params), "concurrency": list(params.concurrency), "pools": list(params.pools)},
        "gateway": url,
        "ca_bundle": tls.get("ca_bundle", "") if tls.get("enabled") else "",
        "output_dir": output,
        "pools": pools,
        "bodies": bodies,
        "runs": runs,
        "summary": (f"{len(runs)} runs, {total} requests in all, from {gateway['host']}: "
                    f"pools {', '.join(pools)}; every instance alone ({params.requests} serial requests), "
                    f"then the gateway {url} at concurrency {', '.join(map(str, params.concurrency))}; "
                    f"no request starts after {params.run_timeout:g} s of a run "
                    f"(at most {seconds:g} s in all)"),
    }


# --------------------------------------------------------------------------- report


def qps(ok: int, seconds: float) -> float:
    return ok / seconds if seconds > 0 else 0.0


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def engine_settings(info: Any) -> dict[str, Any] | None:
    """What the lab simulators say of their latency model; None for a real engine."""
    if not isinstance(info, dict) or "simulator" not in info:
        return None
    if info["simulator"] == "vllm":
        settings = info.get("settings") or {}
        args = info.get("args") or {}
        return {"simulator": "vllm", "ttft_ms": settings.get("ttft_ms"), "tpot_ms": settings.get("tpot_ms"),
                "batch_cost": settings.get("batch_cost", 0.0), "max_num_seqs": args.get("max_num_seqs")}
    return {"simulator": str(info["simulator"]), "embed_ms": info.get("embed_ms"),
            "num_parallel": info.get("num_parallel")}


def report(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document: per pool its runs (raw latencies included), QPS and speed-ups."""
    plan = raw["plan"]
    results = raw["results"]
    if len(results) != len(plan["runs"]):
        raise ValueError(f"{len(plan['runs'])} runs planned, {len(results)} results")
    pools: dict[str, dict[str, Any]] = {}
    for name, pool in plan["pools"].items():
        pools[name] = {**pool, "engine": None, "baseline_qps": None, "runs": [], "headline": None}
    for run, result in zip(plan["runs"], results, strict=True):
        latencies = [x for x in result.get("latencies", []) if x is not None]
        entry = {
            "mode": run["mode"], "member": run["member"], "concurrency": run["concurrency"],
            "url": run["url"], "requests": int(result["requests"]), "ok": int(result["ok"]),
            "failed": int(result["failed"]), "seconds": float(result["seconds"]),
            "qps": qps(int(result["ok"]), float(result["seconds"])), "speedup": None,
            "latency_p50": percentile(latencies, 0.5), "latency_p95": percentile(latencies, 0.95),
            "statuses": result.get("statuses", {}), "errors": result.get("errors", []),
            "warmup_failed": int(result.get("warmup_failed", 0)), "latencies": result.get("latencies", []),
        }
        pool = pools[run["pool"]]
        settings = engine_settings(result.get("info"))
        if settings is not None and pool["engine"] is None:
            pool["engine"] = settings
        pool["runs"].append(entry)
    for pool in pools.values():
        serial = [r["qps"] for r in pool["runs"] if r["mode"] == "serial"]
        baseline = statistics.fmean(serial) if serial else 0.0
        pool["baseline_qps"] = baseline
        gateway = [r for r in pool["runs"] if r["mode"] == "gateway"]
        for entry in gateway:
            entry["speedup"] = entry["qps"] / baseline if baseline > 0 else None
        if gateway:
            top = max(gateway, key=lambda r: r["concurrency"])
            pool["headline"] = {"concurrency": top["concurrency"], "qps": top["qps"], "speedup": top["speedup"]}
    return {
        "generated": raw.get("generated") or datetime.now(UTC).isoformat(timespec="seconds"),
        "load_host": raw.get("load_host", ""),
        "gateway": plan["gateway"],
        "parameters": plan["parameters"],
        "failed": sum(r["failed"] for p in pools.values() for r in p["runs"]),
        "pools": pools,
    }


def _mode(entry: Mapping[str, Any]) -> str:
    if entry["mode"] == "serial":
        return f"{entry['member']} alone, serial"
    return f"gateway, {entry['concurrency']} concurrent"


def _engine_text(engine: Mapping[str, Any] | None) -> str:
    if engine is None:
        return "engine: real (no simulator settings reported)"
    if engine["simulator"] == "vllm":
        return (f"vLLM simulator: TTFT {engine['ttft_ms']:g} ms, TPOT {engine['tpot_ms']:g} ms "
                f"+{engine.get('batch_cost', 0.0):g} per other running sequence, "
                f"max-num-seqs {engine['max_num_seqs']}")
    return f"Ollama simulator: {engine['embed_ms']:g} ms per embedding, one at a time per instance"


def format_table(document: Mapping[str, Any]) -> str:
    """The document's table per pool (Markdown), then one line per pool: the headline speed-up."""
    params = document["parameters"]
    lines = [f"gateway {document['gateway']}, load from {document['load_host'] or 'the gateway host'}; "
             f"{params['requests']} requests per run, max_tokens {params['max_tokens']}"]
    headlines = []
    for name, pool in document["pools"].items():
        lines += ["", f"pool {name} ({pool['model']}, {len(pool['members'])} instance"
                      f"{'s' if len(pool['members']) != 1 else ''}; {_engine_text(pool['engine'])})", "",
                  "| mode | requests | failed | seconds | QPS | speed-up |",
                  "|---|---:|---:|---:|---:|---:|"]
        for entry in pool["runs"]:
            speedup = f"{entry['speedup']:.2f}x" if entry["speedup"] is not None else "-"
            lines.append(f"| {_mode(entry)} | {entry['requests']} | {entry['failed']} | "
                         f"{entry['seconds']:.3f} | {entry['qps']:.1f}/s | {speedup} |")
        head = pool["headline"]
        if head is not None and head["speedup"] is not None:
            headlines.append(f"{name}: gateway at {head['concurrency']} concurrent {head['qps']:.1f}/s = "
                             f"{head['speedup']:.2f}x one instance serially ({pool['baseline_qps']:.1f}/s, "
                             f"mean of {len(pool['members'])})")
    lines += ["", *headlines, f"failed requests: {document['failed']}"]
    return "\n".join(lines) + "\n"


def write_chart(document: Mapping[str, Any], path: Path) -> None:
    """PNG: per pool, gateway QPS against concurrency, and each instance's serial QPS marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pools = list(document["pools"].items())
    figure, axes = plt.subplots(1, max(len(pools), 1), figsize=(4.2 * max(len(pools), 1), 3.8), squeeze=False)
    for axis, (name, pool) in zip(axes[0], pools, strict=False):
        gateway = [r for r in pool["runs"] if r["mode"] == "gateway"]
        serial = [r for r in pool["runs"] if r["mode"] == "serial"]
        levels = [r["concurrency"] for r in gateway]
        axis.plot(levels, [r["qps"] for r in gateway], marker="o", label="gateway, concurrent")
        for r in gateway:
            if r["speedup"] is not None:
                axis.annotate(f"{r['speedup']:.1f}x", (r["concurrency"], r["qps"]),
                              textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        axis.scatter([1] * len(serial), [r["qps"] for r in serial], marker="x", color="tab:red",
                     label="one instance, serial", zorder=3)
        if pool["baseline_qps"]:
            axis.axhline(pool["baseline_qps"], color="tab:red", linestyle="--", linewidth=0.8)
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels or [1])
        axis.set_xticklabels([str(x) for x in levels or [1]])
        axis.set_ylim(0, 1.18 * max([r["qps"] for r in pool["runs"]] + [1.0]))  # room for the labels
        axis.set_title(f"{name} ({pool['model']}, {len(pool['members'])} inst.)", fontsize=10)
        axis.set_xlabel("concurrent requests")
        axis.set_ylabel("requests/s")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8, loc="best")
    figure.suptitle(f"Throughput through the gateway vs one instance ({document['generated']})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=110)
    plt.close(figure)


OUTPUTS = {"json": "bench.json", "table": "bench.md", "chart": "bench.png"}


def write_outputs(document: Mapping[str, Any], directory: Path) -> dict[str, Path]:
    """bench.json (every raw number), bench.md (the table), bench.png (the chart)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / name for kind, name in OUTPUTS.items()}
    paths["json"].write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["table"].write_text(format_table(document), encoding="utf-8")
    write_chart(document, paths["chart"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memoryx_deploy.operate.bench")
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("report", help="read {plan, results} JSON on stdin; write the table, "
                                             "JSON and chart; print the table")
    out.add_argument("--out", required=True, type=Path, help="output directory")
    args = parser.parse_args(argv)
    document = report(json.load(sys.stdin))
    paths = write_outputs(document, args.out)
    sys.stdout.write(format_table(document))
    sys.stdout.write("".join(f"wrote {path}\n" for path in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
