"""Reloads (drain, undrain, config change) lose no client request; the role's reload script
returns only once the new configuration is in force, and fails when nginx refused it."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from pathlib import Path

import harness as h
import pytest
from harness import Stack

from tests.portpick import free_port
from tests.traffic import Traffic

MINIMAL = """
    server {{
        listen 127.0.0.1:{port};
        {extra}
        location = /health {{ return 200 "OK\\n"; }}
    }}
"""


def minimal(runtime: Path, port: int, extra: str = "") -> str:
    """An nginx that answers /health on `port` (`extra`: more in its server block)."""
    return h.standalone_conf(runtime, MINIMAL.format(port=port, extra=extra))


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
    (tmp_path / "nginx.conf").write_text(minimal(tmp_path, port))
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
    (tmp_path / "nginx.conf").write_text(minimal(tmp_path, port))
    gateway = h.start_gateway(tmp_path, port)
    with socket.socket() as busy:
        busy.bind((h.LOOPBACK, 0))
        busy.listen()
        taken = busy.getsockname()[1]
        (tmp_path / "nginx.conf").write_text(
            minimal(tmp_path, port, f"listen 127.0.0.1:{taken};"))
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


def test_client_side_reloads_under_traffic_lose_no_request(stack: Stack) -> None:
    """The client side's own reloads, quiesced as its handler does them (files/reload.sh -q):
    8 keep-alive clients without retries across 40 reloads lose nothing. A bare reload closes
    idle client connections under the clients (bench/gateway_bench.py part (c) counts it)."""
    gateway = stack.gateways["base"]
    flag = Path(gateway.quiesce_options()[1])
    url = f"http://{h.LOOPBACK}:{gateway.port}/v1"
    with Traffic(url, "unused", "llama3.1-8b", workers=8, max_tokens=1) as traffic:
        for _ in range(40):
            done = gateway.reload_front()
            assert "without quiescing" not in done.stderr, done.stderr
    assert traffic.tally.sent > 1000
    assert traffic.tally.failed == 0, traffic.tally.errors[:5]
    assert not flag.exists()


def _raw(port: int, request: bytes) -> tuple[bytes, bytes]:
    """Send `request` on a new connection; (the answer's head, what followed until the server
    closed the connection)."""
    data = b""
    with socket.create_connection((h.LOOPBACK, port), timeout=10) as conn:
        conn.sendall(request)
        with contextlib.suppress(ConnectionResetError):  # a body announced, never sent
            while chunk := conn.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_while_quiesced_each_answer_closes_its_connection(stack: Stack) -> None:
    """With the closing flag, an HTTP/1.1 request (keep-alive by default) is answered with
    "Connection: close" and its connection closed (_raw returns only then); a query string is
    still refused by the router and logged by neither nginx; a body over the client side's
    limit on /api/ gets Ollama's error shape, as without the flag."""
    gateway = stack.gateways["limits"]
    flag = Path(gateway.quiesce_options()[1])
    key = "sk-quiesce-secret-0123456789"
    flag.touch()
    try:
        head, body = _raw(gateway.port, b"GET /v1/models HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close" in head, head
        assert b"llama3.1-8b" in body
        head, body = _raw(gateway.port, f"GET /v1/models?api_key={key} HTTP/1.1\r\n"
                                        "Host: gw\r\n\r\n".encode())
        assert head.startswith(b"HTTP/1.1 400") and b"query_not_allowed" in body, head + body
        head, body = _raw(gateway.port, b"POST /api/embed HTTP/1.1\r\nHost: gw\r\n"
                                        b"Content-Length: 9000000\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), head
        assert isinstance(json.loads(body)["error"], str), body  # Ollama's shape
    finally:
        flag.unlink()
    head, _ = _raw(gateway.port, b"GET /v1/models HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                 b"GET /v1/models HTTP/1.0\r\n\r\n")
    assert b"Connection: keep-alive" in head  # the flag gone, keep-alive is back
    logs = (gateway.runtime / "error.log").read_text() + (gateway.runtime / "access.log").read_text()
    assert key not in logs


def test_a_quiesced_reload_closes_an_idle_connection_at_its_bound(stack: Stack) -> None:
    """A client that keeps an idle connection open through the whole wait: the reload goes on
    after the bound (here 1 s instead of the keep-alive timeout), closes that connection, and
    removes the flag."""
    gateway = stack.gateways["limits"]
    options = gateway.quiesce_options(wait=1)
    with socket.create_connection((h.LOOPBACK, gateway.port), timeout=10) as idle:
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        done = gateway.front.reload(options)
        assert "without quiescing" not in done.stderr, done.stderr
        assert idle.recv(4096) == b""  # closed by the old worker as it shut down
    assert not Path(options[1]).exists()


def test_a_reload_without_the_status_server_is_not_quiesced(tmp_path: Path) -> None:
    """An nginx whose running configuration predates the status server (an upgrade) knows no
    closing flag either: the script says so and reloads at once, leaving no flag behind."""
    port = free_port()
    (tmp_path / "nginx.conf").write_text(minimal(tmp_path, port))
    gateway = h.start_gateway(tmp_path, port)
    flag = tmp_path / "closing"
    try:
        done = gateway.front.reload(("-q", str(flag), h.LOOPBACK, str(free_port()), "30"))
        assert "reloading without quiescing" in done.stderr
        assert not flag.exists()
        assert h.is_up(port, "/health")
    finally:
        gateway.stop()


@pytest.mark.parametrize("keepalive", ["120s", "2m", "1m30s", "75 s"])
def test_a_keepalive_the_quiesced_reload_cannot_outwait_is_refused(tmp_path: Path,
                                                                   keepalive: str) -> None:
    """Above nginx_unified_quiesce_timeout (75 s), or in a form the role cannot read, the
    client keep-alive timeout is refused before anything is rendered, naming the variable."""
    variant = h.Variant("refused", free_port(), tmp_path / "staging", tmp_path / "runtime",
                        {"llama": h.pool("vllm", "llama3.1-8b", [])},
                        extra={"nginx_unified_client_keepalive_timeout": keepalive})
    with pytest.raises(RuntimeError) as refused:
        h.render([variant], tmp_path)
    assert f"nginx_unified_client_keepalive_timeout is {keepalive}:" in str(refused.value)
    assert not (tmp_path / "staging" / "nginx.conf").exists()
