"""Verify role gateway_mtail: mtail on the host's address counting the router's metrics lines."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import pytest
from conftest import ScenarioPlaybook
from monitoring_testkit import Sample, monitoring_view, poll, scenario_vars
from monitoring_testkit import scrape as monitoring_scrape

GROUP_VARS = scenario_vars(__file__)
PROGRAM = "/etc/mtail/memoryx_gateway.mtail"
# The router's metrics line (roles/nginx_unified, log_format memoryx_metrics) as a syslog datagram.
LINE = ("<190>Nov 27 20:17:00 memoryx_gateway: pool={pool} model={model} status={status}"
        " key=- prompt_tokens=- completion_tokens=- upstream_time={up} request_time={req}\n")


MONITORING = monitoring_view(GROUP_VARS)
ADDRESS = MONITORING["exporters"]["mx-embed-01"]["address"]
PORT = MONITORING["mtail_port"]
SOCKET_DIR = MONITORING["metrics_socket_dir"]
SOCKET = f"{SOCKET_DIR}/mtail.sock"
RELAY = "memoryx-mtail-relay"
RUNTIME_DIR = "/run/mtail"

Samples = list[Sample]


def scrape() -> Samples:
    """mtail's /metrics as this machine (another host on the LAN) reads it."""
    return monitoring_scrape(f"http://{ADDRESS}:{PORT}/metrics")


def total(samples: Samples, metric: str, /, **labels: str) -> float:
    """Sum of the samples of `metric` carrying these labels (0 when there is none)."""
    return sum(v for name, have, v in samples if name == metric and labels.items() <= have.items())


def wait_for(check: Callable[[Samples], bool], seconds: float = 30) -> Samples:
    return poll(scrape, check, seconds)


def send(host: Any, line: str, count: int = 1) -> None:
    """`count` datagrams to the router's socket as user nobody (the nginx workers are not
    mtail's user), as fast as the socket takes them."""
    script = ("import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM);"
              f" [s.sendto({line.encode()!r}, {SOCKET!r}) for _ in range({count})]")
    host.run_expect([0], f"runuser -u nobody -- python3 -c {shlex.quote(script)}")


def main_pid(host: Any, unit: str) -> str:
    return str(host.check_output(f"systemctl show -p MainPID --value {unit}"))


def wait_for_new_pid(host: Any, unit: str, old: str) -> None:
    """Until systemd has started `unit` again (Restart=) with another main process."""
    pid = poll(lambda: main_pid(host, unit), lambda now: now not in (old, "0"), 30)
    assert pid not in (old, "0"), f"{unit} was not started again"


def test_the_data_puts_mtail_on_the_host_address() -> None:
    assert GROUP_VARS["mxmol_addresses"]["mx-embed-01"] == ADDRESS
    assert MONITORING["exporters"]["mx-embed-01"]["mtail"]


def test_package_installed(host: Any) -> None:
    assert host.package("mtail").is_installed


def test_service_and_relay_enabled_and_active(host: Any) -> None:
    for unit in ("mtail", RELAY):
        assert host.service(unit).is_enabled, unit
        assert host.run(f"systemctl is-active {unit}").stdout.strip() == "active", unit


def test_mtail_reads_a_stream_socket_only_its_relay_reaches(host: Any) -> None:
    runtime = host.file(RUNTIME_DIR)
    assert (runtime.is_directory, runtime.user, runtime.mode) == (True, "mtail", 0o700)
    assert host.file(f"{RUNTIME_DIR}/relay.sock").is_socket
    assert host.run(f"runuser -u nobody -- test -e {RUNTIME_DIR}/relay.sock").rc != 0
    relay = host.check_output(f"ps -o user=,args= -p {main_pid(host, RELAY)}")
    assert relay.startswith("mtail ") and f"UNIX-RECV:{SOCKET}" in relay, relay


def test_listens_only_on_the_host_address(host: Any) -> None:
    listening = host.check_output(f"ss -Hltn 'sport = :{PORT}'").splitlines()
    assert [line.split()[3] for line in listening] == [f"{ADDRESS}:{PORT}"]
    assert host.run(f"curl -sS --max-time 5 http://127.0.0.1:{PORT}/metrics").rc != 0


def test_installed_program_compiles(host: Any) -> None:
    program = host.file(PROGRAM)
    assert (program.user, program.mode) == ("root", 0o644)
    # an ephemeral loopback port: the running mtail holds the configured one
    result = host.run(f"mtail --compile_only --logtostderr --address 127.0.0.1 --port 0 --progs {PROGRAM}")
    assert result.rc == 0, result.stderr


def test_socket_is_mtails_and_writable_by_all(host: Any) -> None:
    directory = host.file(SOCKET_DIR)
    assert (directory.is_directory, directory.user, directory.mode) == (True, "mtail", 0o755)
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert sock.mode == 0o777


def test_counts_a_request_line(host: Any) -> None:
    labels = {"pool": "llama", "model": "llama3.1-8b", "status": "200"}
    before = scrape()
    send(host, LINE.format(**labels, up="0.012", req="0.013"))
    after = wait_for(lambda s: total(s, "memoryx_gateway_requests_total", **labels)
                     > total(before, "memoryx_gateway_requests_total", **labels))
    assert total(after, "memoryx_gateway_requests_total", **labels) == \
        total(before, "memoryx_gateway_requests_total", **labels) + 1
    assert total(after, "memoryx_gateway_request_seconds_count", pool="llama", model="llama3.1-8b") == \
        total(before, "memoryx_gateway_request_seconds_count", pool="llama", model="llama3.1-8b") + 1
    assert total(after, "memoryx_gateway_requests_total", prog="memoryx_gateway.mtail", **labels) >= 1


def test_counts_a_retry_and_observes_the_last_try(host: Any) -> None:
    labels = {"pool": "bge", "model": "bge-m3"}
    before = scrape()
    send(host, LINE.format(**labels, status="502", up="0.001, 0.015", req="0.020"))
    after = wait_for(lambda s: total(s, "memoryx_gateway_upstream_retries_total", **labels)
                     > total(before, "memoryx_gateway_upstream_retries_total", **labels))
    assert total(after, "memoryx_gateway_upstream_retries_total", **labels) == \
        total(before, "memoryx_gateway_upstream_retries_total", **labels) + 1
    assert total(after, "memoryx_gateway_requests_total", status="502", **labels) == \
        total(before, "memoryx_gateway_requests_total", status="502", **labels) + 1
    observed = total(after, "memoryx_gateway_upstream_seconds_sum", **labels) - \
        total(before, "memoryx_gateway_upstream_seconds_sum", **labels)
    assert abs(observed - 0.015) < 1e-9


def test_a_changed_program_is_checked_and_applied_by_a_restart(
    host: Any, scenario_playbook: ScenarioPlaybook
) -> None:
    """The role's compile check must not collide with the running mtail's port, and a program
    whose declarations changed must not leave /metrics failing: after a reload (SIGHUP) Debian's
    mtail keeps the old program's series beside the new one's and answers 500 ("collected before
    with the same name and label values"), so a new program restarts mtail."""
    pid = host.check_output("systemctl show -p MainPID --value mtail")
    host.run_expect([0], f"sed -i 's/^counter memoryx_gateway_requests_total /counter old_requests_total /' {PROGRAM}")
    run = scenario_playbook("converge.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "old_requests_total" not in host.file(PROGRAM).content_string
    assert host.check_output("systemctl show -p MainPID --value mtail") != pid  # restarted
    labels = {"pool": "llama", "model": "llama3.1-8b", "status": "404"}
    send(host, LINE.format(**labels, up="-", req="0.001"))
    assert total(wait_for(lambda s: total(s, "memoryx_gateway_requests_total", **labels) >= 1),
                 "memoryx_gateway_requests_total", **labels) == 1


def test_a_burst_is_counted_to_the_line(host: Any) -> None:
    """Debian's mtail alone reads a datagram socket one datagram per poll: a burst lost nearly
    every line. Through the relay, each one is counted."""
    labels = {"pool": "qwen", "model": "qwen2.5-14b", "status": "200"}
    before = total(scrape(), "memoryx_gateway_requests_total", **labels)
    send(host, LINE.format(**labels, up="0.010", req="0.011"), count=5000)
    after = wait_for(lambda s: total(s, "memoryx_gateway_requests_total", **labels) >= before + 5000)
    assert total(after, "memoryx_gateway_requests_total", **labels) == before + 5000


@pytest.mark.parametrize("unit", [RELAY, "mtail"])
def test_counts_again_after_a_kill(host: Any, unit: str) -> None:
    """SIGKILL of either: systemd starts it again (the relay with mtail, being bound to it), the
    relay removing the socket a killed relay left, and lines are counted again."""
    pids = {name: main_pid(host, name) for name in ("mtail", RELAY)}
    host.run_expect([0], f"systemctl kill -s KILL {unit}")
    wait_for_new_pid(host, unit, pids[unit])
    wait_for_new_pid(host, RELAY, pids[RELAY])
    labels = {"pool": "llama", "model": "llama3.1-8b", "status": "429" if unit == RELAY else "503"}
    assert poll(lambda: host.file(SOCKET).is_socket, bool, 30), f"no socket {SOCKET}"
    before = total(scrape(), "memoryx_gateway_requests_total", **labels)
    send(host, LINE.format(**labels, up="-", req="0.001"))
    assert total(wait_for(lambda s: total(s, "memoryx_gateway_requests_total", **labels) > before),
                 "memoryx_gateway_requests_total", **labels) == before + 1
