"""Latency and throughput of ``leser serve``: a bounded load loop over real HTTP on 127.0.0.1.

It starts the server in-process on a free port (the same app as ``leser serve``), then sends a fixed number
of requests from ``--concurrency`` client threads and stops. Two phases:
- ``generated``: every query is new to the server (test-split queries, never repeated), so each costs a
  search for its context and a share of a micro-batched generate call;
- ``precomputed`` (with ``--head N > 0``): N queries are expanded once before timing, as ``leser
  precompute`` would, then requested again: the head-query path, a table lookup plus the rules.

Prints and writes (``--out``) p50/p95/mean latency per request and queries per second for each phase.

Usage:
    PYTHONPATH=src python experiments/bench/bench_serve.py --config experiments/configs/cpu.toml \
        [--model DIR] [--requests 32] [--concurrency 4] [--queries-per-request 1] [--head 32] \
        [--out runs/bench_serve.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from leser.config import load_config
from leser.serve import build_expander, create_app, query_key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    """uvicorn on 127.0.0.1 in a daemon thread; returns once it accepts connections."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def load_phase(url: str, batches: list[list[str]], concurrency: int) -> dict:
    """Send each batch of queries as one request, ``concurrency`` at a time; latency per request."""
    def send(queries: list[str]) -> float:
        t0 = time.perf_counter()
        response = client.post(f"{url}/expand", json={"queries": queries})
        response.raise_for_status()
        assert len(response.json()["results"]) == len(queries)
        return time.perf_counter() - t0

    with httpx.Client(timeout=600) as client, ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        latencies = sorted(pool.map(send, batches))
        wall = time.perf_counter() - started
    queries = sum(len(b) for b in batches)
    return {
        "requests": len(batches), "queries": queries, "concurrency": concurrency, "wall_s": round(wall, 3),
        "latency_ms": {"p50": round(1000 * statistics.median(latencies), 1),
                       "p95": round(1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
                       "mean": round(1000 * statistics.fmean(latencies), 1)},
        "queries_per_s": round(queries / wall, 2),
    }


def chunk(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--model", help="policy folder (default: the config's)")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--queries-per-request", type=int, default=1)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--head", type=int, default=32, help="queries precomputed before the second phase (0: none)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default="runs/bench_serve.json")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    overrides = [*args.set, *([f'policy.model="{args.model}"'] if args.model else [])]
    cfg = load_config(args.config, overrides)
    t0 = time.perf_counter()
    expander = build_expander(cfg, micro_batch=args.micro_batch)
    startup_s = time.perf_counter() - t0
    dataset = expander.reward.dataset
    texts = [dataset.queries[q] for q in dataset.split("test")] or list(dataset.queries.values())
    needed = args.requests * args.queries_per_request
    tail, head = texts[:needed], texts[needed:needed + args.head]
    if len(tail) < needed:
        raise SystemExit(f"the test split has {len(texts)} queries; need {needed}")

    server, thread, url = start_server(create_app(expander))
    print(f"serving at {url} after {startup_s:.0f}s; {needed} requests, {args.concurrency} at a time", flush=True)
    phases = {}
    try:
        batches_before = expander.batches
        phases["generated"] = load_phase(url, chunk(tail, args.queries_per_request), args.concurrency)
        phases["generated"]["generate_calls"] = expander.batches - batches_before
        print(f"generated: {phases['generated']}", flush=True)
        if head:
            for query, expansions in zip(head, expander.expand(head).result()):
                expander.precomputed[query_key(query)] = expansions["expansions"]
            stream = [head[i % len(head)] for i in range(needed)]
            phases["precomputed"] = load_phase(url, chunk(stream, args.queries_per_request), args.concurrency)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        expander.close()

    import torch

    report = {
        "phases": phases, "startup_s": round(startup_s, 1), "micro_batch": args.micro_batch,
        "queries_per_request": args.queries_per_request, "model": cfg.policy.model or "default SmolLM2-135M-Instruct",
        "dataset": dataset.name, "engine": cfg.engine.kind, "max_new_tokens": cfg.eval.max_new_tokens,
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_avg_1m": os.getloadavg()[0], "platform": platform.platform()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
