#!/usr/bin/env python3
"""Gateway benchmark (prints figures; not a test). Loopback only, bounded, stops by itself.

(a) latency the gateway adds: p50/p99 of N sequential requests to a zero-latency vLLM
    simulator over one kept-alive connection, direct vs through the gateway (client side +
    router) in plain HTTP, and in TLS (1.3, verifying the site CA): the TLS cost separately,
    and the router's hop alone (its loopback port) against the client side's, and within it
    what routing on the body's model costs over a route by path (/llama/); and the floor: one
    and two bare nginx keep-alive proxies in series (the gateway is two nginx: see README);
    and with API keys (README, "Key policies"): a key without a policy and a key with one
    (models, concurrency, rate), through the router and the whole gateway: the policy check's
    cost separately;
(b) scaling: simulators holding a fixed TTFT and --max-num-seqs, 1, 2 and 4 Llama members
    behind the gateway at a fixed client concurrency, throughput as a share of linear scaling;
(c) reloads under traffic: clients without retries (openai, keep-alive) send one-token chats
    (streamed and not) while the gateway reloads: the router (any configuration change), the
    client side itself (its own file changed) quiesced as its handler does it and, to show what
    the quiescing saves, bare; the router with keep-alive off; and the client side again for
    clients on HTTP/2 over TLS (one multiplexed connection), quiesced and bare;
(d) worst-case memory: N clients (16) send the largest body a chat accepts at once, to a
    simulator that holds each request for --hold-ms; peak resident memory of nginx (master +
    workers) over its idle figure, for a body of one long string and one of many small JSON
    objects (the shape that cost ~14x its size when njs parsed it whole). Bodies beyond the
    large-body slots get 429 at once; the figure is what the gateway holds for the rest;
(e) new TLS connections: full handshakes (TLS 1.3, no session resumed) on the client side, which
    reads the certificate file at each one (so a renewal needs no reload), against a twin of
    the same configuration that loads it once at start.
Run: .venv/bin/python bench/gateway_bench.py [--requests 400] [--ttft-ms 100] ...
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import io
import json
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gateway"))

import harness as h
import httpx2

from bench.figures import write_section
from tests.portpick import free_port
from tests.traffic import Traffic

ROUTES: list[dict[str, object]] = [
    {"path": "/v1/chat/completions", "pool": None, "route_by_model": True},
    {"path": "/llama/", "pool": "llama", "strip_prefix": True}]
CHAT = "/v1/chat/completions"
FIXED = "/llama/v1/chat/completions"  # the same pool by its path: no body read to route
MODELS = {"llama3.1-8b": "llama"}
BODY = json.dumps(h.chat("llama3.1-8b", "bench", max_tokens=1)).encode()
DEFAULTS = h.DEFAULTS
# Keys of the variant `keyed`: one without a policy, one with every part of one (limits far
# above the benchmark's own load, so that they are checked and never reached).
PLAIN_KEY = "sk-bench-plain-" + "0" * 32
POLICY_KEY = "sk-bench-policy-" + "1" * 32
KEYS: list[dict[str, object]] = [
    {"name": "plain", "key": PLAIN_KEY},
    {"name": "policy", "key": POLICY_KEY, "models": ["llama3.1-8b"], "concurrency": 64,
     "rate": "100000r/s"},
]


def parse_size(size: str) -> int:
    """An nginx size (16m, 512k, 1024) in bytes."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(size[:-1]) * units[size[-1].lower()] if size[-1].isalpha() else int(size)


def timed_requests(port: int, count: int, tls: ssl.SSLContext | None = None,
                   path: str = CHAT, key: str = "") -> list[float]:
    """Sequential chat requests to `path` over one kept-alive connection (TLS with `tls`, the
    API key `key` if given); seconds each."""
    conn = (http.client.HTTPSConnection(h.LOOPBACK, port, timeout=30, context=tls) if tls
            else http.client.HTTPConnection(h.LOOPBACK, port, timeout=30))
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            headers = {"Content-Type": "application/json"}
            conn.request("POST", path, BODY, headers | ({"Authorization": f"Bearer {key}"} if key else {}))
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")
            times.append(time.perf_counter() - start)
    finally:
        conn.close()
    return times


def handshake_times(port: int, count: int, tls: ssl.SSLContext) -> list[float]:
    """`count` new TLS connections, each a full handshake (no session resumed); seconds each."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        with socket.create_connection((h.LOOPBACK, port), timeout=10) as raw, \
                tls.wrap_socket(raw, server_hostname=h.LOOPBACK):
            times.append(time.perf_counter() - start)
    return times


def static_certificate_twin(var: h.Variant, work: Path,
                            trust: ssl.SSLContext) -> tuple[h.Nginx, int]:
    """The variant's client side with its certificate loaded at start (a literal path instead
    of handshake.js's read at each handshake), on its own port in front of the same router;
    (nginx, port)."""
    runtime = work / f"{var.name}-static"
    runtime.mkdir()
    port = free_port()
    plain = int(var.extra["nginx_unified_http_port"])
    conf = (var.runtime / "nginx.conf").read_text().replace(str(var.runtime), str(runtime))
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        conf = conf.replace(f"{directive} data:$mx_gateway_pem;", f"{directive} {runtime / 'gateway.pem'};")
    conf = conf.replace(f":{var.port} ", f":{port} ").replace(f":{plain};", f":{free_port()};")
    conf = conf.replace(f":{var.status_port};", f":{free_port()};")
    (runtime / "nginx.conf").write_text(conf)
    assert str(runtime / "gateway.pem") in conf, "the client side no longer names its certificate so"
    for name in ("gateway.pem", "handshake.js"):  # handshake.js: still imported, unused
        (runtime / name).write_bytes((var.runtime / name).read_bytes())
    def up() -> bool:
        try:
            return bool(handshake_times(port, 1, trust))
        except OSError:
            return False

    twin = h.start_nginx(runtime, "nginx.conf", "nginx.pid", up, f"static-certificate twin on port {port}")
    return twin, port


BARE_PROXY = """
    tcp_nodelay on;
    upstream next {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen {address}:{port};
        location / {{
            proxy_pass http://next;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
"""


def bare_proxies(work: Path, target: int, hops: int) -> tuple[list[h.Nginx], int]:
    """`hops` nginx in series in front of `target`, each a bare keep-alive proxy (no routing,
    limits, keys or logs): what any design of that many processes costs at least; (their
    nginx, the first one's port)."""
    started: list[h.Nginx] = []
    port = target
    for hop in range(hops):
        runtime = work / f"bare-{hops}-{hop}"
        runtime.mkdir()
        upstream, port = f"{h.LOOPBACK}:{port}", free_port()
        proxy = BARE_PROXY.format(upstream=upstream, address=h.LOOPBACK, port=port)
        (runtime / "nginx.conf").write_text(h.standalone_conf(runtime, proxy))
        started.append(h.start_nginx(runtime, "nginx.conf", "nginx.pid",
                                     functools.partial(h.is_up, port, "/health"),
                                     f"bare proxy {port}"))
    return started, port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def throughput(port: int, concurrency: int, total: int) -> float:
    """Requests per second for `total` requests spread over `concurrency` clients."""
    per_client = total // concurrency
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for done in pool.map(lambda _: timed_requests(port, per_client), range(concurrency)):
            assert len(done) == per_client
    return per_client * concurrency / (time.perf_counter() - start)


def variant(work: Path, name: str, members: list[h.Process],
            keepalive: str = DEFAULTS["nginx_unified_client_keepalive_timeout"],
            tls: bool = False, keys: list[dict[str, object]] | None = None) -> h.Variant:
    pools = {"llama": h.pool("vllm", "llama3.1-8b", members)}
    extra: dict[str, object] = {"nginx_unified_client_keepalive_timeout": keepalive}
    if tls:  # TLS on the variant's port, plain HTTP on another (the same client side)
        extra |= {"nginx_unified_tls": True, "nginx_unified_http_port": free_port(),
                  "nginx_unified_tls_site_ca": {"dir": str(work / "pki"),
                                                "names": ["localhost", h.LOOPBACK]}}
    return h.Variant(name, free_port(), work / name, work / name, pools, list(keys or []),
                     routes=ROUTES, models=dict(MODELS), extra=extra)


def lost_in_reloads(var: h.Variant, reloads: int, clients: int, front: str = "",
                    http2: ssl.SSLContext | None = None) -> tuple[int, int, float]:
    """(sent, lost, median seconds a reload took) for `clients` no-retry clients while the
    gateway reloads `reloads` times: the router, or with `front` the client side ("quiesced"
    as its handler does it, "bare" without). With `http2` (the CA to trust), the clients share
    one openai client over HTTP/2 and TLS, as httpx2 multiplexes them on one connection."""
    health = int(var.extra["nginx_unified_http_port"]) if http2 else None
    gw = h.start_gateway(var.runtime, var.port, health_port=health)
    took: list[float] = []
    transport = httpx2.Client(http2=True, verify=http2, timeout=120) if http2 else None
    try:
        url = f"{'https' if http2 else 'http'}://{h.LOOPBACK}:{var.port}/v1"
        with Traffic(url, "unused", "llama3.1-8b", workers=clients, max_tokens=1,
                     http_client=transport) as traffic:
            for _ in range(reloads):
                start = time.perf_counter()
                if front:
                    gw.reload_front(quiesce=front == "quiesced")
                else:
                    gw.reload()
                took.append(time.perf_counter() - start)
    finally:
        gw.stop()
        if transport is not None:
            transport.close()
    return traffic.tally.sent, traffic.tally.failed, statistics.median(took)


def rss_kib(gw: h.Gateway) -> int:
    """Resident memory of the nginx master and its workers, KiB."""
    total = 0
    for pid in gw.nginx_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines()
                      if line.startswith("VmRSS:"))
    return total


def largest_body(size: int, small_objects: bool) -> bytes:
    """A chat body of exactly `size` bytes: one long message, or many tiny ones."""
    head = b'{"model": "llama3.1-8b", "max_tokens": 1, "messages": ['
    tail = b"]}"
    if small_objects:
        item = b'{"role":"user","content":"x"},'
        count = (size - len(head) - len(tail)) // len(item)
        body = head + item * count
        body = body[:-1] + b" " * (size - len(body) - len(tail) + 1) + tail
    else:
        shell = head + b'{"role": "user", "content": ""}' + tail
        body = shell[:-4] + b"x" * (size - len(shell)) + shell[-4:]
    assert len(body) == size
    return body


def memory_under_large_bodies(var: h.Variant, clients: int, size: int,
                              small_objects: bool) -> tuple[int, int, int, int]:
    """(idle KiB, peak KiB, accepted, refused) while `clients` send `size`-byte chats at once."""
    gw = h.start_gateway(var.runtime, var.port)
    body = largest_body(size, small_objects)
    try:
        h.request(gw.port, "POST", "/v1/chat/completions", h.chat("llama3.1-8b"))  # warm
        idle = rss_kib(gw)
        peak = idle
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kib(gw))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            statuses = list(pool.map(
                lambda _: h.request(gw.port, "POST", "/v1/chat/completions", body,
                                    timeout=120).status, range(clients)))
        done.set()
        sampler.join()
    finally:
        gw.stop()
    return idle, peak, statuses.count(200), statuses.count(429)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="latency samples per path")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="scaling: sim latency")
    parser.add_argument("--max-num-seqs", type=int, default=4, help="scaling: sim concurrency cap")
    parser.add_argument("--concurrency", type=int, default=16, help="scaling: client threads")
    parser.add_argument("--scaling-requests", type=int, default=160, help="per configuration")
    parser.add_argument("--reloads", type=int, default=40, help="reloads: how many")
    parser.add_argument("--reload-clients", type=int, default=8, help="reloads: client threads")
    parser.add_argument("--http2-reloads", type=int, default=10,
                        help="reloads: how many for the HTTP/2 clients")
    parser.add_argument("--memory-clients", type=int, default=16, help="memory: clients")
    parser.add_argument("--hold-ms", type=float, default=3000.0, help="memory: sim TTFT")
    parser.add_argument("--no-figures", action="store_true", help="do not write docs/figures.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
        work = Path(tmp)
        sims: list[h.Process] = []
        gateways: list[h.Gateway] = []
        try:
            zero = h.start_vllm("zero", h.VllmOptions("llama3.1-8b"), work)
            fixed_opts = h.VllmOptions("llama3.1-8b", ttft_ms=args.ttft_ms,
                                       max_num_seqs=args.max_num_seqs)
            fixed = [h.start_vllm(f"fixed-{i}", fixed_opts, work) for i in range(4)]
            hold = h.start_vllm("hold", h.VllmOptions("llama3.1-8b", ttft_ms=args.hold_ms,
                                                      max_num_seqs=64), work)
            sims = [zero, *fixed, hold]
            for sim in sims:
                h.await_vllm(sim)
            latency = variant(work, "latency", [zero], tls=True)
            variants = [latency]
            variants += [variant(work, f"scale{n}", fixed[:n]) for n in (1, 2, 4)]
            keepalive = variant(work, "keepalive-on", [zero])
            reload_runs = {"router, keep-alive 75s": (keepalive, ""),
                           "client side, quiesced": (keepalive, "quiesced"),
                           "client side, bare": (keepalive, "bare"),
                           "router, keep-alive 0": (variant(work, "keepalive-off", [zero], "0"),
                                                    "")}
            variants += [keepalive, reload_runs["router, keep-alive 0"][0]]
            memory = variant(work, "memory", [hold])
            variants.append(memory)
            keyed = variant(work, "keyed", [zero], keys=KEYS)
            variants.append(keyed)
            h.render(variants, work)

            plain_port = int(latency.extra["nginx_unified_http_port"])
            gw = h.start_gateway(latency.runtime, latency.port, health_port=plain_port)
            gateways.append(gw)
            trust = ssl.create_default_context(cafile=str(work / "pki" / "ca.crt"))
            trust.check_hostname = False  # connecting to 127.0.0.1, a name of the certificate
            timed_requests(zero.port, 20)
            timed_requests(latency.router_port, 20)
            timed_requests(plain_port, 20)  # warm up every path
            timed_requests(gw.port, 20, trust)
            direct = timed_requests(zero.port, args.requests)
            router = timed_requests(latency.router_port, args.requests)  # the router's hop alone
            timed_requests(latency.router_port, 20, path=FIXED)
            router_fixed = timed_requests(latency.router_port, args.requests, path=FIXED)
            via = timed_requests(plain_port, args.requests)
            via_tls = timed_requests(gw.port, args.requests, trust)
            keyed_gw = h.start_gateway(keyed.runtime, keyed.port)
            gateways.append(keyed_gw)
            keyed_times: dict[str, list[float]] = {}
            for label, port, key in (("router, key", keyed.router_port, PLAIN_KEY),
                                     ("router, policy", keyed.router_port, POLICY_KEY),
                                     ("gateway, policy", keyed.port, POLICY_KEY)):
                timed_requests(port, 20, key=key)  # warm up
                keyed_times[label] = timed_requests(port, args.requests, key=key)
            keyed_gw.stop()
            bare: dict[int, list[float]] = {}
            for hops in (1, 2):
                proxies, port = bare_proxies(work, zero.port, hops)
                try:
                    timed_requests(port, 20)
                    bare[hops] = timed_requests(port, args.requests)
                finally:
                    for proxy in proxies:
                        proxy.stop()
            twin, twin_port = static_certificate_twin(latency, work, trust)
            try:
                handshake_times(twin_port, 20, trust)
                handshake_times(gw.port, 20, trust)  # warm up
                loaded = handshake_times(twin_port, args.requests, trust)
                per_handshake = handshake_times(gw.port, args.requests, trust)
            finally:
                twin.stop()
            gw.stop()
            print(f"(a) added latency, {args.requests} sequential requests over one kept-alive "
                  "connection, zero-latency simulator")
            print(f"    {'path':<16}{'p50 ms':>10}{'p99 ms':>10}")
            for label, times in (("direct", direct), ("router alone", router),
                                 ("router, /llama/", router_fixed),
                                 ("gateway HTTP", via), ("gateway TLS 1.3", via_tls),
                                 ("bare nginx x1", bare[1]), ("bare nginx x2", bare[2]),
                                 *keyed_times.items()):
                print(f"    {label:<16}{1000 * statistics.median(times):>10.2f}"
                      f"{1000 * percentile(times, 0.99):>10.2f}")
            for label, slow, fast in (("added, HTTP", via, direct), ("  router hop", router, direct),
                                      ("   body routing", router, router_fixed),
                                      ("  client side", via, router),
                                      ("added, TLS", via_tls, direct), ("TLS cost", via_tls, via),
                                      ("floor, 1 hop", bare[1], direct),
                                      ("floor, 2 hops", bare[2], direct),
                                      ("added, policy", keyed_times["gateway, policy"], direct),
                                      ("  key check", keyed_times["router, key"], router),
                                      ("  policy check", keyed_times["router, policy"],
                                       keyed_times["router, key"])):
                print(f"    {label:<16}"
                      f"{1000 * (statistics.median(slow) - statistics.median(fast)):>10.2f}"
                      f"{1000 * (percentile(slow, 0.99) - percentile(fast, 0.99)):>10.2f}")

            print(f"\n(b) scaling: TTFT {args.ttft_ms:.0f} ms, max_tokens 1, "
                  f"--max-num-seqs {args.max_num_seqs}, {args.concurrency} clients, "
                  f"{args.scaling_requests} requests")
            print(f"    {'backends':<10}{'req/s':>10}{'ideal':>10}{'ratio':>10}")
            base = 0.0
            for n, var in zip((1, 2, 4), variants[1:4], strict=True):
                gw = h.start_gateway(var.runtime, var.port)
                gateways.append(gw)
                throughput(gw.port, args.concurrency, args.concurrency * 2)  # warm up
                rate = throughput(gw.port, args.concurrency, args.scaling_requests)
                gw.stop()
                base = base or rate
                print(f"    {n:<10}{rate:>10.1f}{n * base:>10.1f}{rate / (n * base):>10.2f}")

            print(f"\n(c) reloads under traffic: {args.reloads} reloads, {args.reload_clients} "
                  "clients without retries, one-token chats, streamed and not")
            print(f"    {'nginx reloaded':<24}{'sent':>8}{'lost':>8}{'reload s':>10}")
            for label, (var, front) in reload_runs.items():
                sent, lost, took = lost_in_reloads(var, args.reloads, args.reload_clients, front)
                print(f"    {label:<24}{sent:>8}{lost:>8}{took:>10.2f}")
            print(f"    HTTP/2 over TLS (the openai client's httpx2 {httpx2.__version__}), "
                  f"{args.http2_reloads} reloads:")
            for front in ("quiesced", "bare"):
                sent, lost, took = lost_in_reloads(latency, args.http2_reloads,
                                                   args.reload_clients, front, http2=trust)
                print(f"    {'client side, ' + front:<24}{sent:>8}{lost:>8}{took:>10.2f}")

            size = parse_size(DEFAULTS["nginx_unified_client_max_body_size"])
            slots = DEFAULTS["nginx_unified_large_body_slots"]
            print(f"\n(d) worst-case memory: {args.memory_clients} clients at once, each a "
                  f"{size / 2**20:.0f} MiB chat body (the default limit), {slots} large-body "
                  f"slots, simulator holds {args.hold_ms:.0f} ms")
            print(f"    {'body':<16}{'accepted':>9}{'429':>6}{'idle MiB':>10}{'peak MiB':>10}"
                  f"{'added MiB':>10}{'per body':>10}")
            for label, small in (("one string", False), ("small objects", True)):
                idle, peak, accepted, refused = memory_under_large_bodies(
                    memory, args.memory_clients, size, small)
                added = (peak - idle) / 1024
                print(f"    {label:<16}{accepted:>9}{refused:>6}{idle / 1024:>10.1f}"
                      f"{peak / 1024:>10.1f}{added:>10.1f}"
                      f"{added / max(accepted, 1) / (size / 2**20):>9.2f}x")
            print(f"\n(e) new TLS connections: {args.requests} full TLS 1.3 handshakes each")
            print(f"    {'certificate':<24}{'p50 ms':>10}{'p99 ms':>10}")
            for label, times in (("read at each handshake", per_handshake),
                                 ("loaded at start", loaded)):
                print(f"    {label:<24}{1000 * statistics.median(times):>10.2f}"
                      f"{1000 * percentile(times, 0.99):>10.2f}")
            print(f"    {'cost per new connection':<24}"
                  f"{1000 * (statistics.median(per_handshake) - statistics.median(loaded)):>10.2f}")
        finally:
            for gateway in gateways:
                gateway.stop()
            for sim in sims:
                sim.stop()
    return 0


class Tee(io.StringIO):
    """Prints as it goes and keeps what it printed (for docs/figures.md)."""

    def write(self, text: str) -> int:
        if sys.__stdout__ is not None:
            sys.__stdout__.write(text)
            sys.__stdout__.flush()
        return super().write(text)


if __name__ == "__main__":
    printed = Tee()
    with contextlib.redirect_stdout(printed):
        status = main()
    if status == 0 and "--no-figures" not in sys.argv:
        write_section("Gateway: latency, scaling, reloads, memory",
                      "python bench/gateway_bench.py " + " ".join(sys.argv[1:]), printed.getvalue())
    sys.exit(status)
