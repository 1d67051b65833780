"""Reloads (drain, undrain, config change) lose no client request; the role's reload script
returns only once the new configuration is in force, and fails when nginx refused it."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import harness as h
import pytest
from harness import Stack

from tests.portpick import free_port
from tests.traffic import Traffic

MINIMAL = """
pid {runtime}/nginx.pid;
worker_processes 2;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {runtime}/body;
    proxy_temp_path {runtime}/proxy;
    fastcgi_temp_path {runtime}/fastcgi;
    uwsgi_temp_path {runtime}/uwsgi;
    scgi_temp_path {runtime}/scgi;
    server {{
        listen 127.0.0.1:{port};
        {extra}
        location = /health {{ return 200 "OK\\n"; }}
    }}
}}
"""


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_reloads_under_traffic_lose_no_request(stack: Stack) -> None:
    """8 clients without retries, alternating streamed and plain one-token chats, across 40
    reloads. With client keep-alive on, some are lost (bench/gateway_bench.py part (c))."""
    gateway = stack.gateways["base"]
    url = f"http://{h.LOOPBACK}:{gateway.port}/v1"
    with Traffic(url, "unused", "llama3.1-8b", workers=8, max_tokens=1) as traffic:
        for _ in range(40):
            gateway.reload()
    assert traffic.tally.sent > 1000
    assert traffic.tally.failed == 0, traffic.tally.errors[:5]


def test_reload_script_returns_with_old_workers_retired(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "nginx.conf").write_text(MINIMAL.format(runtime=tmp_path, port=port, extra=""))
    gateway = h.start_gateway(tmp_path, port)
    try:
        old = gateway.workers()
        assert len(old) == 2
        h.reload_sh(tmp_path / "nginx.pid", 10, "-p", str(tmp_path), "-c", str(gateway.conf))
        # No worker from before the reload still accepts: each is gone or shutting down.
        assert not [pid for pid in old if _title(pid).startswith("nginx: worker process") and
                    "shutting down" not in _title(pid)]
        assert gateway.workers() - old, "no new workers"
        assert h.is_up(port, "/health")
    finally:
        gateway.stop()


def test_reload_script_fails_when_nginx_refuses_the_configuration(tmp_path: Path) -> None:
    """A configuration that passes `nginx -t` can still be refused by the master (here: a port
    already taken); `nginx -s reload` exits 0 regardless, the script must not."""
    port = free_port()
    (tmp_path / "nginx.conf").write_text(MINIMAL.format(runtime=tmp_path, port=port, extra=""))
    gateway = h.start_gateway(tmp_path, port)
    with socket.socket() as busy:
        busy.bind((h.LOOPBACK, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        (tmp_path / "nginx.conf").write_text(
            MINIMAL.format(runtime=tmp_path, port=port, extra=f"listen 127.0.0.1:{taken};"))
        try:
            old = gateway.workers()
            with pytest.raises(subprocess.CalledProcessError) as refused:
                h.reload_sh(tmp_path / "nginx.pid", 2, "-p", str(tmp_path), "-c", str(gateway.conf))
            assert "still accept after 2s" in refused.value.stderr
            assert "the master did not take the new configuration" in refused.value.stderr
            assert gateway.workers() == old  # the old configuration keeps serving
            assert h.is_up(port, "/health")
        finally:
            gateway.stop()
