"""The generated Prometheus configuration and alert rules under promtool (check config, check
rules, test rules), and the Grafana dashboard's PromQL. promtool comes from Debian's prometheus
package (scripts/bootstrap extracts it into build/tools/bin); skipped only where it is absent."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.render.monitoring import alert_rules, scrape_configs

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65", "localhost": ""}
DASHBOARD = ROOT / "docs/grafana/memoryx.json"


def tool(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in [ROOT / "build/tools/bin" / name] if p.is_file()), None)
    if found is None:
        pytest.skip(f"{name} is not installed (scripts/bootstrap extracts it into build/tools/bin)")
    return found


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=cwd, text=True, capture_output=True,
                          timeout=120, check=False)


@pytest.fixture
def monitoring() -> dict[str, Any]:
    config = load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])
    return dict(build_stack(config, ADDRESSES)["monitoring"])


def write_rules(path: Path, rules: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def test_generated_config_and_rules_pass_promtool(monitoring: dict[str, Any], tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "memoryx.rules.yml", alert_rules(monitoring))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": monitoring["scrape_interval"],
                   "scrape_timeout": monitoring["scrape_timeout"],
                   "evaluation_interval": monitoring["evaluation_interval"]},
        "rule_files": [str(rules)],
        "scrape_configs": scrape_configs(monitoring)}, sort_keys=False))
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 4 rules found" in checked.stdout
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_refuses_a_broken_rule(monitoring: dict[str, Any], tmp_path: Path) -> None:
    """The check the role runs as `validate:` does catch a bad expression."""
    rules = alert_rules(monitoring)
    rules["groups"][0]["rules"][0]["expr"] = "up{job= == 0"
    checked = promtool("check", "rules", str(write_rules(tmp_path / "bad.yml", rules)))
    assert checked.returncode != 0


def vllm(instance: str, pool: str, model: str) -> str:
    return f'job="vllm",instance="{instance}",host="mx-llm-01",pool="{pool}",model="{model}"'


def expected(alertname: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": labels}


def test_alerts_fire_on_their_conditions_and_not_on_healthy_series(
        monitoring: dict[str, Any], tmp_path: Path) -> None:
    a = monitoring["alerts"]
    assert (a["instance_down_for"], a["pool_down_for"], a["kv_cache_for"], a["requests_waiting_for"],
            a["kv_cache_usage_above"], a["requests_waiting_above"]) == ("1m", "1m", "5m", "2m", 0.9, 8)
    rules = alert_rules(monitoring)
    for rule in rules["groups"][0]["rules"]:
        rule.pop("annotations")  # promtool compares annotations too: labels are what is tested
    write_rules(tmp_path / "rules.yml", rules)
    down = vllm("llama-gpu0-0", "llama", "llama3.1-8b")
    live = vllm("llama-gpu0-1", "llama", "llama3.1-8b")
    qwen = vllm("qwen-gpu2", "qwen", "qwen2.5-14b")
    labels_down = {"job": "vllm", "instance": "llama-gpu0-0", "host": "mx-llm-01", "pool": "llama",
                   "model": "llama3.1-8b", "severity": "critical"}
    labels_qwen = {**labels_down, "instance": "qwen-gpu2", "pool": "qwen", "model": "qwen2.5-14b"}
    kv = {k: v for k, v in labels_down.items() if k != "job"} | {"severity": "warning"}
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "15s", "tests": [
        {"interval": "15s",
         "input_series": [
             {"series": f"up{{{down}}}", "values": "1 1 0x40"},  # down from 30 s
             {"series": f"up{{{live}}}", "values": "1x42"},
             {"series": f"up{{{qwen}}}", "values": "1 1 0x40"},  # the qwen pool's only member
             {"series": 'up{job="node",instance="mx-llm-01",host="mx-llm-01"}', "values": "1x42"},
             # not the stack's targets: Debian's default configuration's, no host or pool label
             {"series": 'up{job="node",instance="localhost:9100"}', "values": "0x42"},
             {"series": 'up{job="vllm",instance="localhost:8000"}', "values": "0x42"},
             {"series": f"vllm:kv_cache_usage_perc{{{down},engine=\"0\"}}", "values": "0.95x42"},
             {"series": f"vllm:kv_cache_usage_perc{{{live},engine=\"0\"}}", "values": "0.95x8 0.5x34"},
             {"series": f"vllm:num_requests_waiting{{{down}}}", "values": "9x42"},
             {"series": f"vllm:num_requests_waiting{{{live}}}", "values": "8x42"},  # not above 8
         ],
         "alert_rule_test": [
             # 30 s down: pending, not firing yet
             {"eval_time": "1m", "alertname": "MemoryxInstanceDown", "exp_alerts": []},
             {"eval_time": "2m", "alertname": "MemoryxInstanceDown",
              "exp_alerts": [{"exp_labels": labels_down}, {"exp_labels": labels_qwen}]},
             {"eval_time": "2m", "alertname": "MemoryxPoolWithoutLiveMember",
              "exp_alerts": [{"exp_labels": {"pool": "qwen", "severity": "critical"}}]},
             {"eval_time": "4m", "alertname": "MemoryxKvCacheHigh", "exp_alerts": []},
             {"eval_time": "6m", "alertname": "MemoryxKvCacheHigh", "exp_alerts": [{"exp_labels": kv}]},
             {"eval_time": "1m", "alertname": "MemoryxRequestsWaiting", "exp_alerts": []},
             {"eval_time": "3m", "alertname": "MemoryxRequestsWaiting",
              "exp_alerts": [{"exp_labels": kv}]},
         ]},
        {"interval": "15s",  # a healthy stack: nothing fires
         "input_series": [
             {"series": f"up{{{down}}}", "values": "1x40"},
             {"series": f"up{{{qwen}}}", "values": "1x40"},
             {"series": f"vllm:kv_cache_usage_perc{{{down}}}", "values": "0.3x40"},
             {"series": f"vllm:num_requests_waiting{{{down}}}", "values": "2x40"}],
         "alert_rule_test": [{"eval_time": "10m", "alertname": name, "exp_alerts": []}
                             for name in ("MemoryxInstanceDown", "MemoryxPoolWithoutLiveMember",
                                          "MemoryxKvCacheHigh", "MemoryxRequestsWaiting")]},
    ]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def exported_metrics() -> set[str]:
    """What the stack's exporters serve: mtail's program, the GPU textfile, the vLLM simulator."""
    program = (ROOT / "roles/gateway_mtail/files/memoryx_gateway.mtail").read_text()
    names = set(re.findall(r"^(?:counter|gauge|histogram) (\w+)", program, re.M))
    names |= {f"{n}_bucket" for n in re.findall(r"^histogram (\w+)", program, re.M)}
    gpu = (ROOT / "roles/node_exporter_gpu/files/memoryx-gpu-metrics").read_text()
    names |= set(re.findall(r"\b((?:nvidia_smi|memoryx_gpu)_\w+)", gpu))
    sys.path.insert(0, str(ROOT / "lab/simulators"))
    try:
        import vllm_sim
    finally:
        sys.path.pop(0)
    model = vllm_sim.Model(path="m", served_names=["m"], max_model_len=8192)
    text = vllm_sim.metrics_text(vllm_sim.Engine(model, 4, 0.0, 0.0))
    names |= set(re.findall(r"^# TYPE (\S+)", text, re.M))
    return names


def test_dashboard_is_importable_as_is() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["id"] is None and dashboard["uid"] == "memoryx-stack"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_parse_and_use_exported_metrics(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    known = exported_metrics() | {"up", "ALERTS"}
    used = {name for expr in exprs
            for name in re.findall(r"\b((?:memoryx|nvidia_smi)_\w+|vllm:\w+|up|ALERTS)\b(?!\s*\()", expr)}
    assert used - known == set()
    assert {"memoryx_gateway_requests_total", "memoryx_gateway_upstream_seconds_bucket",
            "vllm:kv_cache_usage_perc", "nvidia_smi_memory_used_bytes"} <= used
    # each query as a recording rule: promtool parses every expression (Grafana's interval
    # variable becomes a duration; "$pool" is a valid regular expression string)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(exprs)]}]}
    checked = promtool("check", "rules", str(write_rules(tmp_path / "dashboard.yml", rules)))
    assert checked.returncode == 0, checked.stdout + checked.stderr
