#!/usr/bin/env python3
"""Gateway benchmark (prints figures; not a test). Loopback only, bounded, stops by itself.

(a) latency the gateway adds: p50/p99 of N sequential requests to a zero-latency vLLM
    simulator, direct (kept-alive connection) vs through nginx (client keep-alive is off by
    default, so this includes a new TCP connection per request);
(b) scaling: simulators holding a fixed TTFT and --max-num-seqs, 1, 2 and 4 Llama members
    behind the gateway at a fixed client concurrency, throughput as a share of linear scaling;
(c) reloads under traffic: clients without retries send one-token chats (streamed and not)
    while the gateway reloads, with client keep-alive on and off; requests lost each way.

Run: .venv/bin/python bench/gateway_bench.py [--requests 400] [--ttft-ms 100] ...
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gateway"))

import harness as h

from tests.portpick import free_port
from tests.traffic import Traffic

ROUTES = [{"path": "/v1/chat/completions", "pool": None, "route_by_model": True}]
MODELS = {"llama3.1-8b": "llama"}
BODY = json.dumps(h.chat("llama3.1-8b", "bench", max_tokens=1)).encode()


def timed_requests(port: int, count: int) -> list[float]:
    """Sequential chat requests over one kept-alive connection; seconds each."""
    conn = http.client.HTTPConnection(h.LOOPBACK, port, timeout=30)
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", BODY, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")
            times.append(time.perf_counter() - start)
    finally:
        conn.close()
    return times


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


def variant(work: Path, name: str, members: list[h.Process], keepalive: str = "0") -> h.Variant:
    pools = {"llama": h.pool("vllm", "llama3.1-8b", members)}
    return h.Variant(name, free_port(), work / name, work / name, pools, routes=ROUTES,
                     models=dict(MODELS),
                     extra={"nginx_unified_client_keepalive_timeout": keepalive})


def lost_in_reloads(var: h.Variant, reloads: int, clients: int) -> tuple[int, int]:
    """(sent, lost) for `clients` no-retry clients while the gateway reloads `reloads` times."""
    gw = h.start_gateway(var.runtime, var.port)
    try:
        url = f"http://{h.LOOPBACK}:{var.port}/v1"
        with Traffic(url, "unused", "llama3.1-8b", workers=clients, max_tokens=1) as traffic:
            for _ in range(reloads):
                gw.reload()
    finally:
        gw.stop()
    return traffic.tally.sent, traffic.tally.failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="latency samples per path")
    parser.add_argument("--ttft-ms", type=float, default=100.0, help="scaling: sim latency")
    parser.add_argument("--max-num-seqs", type=int, default=4, help="scaling: sim concurrency cap")
    parser.add_argument("--concurrency", type=int, default=16, help="scaling: client threads")
    parser.add_argument("--scaling-requests", type=int, default=160, help="per configuration")
    parser.add_argument("--reloads", type=int, default=40, help="reloads: how many")
    parser.add_argument("--reload-clients", type=int, default=8, help="reloads: client threads")
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
            sims = [zero, *fixed]
            for sim in sims:
                h.await_vllm(sim)
            variants = [variant(work, "latency", [zero])]
            variants += [variant(work, f"scale{n}", fixed[:n]) for n in (1, 2, 4)]
            keepalives = {"75s": variant(work, "keepalive-on", [zero], "75s"),
                          "0 (default)": variant(work, "keepalive-off", [zero])}
            variants += keepalives.values()
            h.render(variants, work)

            gw = h.start_gateway(variants[0].runtime, variants[0].port)
            gateways.append(gw)
            timed_requests(zero.port, 20)
            timed_requests(gw.port, 20)  # warm up both paths
            direct = timed_requests(zero.port, args.requests)
            via = timed_requests(gw.port, args.requests)
            gw.stop()
            print(f"(a) added latency, {args.requests} sequential requests, zero-latency simulator")
            print(f"    {'path':<10}{'p50 ms':>10}{'p99 ms':>10}")
            for label, times in (("direct", direct), ("gateway", via)):
                print(f"    {label:<10}{1000 * statistics.median(times):>10.2f}"
                      f"{1000 * percentile(times, 0.99):>10.2f}")
            added_p50 = statistics.median(via) - statistics.median(direct)
            added_p99 = percentile(via, 0.99) - percentile(direct, 0.99)
            print(f"    {'added':<10}{1000 * added_p50:>10.2f}{1000 * added_p99:>10.2f}")

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
            print(f"    {'client keep-alive':<20}{'sent':>8}{'lost':>8}")
            for label, var in keepalives.items():
                sent, lost = lost_in_reloads(var, args.reloads, args.reload_clients)
                print(f"    {label:<20}{sent:>8}{lost:>8}")
        finally:
            for gateway in gateways:
                gateway.stop()
            for sim in sims:
                sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
