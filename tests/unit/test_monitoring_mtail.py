"""The gateway's mtail program (roles/gateway_mtail) over lines in the router's metrics format
(roles/nginx_unified/templates/router.conf.j2, log_format memoryx_metrics): compiled by mtail
and run once over them. mtail comes from Debian's package (scripts/bootstrap extracts it into
build/tools/bin); skipped only where it is absent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "roles/gateway_mtail/files/memoryx_gateway.mtail"
ROUTER = ROOT / "roles/nginx_unified/templates/router.conf.j2"
PROG = 'prog="memoryx_gateway.mtail"'


def mtail() -> str:
    found = shutil.which("mtail") or next(
        (str(p) for p in [ROOT / "build/tools/bin/mtail"] if p.is_file()), None)
    if found is None:
        pytest.skip("mtail is not installed (scripts/bootstrap extracts it into build/tools/bin)")
    return found


def router_line(**values: str) -> str:
    """A datagram as nginx sends it: syslog header (nohostname, tag) and the log_format's text,
    its variables replaced by `values` (the format read from the router's template)."""
    template = ROUTER.read_text()
    match = re.search(r"log_format memoryx_metrics ((?:'[^']*'\s*)+);", template)
    assert match is not None, "router.conf.j2 has no log_format memoryx_metrics"
    text = "".join(re.findall(r"'([^']*)'", match.group(1)))
    assert text.endswith("\\n"), "mtail counts a datagram only when it ends with a newline"
    text = text[:-2] + "\n"
    line = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], text)
    tag = re.search(r"tag=\{\{ nginx_unified_metrics_tag \}\}", template)
    assert tag is not None
    return f"<190>Nov 27 20:17:00 memoryx_gateway: {line}"


def run_once(tmp_path: Path, lines: list[str]) -> str:
    log = tmp_path / "router.log"
    log.write_text("".join(lines))
    result = subprocess.run(
        [mtail(), "--one_shot", "--one_shot_format", "prometheus", "--logtostderr",
         "--address", "127.0.0.1", "--port", "0", "--progs", str(PROGRAM), "--logs", str(log)],
        text=True, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def sample(pool: str, model: str, status: str, upstream: str, request: str,
           key: str = "-", prompt: str = "-", completion: str = "-") -> str:
    return router_line(mx_metrics_pool=pool, mx_metrics_model=model, status=status,
                       upstream_response_time=upstream, request_time=request,
                       mx_metrics_key=key, mx_metrics_prompt=prompt, mx_metrics_completion=completion)


def test_program_compiles() -> None:
    # --port 0: the check opens mtail's web port first (3903 may be taken, as on a gateway host)
    result = subprocess.run([mtail(), "--compile_only", "--logtostderr", "--address", "127.0.0.1",
                             "--port", "0", "--progs", str(PROGRAM)],
                            text=True, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def test_requests_by_pool_model_status_and_upstream_time(tmp_path: Path) -> None:
    out = run_once(tmp_path, [
        sample("llama", "llama3.1-8b", "200", "0.012", "0.013"),
        sample("llama", "llama3.1-8b", "200", "0.300", "0.301"),
        sample("qwen", "qwen2.5-14b", "502", "0.001, 0.015", "0.020"),  # retried once
        sample("-", "other", "404", "-", "0.000"),  # a model the gateway does not serve
    ])
    counts = {(m["pool"], m["model"], m["status"]): float(m["value"]) for m in re.finditer(
        r'memoryx_gateway_requests_total\{model="(?P<model>[^"]*)",pool="(?P<pool>[^"]*)",'
        + PROG + r',status="(?P<status>\d+)"\} (?P<value>\S+)', out)}
    assert counts == {("llama", "llama3.1-8b", "200"): 2, ("qwen", "qwen2.5-14b", "502"): 1,
                      ("-", "other", "404"): 1}
    llama = f'model="llama3.1-8b",pool="llama",{PROG}'
    assert f"memoryx_gateway_upstream_seconds_count{{{llama}}} 2" in out
    assert f"memoryx_gateway_upstream_seconds_sum{{{llama}}} 0.312" in out
    assert f'memoryx_gateway_upstream_seconds_bucket{{{llama},le="0.025"}} 1' in out
    assert f'memoryx_gateway_upstream_seconds_bucket{{{llama},le="0.5"}} 2' in out
    qwen = f'model="qwen2.5-14b",pool="qwen",{PROG}'
    assert f"memoryx_gateway_upstream_seconds_sum{{{qwen}}} 0.015" in out  # the last try
    assert f"memoryx_gateway_upstream_retries_total{{{qwen}}} 1" in out
    assert f"memoryx_gateway_upstream_retries_total{{{llama}}}" not in out
    # no upstream: a request time, no upstream observation
    other = f'model="other",pool="-",{PROG}'
    assert f"memoryx_gateway_request_seconds_count{{{other}}} 1" in out
    assert f"memoryx_gateway_upstream_seconds_count{{{other}}}" not in out


def test_unrelated_lines_count_nothing(tmp_path: Path) -> None:
    out = run_once(tmp_path, ["<190>Nov 27 20:17:00 other: something else entirely\n",
                              sample("llama", "llama3.1-8b", "200", "0.010", "0.011")])
    assert re.findall(r"^memoryx_gateway_requests_total\{.*\} (\S+)$", out, re.M) == ["1"]


def test_requests_and_tokens_by_key(tmp_path: Path) -> None:
    out = run_once(tmp_path, [
        sample("llama", "llama3.1-8b", "200", "0.010", "0.011", "memoryx", "12", "5"),
        sample("llama", "llama3.1-8b", "200", "0.010", "0.011", "memoryx", "30", "7"),
        sample("bge", "bge-m3", "200", "0.002", "0.003", "rag-embedder", "9", "-"),  # embeddings
        sample("qwen", "qwen2.5-14b", "200", "0.010", "0.011", "memoryx", "-", "-"),  # no usage asked
        sample("-", "-", "401", "-", "0.000"),  # no key
    ])

    def series(name: str) -> dict[tuple[str, ...], float]:
        found = {}
        for m in re.finditer(rf"^{name}\{{(?P<labels>.*)\}} (?P<value>\S+)$", out, re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
            found[tuple(v for k, v in sorted(labels.items()) if k != "prog")] = float(m["value"])
        return found

    assert series("memoryx_gateway_key_requests_total") == {
        ("memoryx", "llama3.1-8b", "200"): 2, ("rag-embedder", "bge-m3", "200"): 1,
        ("memoryx", "qwen2.5-14b", "200"): 1, ("-", "-", "401"): 1}
    assert series("memoryx_gateway_prompt_tokens_total") == {
        ("memoryx", "llama3.1-8b"): 42, ("rag-embedder", "bge-m3"): 9}
    assert series("memoryx_gateway_completion_tokens_total") == {("memoryx", "llama3.1-8b"): 12}
