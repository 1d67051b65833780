"""Verify role prometheus_server: the server on its address, targets and alert rules of the stack."""

from __future__ import annotations

import json
import re
import shlex
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import yaml
from conftest import ScenarioPlaybook
from monitoring_testkit import monitoring_view, scenario_vars
from monitoring_testkit import poll as monitoring_poll

from memoryx_deploy.render.monitoring import alert_rules

GROUP_VARS = scenario_vars(__file__)
CONFIG = "/etc/prometheus/prometheus.yml"
RULES = "/etc/prometheus/memoryx.rules.yml"
# What is up: the Prometheus host's own targets (prepare.yml runs its exporters). Host
# mx-llm-01 is an address nothing answers on: its vLLM instances and node exporter are down.
UP_HOST = "mx-embed-01"
DOWN_HOST = "mx-llm-01"
T = TypeVar("T")


MONITORING = monitoring_view(GROUP_VARS)
ADDRESS = MONITORING["listen_address"]
PORT = MONITORING["port"]
# every target the stack defines, by (job, instance label)
BY_KEY = {(job, t["labels"]["instance"]): t for job, targets in MONITORING["jobs"].items() for t in targets}
TARGETS = {(job, instance, t["address"]) for (job, instance), t in BY_KEY.items()}
DOWN = {key for key, t in BY_KEY.items() if t["labels"]["host"] == DOWN_HOST}
UP = set(BY_KEY) - DOWN
GPUS = GROUP_VARS["mxmol_gpu_table"]["gpus"]


def api(path: str, **query: str) -> Any:
    """Prometheus's HTTP API as this machine (another host on the LAN) reads it."""
    url = f"http://{ADDRESS}:{PORT}/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=5) as reply:
        answer = json.loads(reply.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def poll(read: Callable[[], T], done: Callable[[T], bool], seconds: float = 90) -> T:
    return monitoring_poll(read, done, seconds, pause=1)


def health() -> dict[tuple[str, str], str]:
    return {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in api("targets")["activeTargets"]}


def firing() -> set[tuple[str, str]]:
    return {(a["labels"]["alertname"], a["labels"].get("instance") or a["labels"].get("pool", ""))
            for a in api("alerts")["alerts"] if a["state"] == "firing"}


def test_the_data_puts_prometheus_on_the_gateway_host_address() -> None:
    assert GROUP_VARS["mxmol_addresses"][UP_HOST] == ADDRESS
    assert {job for job, _ in DOWN} == {"vllm", "node"}
    assert {job for job, _ in UP} == {"gateway", "node", "prometheus"}


def test_package_installed(host: Any) -> None:
    assert host.package("prometheus").is_installed


def test_service_enabled_and_active(host: Any) -> None:
    assert host.service("prometheus").is_enabled
    assert host.run("systemctl is-active prometheus").stdout.strip() == "active"


def test_listens_only_on_its_address(host: Any) -> None:
    listening = host.check_output(f"ss -Hltn 'sport = :{PORT}'").splitlines()
    assert [line.split()[3] for line in listening] == [f"{ADDRESS}:{PORT}"]
    assert host.run(f"curl -sS --max-time 5 http://127.0.0.1:{PORT}/-/ready").rc != 0


def test_arguments_carry_the_retention(host: Any) -> None:
    args = host.file("/etc/default/prometheus").content_string
    assert f"--storage.tsdb.retention.time={MONITORING['retention']}" in args
    assert f"--web.listen-address={ADDRESS}:{PORT}" in args


def test_live_files_pass_promtool(host: Any) -> None:
    for command in (f"promtool check config {CONFIG}", f"promtool check rules {RULES}"):
        result = host.run(command)
        assert result.rc == 0, result.stdout + result.stderr


def test_configuration_has_the_stack_intervals(host: Any) -> None:
    config = yaml.safe_load(host.file(CONFIG).content_string)
    assert config["global"] == {"scrape_interval": MONITORING["scrape_interval"],
                                "scrape_timeout": MONITORING["scrape_timeout"],
                                "evaluation_interval": MONITORING["evaluation_interval"]}
    assert config["rule_files"] == [RULES]


def test_targets_are_the_stacks() -> None:
    active = api("targets")["activeTargets"]
    assert {(t["labels"]["job"], t["labels"]["instance"], t["discoveredLabels"]["__address__"])
            for t in active} == TARGETS


def test_targets_of_the_host_are_up_and_of_the_absent_host_down() -> None:
    expected = {**dict.fromkeys(UP, "up"), **dict.fromkeys(DOWN, "down")}
    assert poll(health, lambda seen: seen == expected) == expected


@pytest.mark.parametrize("unit", ["prometheus", "prometheus-node-exporter", "mtail"])
def test_no_package_start_ever_listened_on_every_address(host: Any, unit: str) -> None:
    """Installing the package does not start the service with Debian's defaults (every
    address, for the seconds before the role's configuration restarts it)."""
    journal = host.check_output(f"journalctl -u {unit} --no-pager -o cat")
    listened = re.findall(r"Listening on\S*\s+(?:address=)?(\S+)", journal)
    assert listened, journal[-2000:]
    assert {a.rsplit(":", 1)[0] for a in listened} == {ADDRESS}, journal[-2000:]


def test_the_database_holds_only_the_stacks_scrapes() -> None:
    """The package never ran Prometheus with Debian's own configuration (localhost:9090 and
    localhost:9100): a first start with it leaves `up` samples that a restart never marks stale."""
    seen = api("query", query="group by (job, instance) (last_over_time(up[1h]))")["result"]
    assert {(r["metric"]["job"], r["metric"]["instance"]) for r in seen} == set(BY_KEY)


def test_gpu_figures_reach_prometheus() -> None:
    query = f'nvidia_smi_memory_total_bytes{{job="node",host="{UP_HOST}"}}'
    result = poll(lambda: api("query", query=query)["result"], lambda r: len(r) == len(GPUS))
    assert sorted((r["metric"]["gpu"], float(r["value"][1])) for r in result) == [
        (str(g["index"]), g["memory_total_mib"] * 1024 * 1024) for g in GPUS]


def test_a_gateway_request_line_reaches_prometheus(host: Any) -> None:
    line = (b"<190>Nov 27 20:17:00 memoryx_gateway: pool=bge model=bge-m3 status=200"
            b" upstream_time=0.004 request_time=0.005\n")
    socket = f"{MONITORING['metrics_socket_dir']}/mtail.sock"
    script = ("import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM);"
              f" s.sendto({line!r}, {socket!r})")
    host.run_expect([0], f"runuser -u nobody -- python3 -c {shlex.quote(script)}")
    query = 'memoryx_gateway_requests_total{job="gateway",pool="bge",model="bge-m3",status="200"}'
    result = poll(lambda: api("query", query=query)["result"], lambda r: len(r) == 1)
    assert [(r["metric"]["host"], float(r["value"][1])) for r in result] == [(UP_HOST, 1.0)]


def test_rules_are_the_stacks() -> None:
    groups = api("rules")["groups"]
    expected = alert_rules(MONITORING)["groups"]
    assert [(g["name"], [r["name"] for r in g["rules"]]) for g in groups] == [
        (g["name"], [r["alert"] for r in g["rules"]]) for g in expected]
    assert all(r["health"] == "ok" for g in groups for r in g["rules"])


def test_alerts_fire_for_the_absent_host() -> None:
    expected = {("MemoryxInstanceDown", instance) for job, instance in DOWN} | {
        ("MemoryxPoolWithoutLiveMember", t["labels"]["pool"]) for t in MONITORING["jobs"]["vllm"]}
    assert poll(firing, lambda seen: seen == expected) == expected


def test_a_changed_rules_file_is_restored_by_a_reload(host: Any, scenario_playbook: ScenarioPlaybook) -> None:
    pid = host.check_output("systemctl show -p MainPID --value prometheus")
    host.run_expect([0], f"echo '# changed by hand' >> {RULES}")
    run = scenario_playbook("converge.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "# changed by hand" not in host.file(RULES).content_string
    assert host.check_output("systemctl show -p MainPID --value prometheus") == pid  # reloaded, not restarted


def test_a_config_promtool_refuses_fails_and_changes_nothing(
    host: Any, scenario_playbook: ScenarioPlaybook
) -> None:
    pid = host.check_output("systemctl show -p MainPID --value prometheus")
    before = host.file(CONFIG).sha256sum
    run = scenario_playbook("bad_config.yml")
    assert run.returncode != 0
    assert "promtool check config" in run.stdout or "failed to validate" in run.stdout, run.stdout[-3000:]
    assert host.file(CONFIG).sha256sum == before
    assert host.check_output("systemctl show -p MainPID --value prometheus") == pid
    assert {job for job, _, _ in TARGETS} == {t["labels"]["job"] for t in api("targets")["activeTargets"]}
