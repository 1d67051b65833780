"""Issue 12, logs that cannot fill a disk, in the lab: every managed container's Docker log is
rotated as the data asks (`docker inspect`), and a burst of requests writing more access log than
the gateway router's bound leaves its log files within it."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from typing import Any

import httpx
import pytest
import yaml
from labkit import EMBED_HOST, GATEWAY_URL, LAB_CA, LLM_HOST, ROOT, PlaybookRun, on_host

from memoryx_deploy.operate.container_logs import LogFiles, expected_logs, log_files
from memoryx_deploy.schema.stack import Stack

LAB_HOSTS = {"mx-llm-01": LLM_HOST, "mx-embed-01": EMBED_HOST}  # inventory host -> lab container
GATEWAY_DEFAULTS = ROOT / "roles/nginx_unified/defaults/main.yml"
PREFLIGHT_TASK = "Build and validate the stack model, once"


@pytest.fixture(scope="module")
def stack(deploy_runs: dict[str, PlaybookRun]) -> Stack:
    """The stack the lab's deploy computed (the preflight's fact in site.yml's events)."""
    for result in deploy_runs["first"].results(PREFLIGHT_TASK):
        computed: Stack = result.res["ansible_facts"]["memoryx_computed_stack"]
        return computed
    raise AssertionError(f"site.yml ran no task {PREFLIGHT_TASK!r}")


@pytest.fixture(scope="module")
def gateway_defaults() -> dict[str, Any]:
    """Role nginx_unified's defaults: the gateway containers' names (the lab keeps them)."""
    defaults: dict[str, Any] = yaml.safe_load(GATEWAY_DEFAULTS.read_text())
    return defaults


@pytest.fixture(scope="module")
def expected(stack: Stack, gateway_defaults: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return expected_logs(stack, gateway_defaults["nginx_unified_container_name"],
                         gateway_defaults["nginx_unified_router_container_name"])


def marker_lines(container: str, marker: str) -> int:
    """How many access-log lines of the container's log (docker logs, rotated files included)
    name the path `marker` (not the error log's lines, which may quote the request too)."""
    found = on_host(EMBED_HOST, f"docker logs {container} 2>/dev/null | grep -c '\"uri\":\"{marker}\"'",
                    check=False)
    return int(found.stdout.strip() or 0)


def inspect(host: str, container: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(on_host(host, f"docker inspect {container}").stdout)[0]
    return result


def test_every_managed_container_rotates_its_log_as_the_data_asks(
        expected: dict[str, tuple[str, Any]]) -> None:
    assert len(expected) == 9  # 5 vLLM, 2 Ollama, the gateway's two
    found = {}
    for name, (host, _config) in expected.items():
        log_config = inspect(LAB_HOSTS[host], name)["HostConfig"]["LogConfig"]
        found[name] = {"driver": log_config["Type"], "options": log_config["Config"]}
    assert found == {name: config for name, (_host, config) in expected.items()}


def files_of(logs: LogFiles) -> dict[str, tuple[int, int]]:
    """path -> (bytes, longest line) of the container's log files on the gateway host."""
    out = on_host(EMBED_HOST, f"for f in {logs.glob}; do [ -e \"$f\" ] && "
                              "echo \"$f $(stat -c %s \"$f\") $(wc -L < \"$f\")\"; done; true").stdout
    return {path: (int(size), int(longest))
            for path, size, longest in (line.split() for line in out.splitlines())}


def live_size(logs: LogFiles, live: str) -> int:
    return files_of(logs).get(live, (0, 0))[0]


def test_a_burst_over_the_bound_leaves_the_access_log_within_it(
        stack: Stack, gateway_defaults: dict[str, Any], api_key: str) -> None:
    router = gateway_defaults["nginx_unified_router_container_name"]
    details = inspect(LAB_HOSTS[stack["gateway"]["host"]], router)
    logs = log_files(details)
    assert logs is not None and logs.max_size is not None and logs.max_file is not None
    assert logs.bound is not None
    live = details["LogPath"] if logs.driver == "json-file" else f"{logs.directory}/container.log"
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=GATEWAY_URL, verify=ssl.create_default_context(cafile=LAB_CA),
                      headers=headers, timeout=30) as client:

        def burst(count: int) -> None:
            for _ in range(count):
                assert client.get("/v1/models").status_code == 200

        # Bytes one access-log line takes in the log file: growth of the live file over a
        # sample, retried when a rotation fell inside it.
        sample, per_line, deadline = 20, 0.0, time.monotonic() + 60
        while per_line <= 0:
            assert time.monotonic() < deadline, "the live log never grew without a rotation"
            before = live_size(logs, live)
            burst(sample)
            grown = live_size(logs, live) - before
            per_line = grown / sample if grown > 0 else 0.0
        # The oldest line must be gone after the burst: proof that more than the bound was written.
        marker = f"/lab-logs-{uuid.uuid4().hex}"
        assert client.get(marker).status_code == 404
        # The daemon copies the container's output into the log file on its own time: wait
        # until the line is there (a bounded wait, ended by the line itself).
        deadline = time.monotonic() + 30
        while (logged := marker_lines(router, marker)) != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert logged == 1
        count = int(1.5 * logs.bound / per_line) + 1
        burst(count)

    files = files_of(logs)
    assert marker_lines(router, marker) == 0, f"{count} requests of {per_line:.0f} B did not pass the bound"
    assert live in files
    assert len(files) <= logs.max_file, files
    # Docker rotates once a file has reached max-size: it may pass it by the line that did
    # (json-file: the longest line; local: a record, about a line).
    line = max(max(longest for _size, longest in files.values()) + 1, 2 * per_line)
    assert {path: size for path, (size, _l) in files.items() if size > logs.max_size + line} == {}
