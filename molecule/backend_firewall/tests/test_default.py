"""Verify role backend_firewall: rules in DOCKER-USER, the unit, and who gets through."""

from __future__ import annotations

import errno
import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

testinfra_hosts = ["mxmol2-fw"]  # the backend host; mxmol2-fw-gw is only a client

SCENARIO = Path(__file__).resolve().parent.parent
ROLE_VARS = yaml.safe_load((SCENARIO / "converge.yml").read_text())[0]["tasks"][0]["vars"]
PORTS = ROLE_VARS["backend_firewall_ports"]
ALLOWED = ROLE_VARS["backend_firewall_allowed_sources"]
MOLECULE = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
ADDRESS = {p["name"]: p["networks"][0]["ipv4_address"] for p in MOLECULE["platforms"]}
BACKEND = ADDRESS["mxmol2-fw"]
GATEWAY_PLATFORM = "mxmol2-fw-gw"
OPEN_PORT = 11499  # published by prepare.yml, not guarded
CHAIN = "MEMORYX-BACKENDS"
UNIT = "memoryx-backend-firewall.service"


def expected_chain() -> list[str]:
    rules = [f"-N {CHAIN}"]
    for port in PORTS:
        rules += [
            f"-A {CHAIN} -s {source}/32 -p tcp -m conntrack --ctorigdstport {port} --ctdir ORIGINAL -j RETURN"
            for source in ALLOWED
        ]
        rules.append(
            f"-A {CHAIN} -p tcp -m conntrack --ctorigdstport {port} --ctdir ORIGINAL -j REJECT --reject-with tcp-reset"
        )
    return [*rules, f"-A {CHAIN} -j RETURN"]


def from_this_machine(port: int) -> str:
    """GET /api/version from the test runner (a third host): 'ok', 'reset' or the error."""
    try:
        with urllib.request.urlopen(f"http://{BACKEND}:{port}/api/version", timeout=5) as reply:
            return "ok" if json.loads(reply.read())["version"] else "empty"
    except ConnectionResetError:
        return "reset"
    except OSError as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, OSError) and reason.errno in (errno.ECONNRESET, errno.ECONNREFUSED):
            return "reset"
        return repr(err)


def from_gateway(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "docker",
            "exec",
            GATEWAY_PLATFORM,
            "curl",
            "-fsS",
            "--max-time",
            "5",
            f"http://{BACKEND}:{port}/api/version",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def test_the_data_admits_the_gateway_platform() -> None:
    assert [ADDRESS[GATEWAY_PLATFORM]] == ALLOWED


def test_rule_script_installed(host: Any) -> None:
    script = host.file("/usr/local/sbin/memoryx-backend-firewall")
    assert script.user == "root"
    assert script.mode == 0o755


def test_unit_enabled_and_active(host: Any) -> None:
    service = host.service(UNIT)
    assert service.is_enabled
    assert host.run(f"systemctl is-active {UNIT}").stdout.strip() == "active"


def test_docker_user_jumps_first_to_the_chain(host: Any) -> None:
    rules = host.check_output("iptables -w -S DOCKER-USER").splitlines()
    assert rules[1] == f"-A DOCKER-USER -j {CHAIN}"
    assert rules.count(f"-A DOCKER-USER -j {CHAIN}") == 1


def test_chain_holds_exactly_the_rules_of_the_data(host: Any) -> None:
    assert host.check_output(f"iptables -w -S {CHAIN}").splitlines() == expected_chain()


def test_gateway_host_reaches_the_guarded_port() -> None:
    result = from_gateway(PORTS[0])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["version"]


def test_other_host_is_refused_on_the_guarded_port() -> None:
    assert from_this_machine(PORTS[0]) == "reset"


def test_other_host_reaches_an_unguarded_port() -> None:
    assert from_this_machine(OPEN_PORT) == "ok"


def test_rules_come_back_after_a_docker_restart(host: Any) -> None:
    """Last: restarts the instance's Docker (the unit is PartOf docker.service)."""
    host.run_expect([0], "systemctl restart docker")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rules = host.run(f"iptables -w -S {CHAIN}").stdout.splitlines()
        jump = host.run("iptables -w -S DOCKER-USER").stdout.splitlines()
        if (
            rules == expected_chain()
            and f"-A DOCKER-USER -j {CHAIN}" in jump
            and from_gateway(PORTS[0]).returncode == 0
        ):
            break
        time.sleep(1)
    assert host.check_output(f"iptables -w -S {CHAIN}").splitlines() == expected_chain()
    assert host.check_output("iptables -w -S DOCKER-USER").splitlines().count(f"-A DOCKER-USER -j {CHAIN}") == 1
    assert from_gateway(PORTS[0]).returncode == 0
    assert from_this_machine(PORTS[0]) == "reset"
