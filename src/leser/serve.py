"""``leser serve``: expansions over HTTP, ``POST /expand {"queries": [...]}``.

Head queries (the few that make most of the traffic) are answered from a JSONL written by ``leser
precompute``, so they cost a dictionary lookup. The rest are generated: queries from concurrent requests are
gathered into micro-batches by one worker thread, since one generate call over 8 prompts costs little more
than over 1 on a CPU, and torch should not run two generations at once anyway.

Every answer passes the platform rules: ``expansions`` are what a platform would run (``reward.usable``),
``dropped`` the others, each with the rules it breaks (``reward.check``), so a caller can see why, and
``violations`` the rules the whole answer breaks (``unparsable`` when the policy gave no expansion).

Bad input gets a one-line JSON error, ``{"error": ...}``, that says what was wrong and the limit it broke
(:class:`leser.config.ServeConfig`, the ``[serve]`` table or ``leser serve``'s flags): 400 for a body that is not
JSON, 413 for one over ``max_body_bytes`` (refused on its Content-Length before it is read, or once a chunked body
streams past the limit), 422 for a request of the wrong shape, too many queries or too long a query, 503 with
``Retry-After`` when ``max_queued_queries`` wait for the model already, 504 past ``request_timeout_s``. Memory is
bounded by those limits: no more than one body per request, and no more than the queue's bound waiting.

Needs the ``serve`` extra (FastAPI + uvicorn).
"""
from __future__ import annotations

import asyncio
import json
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from leser.config import ConfigError, LeserConfig, ServeConfig
from leser.serve_limits import BadRequest, QueueFull, RequestLimits, error_response, parse_queries
from reward import judge


def query_key(query: str) -> str:
    """Precomputed answers are looked up by the query with its whitespace collapsed (as users type it)."""
    return " ".join(query.split())


def read_precomputed(path: str | Path) -> dict[str, list[str]]:
    """``{query: expansions}`` from ``leser precompute``'s JSONL (one ``{"query", "expansions"}`` a line)."""
    table: dict[str, list[str]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read precomputed expansions from {path}: {err}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            table[query_key(row["query"])] = [str(e) for e in row["expansions"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{path}:{number}: not a precompute line ({err!r})") from None
    return table


@dataclass
class _Job:
    queries: list[str]
    future: Future
    """Cancelled when its request gave up (timed out, disconnected): the worker then skips it."""


class Expander:
    """Answers lists of queries: precomputed ones at once, the rest through one micro-batching worker.

    ``micro_batch`` caps the prompts per generate call; ``wait_s`` is how long the worker waits for more
    queries to join a batch that is not full (a few ms of latency traded for throughput under load);
    ``max_queued`` caps the queries waiting for the worker (default ``cfg.serve.max_queued_queries``): past it
    :meth:`expand` raises :class:`QueueFull` rather than let a burst of requests grow memory without bound."""

    def __init__(self, cfg: LeserConfig, reward, model, tokenizer, precomputed: dict[str, list[str]] | None = None,
                 micro_batch: int = 8, wait_s: float = 0.005, max_queued: int | None = None):
        self.cfg, self.reward, self.model, self.tokenizer = cfg, reward, model, tokenizer
        self.precomputed = precomputed or {}
        self.micro_batch, self.wait_s = micro_batch, wait_s
        self.max_queued = max_queued if max_queued is not None else cfg.serve.max_queued_queries
        self.batches = 0
        """Generate calls made so far (tests and the bench read it)."""
        self.queued = 0
        """Queries waiting for the worker now."""
        self.peak_queued = 0
        """The most that ever waited at once (never above ``max_queued``)."""
        self._lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="leser-expander", daemon=True)
        self._worker.start()

    def expand(self, queries: list[str]) -> Future:
        """A future of one result per query (see :func:`judge`, plus ``source``), in order; cancelling it drops
        its queries from the queue unless they are generating already. :class:`QueueFull` when they do not fit."""
        future: Future = Future()
        heads = {q: self.precomputed.get(query_key(q)) for q in queries}
        rest = [q for q in dict.fromkeys(queries) if heads[q] is None]
        if not rest:
            future.set_result(self._results(queries, heads, {}))
            return future
        with self._lock:
            if self.queued + len(rest) > self.max_queued:
                raise QueueFull(f"the server is busy: {self.queued} queries wait for the model and this request "
                                f"adds {len(rest)}; the limit is {self.max_queued} "
                                f"(max_queued_queries={self.max_queued}); retry shortly")
            self.queued += len(rest)
            self.peak_queued = max(self.peak_queued, self.queued)
        generated: Future = Future()
        generated.add_done_callback(lambda done: _chain(done, future, lambda g: self._results(queries, heads, g)))
        future.add_done_callback(lambda done: done.cancelled() and generated.cancel())
        self._jobs.put(_Job(rest, generated))
        return future

    def close(self) -> None:
        self._jobs.put(None)
        self._worker.join(timeout=30)

    def _results(self, queries: list[str], heads: dict, generated: dict[str, list[str]]) -> list[dict]:
        out = []
        for q in queries:
            source = "precomputed" if heads[q] is not None else "generated"
            expansions = heads[q] if heads[q] is not None else generated[q]
            out.append({**judge(q, expansions, self.cfg.rules), "source": source})
        return out

    def _take(self, job: _Job) -> bool:
        """Out of the queue: False for a job whose request gave up (it is dropped), else it is running now."""
        with self._lock:
            self.queued -= len(job.queries)
        return job.future.set_running_or_notify_cancel()

    def _work(self) -> None:
        """Take jobs until ``micro_batch`` queries are waiting (or ``wait_s`` passed), generate, answer."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not self._take(job):
                continue
            jobs = [job]
            while sum(len(j.queries) for j in jobs) < self.micro_batch:
                try:
                    more = self._jobs.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)
                    break
                if self._take(more):
                    jobs.append(more)
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        queries = list(dict.fromkeys(q for j in jobs for q in j.queries))
        try:
            generated: dict[str, list[str]] = {}
            for start in range(0, len(queries), self.micro_batch):
                batch = queries[start:start + self.micro_batch]
                generated.update(zip(batch, self._generate(batch)))
                self.batches += 1
        except Exception as err:  # every waiting request gets the error, the worker lives on
            for j in jobs:
                j.future.set_exception(err)
            return
        for j in jobs:
            j.future.set_result({q: generated[q] for q in j.queries})

    def _generate(self, queries: list[str]) -> list[list[str]]:
        """The policy's parsed expansions, from the same context (the engine's top titles) it trained on."""
        from policy import expand_queries

        from retrieval.plan import top_titles

        texts, prompt = self.reward.dataset.product_texts, self.cfg.prompt
        contexts = [top_titles(texts, ranking, prompt.context_k) for ranking in self.reward.plan.rank(queries)]
        shown = [self.reward.shown_query(q, c) for q, c in zip(queries, contexts)]
        return expand_queries(self.model, self.tokenizer, shown, contexts, prompt,
                              max_new_tokens=self.cfg.eval.max_new_tokens, temperature=self.cfg.eval.temperature,
                              batch_size=self.micro_batch, distinct_lines=self.cfg.eval.distinct_lines)


def _chain(done: Future, target: Future, then) -> None:
    if target.cancelled() or done.cancelled():
        target.cancel()
        return
    try:
        target.set_result(then(done.result()))
    except Exception as err:
        target.set_exception(err)


def create_app(expander: Expander, limits: ServeConfig | None = None) -> FastAPI:
    """The HTTP app over ``expander``; ``limits`` default to ``expander.cfg.serve``."""
    limits = limits or expander.cfg.serve
    app = FastAPI(title="LESER query expansion", description=__doc__)
    app.add_middleware(RequestLimits, limits=limits)

    @app.exception_handler(StarletteHTTPException)
    async def httperror_response(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error_response(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest) -> JSONResponse:
        return error_response(err.status, err.message, {"Retry-After": "1"} if err.status == 503 else None)

    @app.post("/expand", openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": ["queries"], "properties": {"queries": {
            "type": "array", "minItems": 1, "maxItems": limits.max_queries_per_request,
            "items": {"type": "string", "minLength": 1, "maxLength": limits.max_query_chars}}}}}}}})
    async def expand(request: Request) -> dict:
        queries = parse_queries(await request.body(), limits)
        future = expander.expand(queries)
        try:
            return {"results": await asyncio.wrap_future(future)}
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as err:  # the model failed: a one-line 500; the worker lives on
            return error_response(500, f"generation failed: {type(err).__name__}: {err}")

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "precomputed": len(expander.precomputed), "batches": expander.batches,
                "queued": expander.queued}

    return app


def build_expander(cfg: LeserConfig, precomputed: str | None = None, micro_batch: int = 8) -> Expander:
    """The policy, the engine context and the rules of ``cfg``; the model first, so a wrong path fails fast."""
    from leser.runtime import build_reward
    from policy import load_policy

    table = read_precomputed(precomputed) if precomputed else {}
    model, tokenizer = load_policy(cfg.policy.model, dtype=cfg.policy.dtype)
    return Expander(cfg, build_reward(cfg), model, tokenizer, table, micro_batch=micro_batch)


def serve(cfg: LeserConfig, host: str = "127.0.0.1", port: int = 8000, precomputed: str | None = None,
          micro_batch: int = 8) -> None:
    """Load everything, then answer until interrupted, under the limits of ``cfg.serve``."""
    import uvicorn

    expander = build_expander(cfg, precomputed, micro_batch)
    limits = cfg.serve
    print(f"serving on http://{host}:{port}/expand ({len(expander.precomputed)} precomputed queries; limits: "
          f"{limits.max_body_bytes} body bytes, {limits.max_queries_per_request} queries of "
          f"{limits.max_query_chars} characters a request, {limits.max_queued_queries} queued, "
          f"{limits.request_timeout_s:g} s)")
    try:
        uvicorn.run(create_app(expander), host=host, port=port, log_level="info")
    finally:
        expander.close()
