#!/usr/bin/env python3
"""Load generator of playbooks/bench.yml: runs ON a host of the stack (standard library only).

One run: POST the same JSON body to one URL `--requests` times from `--concurrency` workers
(1 = serial), each worker on its own keep-alive connection, and print one JSON object: the total
seconds, and per request its latency, HTTP status and error. A request counts as ok only with
status 200 and a JSON object without "error"; every other one is counted as failed with its
reason, and requests not started before `--deadline` are reported as failed too (never
dropped). The body comes from a file, so no prompt or key is on the command line; the API key
(gateway runs only) is read from `--key-file`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

ERROR_SAMPLES = 5


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_load.py", description=__doc__)
    p.add_argument("--url", required=True, help="http(s)://address:port/path")
    p.add_argument("--body-file", required=True, type=Path, help="the JSON body to POST")
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--deadline", type=float, default=120.0,
                   help="seconds after which no request is started any more")
    p.add_argument("--warmup", type=int, default=1, help="untimed requests sent first")
    p.add_argument("--ca", default="", help="CA bundle for https (default: the system's)")
    p.add_argument("--key-file", type=Path, help="API key, sent as Authorization: Bearer")
    p.add_argument("--info-path", default="", help="GET this path first and report its JSON (e.g. /sim/info)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.timeout <= 0 or args.deadline <= 0:
        p.error("--requests and --concurrency must be >= 1, --timeout and --deadline > 0")
    return args


class Client:
    """One keep-alive connection to the URL's server, opened again after any failure."""

    def __init__(self, url: str, timeout: float, ca: str, headers: dict[str, str]) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca or None) if self.https else None
        self.headers = headers
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> http.client.HTTPConnection:
        if self.conn is None:
            if self.context is not None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                        context=self.context)
            else:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def call(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        conn = self.connect()
        try:
            conn.request(method, path, body=body, headers=self.headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, data


def judge(status: int, data: bytes) -> str | None:
    """None for a good answer, else why it is not one."""
    try:
        answer = json.loads(data)
    except ValueError:
        return f"HTTP {status}, not JSON: {data[:120]!r}"
    if status != 200:
        detail = answer.get("error") if isinstance(answer, dict) else answer
        return f"HTTP {status}: {json.dumps(detail)[:200]}"
    if not isinstance(answer, dict) or "error" in answer:
        return f"HTTP 200 without an answer: {json.dumps(answer)[:200]}"
    return None


def one(client: Client, body: bytes) -> dict[str, Any]:
    start = time.monotonic()
    status: int | None = None
    try:
        status, data = client.call("POST", client.path, body)
        error = judge(status, data)
    except (OSError, http.client.HTTPException) as problem:
        error = f"{type(problem).__name__}: {problem}"
    return {"latency": round(time.monotonic() - start, 6), "status": status, "error": error}


def run(args: argparse.Namespace) -> dict[str, Any]:
    body = args.body_file.read_bytes()
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    if args.key_file is not None:
        headers["Authorization"] = "Bearer " + args.key_file.read_text().strip()
    concurrency = min(args.concurrency, args.requests)
    clients = [Client(args.url, args.timeout, args.ca, headers) for _ in range(concurrency)]
    info = probe_info(clients[0], args.info_path) if args.info_path else None
    warmup = [one(clients[0], body) for _ in range(max(args.warmup, 0))]
    for client in clients:  # the warm-up's connection is not reused: every worker starts alike
        client.close()

    results: list[dict[str, Any] | None] = [None] * args.requests
    lock = threading.Lock()
    next_index = [0]
    start = time.monotonic()
    deadline = start + args.deadline

    def worker(client: Client) -> None:
        while True:
            with lock:
                index = next_index[0]
                if index >= args.requests or time.monotonic() >= deadline:
                    return
                next_index[0] += 1
            results[index] = one(client, body)

    threads = [threading.Thread(target=worker, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    for client in clients:
        client.close()
    requests = [r if r is not None else {"latency": None, "status": None,
                                         "error": f"not started within the {args.deadline:g} s deadline"}
                for r in results]
    failed = [r for r in requests if r["error"] is not None]
    statuses: dict[str, int] = {}
    for r in requests:
        key = str(r["status"]) if r["status"] is not None else "none"
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "url": args.url,
        "requests": args.requests,
        "concurrency": concurrency,
        "seconds": round(seconds, 6),
        "ok": len(requests) - len(failed),
        "failed": len(failed),
        "statuses": statuses,
        "errors": sorted({str(r["error"]) for r in failed})[:ERROR_SAMPLES],
        "latencies": [r["latency"] for r in requests],
        "warmup_failed": sum(1 for w in warmup if w["error"] is not None),
        "info": info,
    }


def probe_info(client: Client, path: str) -> dict[str, Any] | None:
    """The engine's own description (the lab simulators' /sim/info); None where it has none."""
    try:
        status, data = client.call("GET", path, None)
        answer = json.loads(data) if status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        client.close()
    return answer if isinstance(answer, dict) else None


def main(argv: list[str]) -> int:
    args = parse(argv)
    json.dump(run(args), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
