"""``leser serve`` under bad input (issue 34, part 6), over real HTTP on 127.0.0.1: malformed JSON, missing fields,
wrong types, a 100 KB query, 1,000 queries in one request, bodies past the limit (declared or chunked), slow
bodies and slow answers, a full queue, 50 clients at once. Each refusal must be a 4xx/5xx whose body is one line
of JSON naming what was wrong and the limit, and the server must answer a normal request afterwards.

Most tests run a stub model (a fixed answer; a gate holds the worker where a test needs the queue to fill), so
they are fast and deterministic; the 50 clients run the tiny Llama of ``test_leser_evaluate``."""
from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from leser.config import ConfigError, load_config
from test_leser_evaluate import eval_overrides  # noqa: F401  (the fixture: data set, encoder, policy)

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from test_leser_serve import check_result, running, write_head  # noqa: E402  (needs the serve extra)

WAIT_S = 10
"""No wait in these tests is longer: a bug fails a test instead of hanging it."""


def stub_expander(overrides=(), gate: threading.Event | None = None):
    """An Expander whose model is a stub: every query gets three fine expansions. With ``gate``, each generate
    call first sets ``stub.entered`` and then waits (bounded) until the gate opens."""
    from leser.serve import Expander

    class Stub(Expander):
        def _generate(self, queries):
            self.entered.set()
            if gate is not None:
                assert gate.wait(WAIT_S), "the test never opened the gate"
            self.generated.extend(queries)
            return [[f"{q} one", f"{q} two", f"{q} three"] for q in queries]

    cfg = load_config(None, list(overrides))
    stub = Stub(cfg, reward=None, model=None, tokenizer=None, micro_batch=8, wait_s=0.0)
    stub.entered, stub.generated = threading.Event(), []
    return stub


@pytest.fixture(scope="module")
def default_server():
    """A stub server with the default limits (64 KB body, 64 queries of 256 characters)."""
    with running(stub_expander()) as url:
        yield url


def error_of(response, status: int) -> str:
    """The one-line JSON error of a refused request."""
    assert response.status_code == status, (response.status_code, response.text)
    assert "\n" not in response.text and response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    return body["error"]


def assert_answers(url: str, query: str = "white faucet") -> None:
    response = httpx.post(f"{url}/expand", json={"queries": [query]}, timeout=WAIT_S)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["query"] == query and result["expansions"]


def raw_http(port: int, head: str, body: bytes = b"", read_timeout: float = WAIT_S) -> tuple[int, str]:
    """Send bytes as they are (a lying or partial request httpx would not send); the status and body back."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.split(b"\r\n\r\n", 1)[1].decode()


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


HUNDRED_KB_QUERY = json.dumps({"queries": ["sofa " * 20_000]}).encode()
THOUSAND_QUERIES = json.dumps({"queries": [f"query {i}" for i in range(1000)]}).encode()

BAD_BODIES = {  # body -> (status, a piece of the error)
    b'{"queries": ["blue sofa"': (400, "not JSON"),
    b"": (400, "not JSON"),
    b"\xff\xfe{}": (400, "not JSON"),
    b"[" * 60_000: (400, "nested too deeply"),
    b'{"queries": [' + b"9" * 5000 + b"]}": (400, "not JSON"),
    b"[1, 2]": (422, 'JSON object {"queries"'),
    b'{"query": "blue sofa"}': (422, "without 'queries'"),
    b'{"queries": "blue sofa"}': (422, "'queries' must be a list of strings, got a JSON string"),
    b'{"queries": {"q": 1}}': (422, "got a JSON object"),
    b'{"queries": []}': (422, "holds 0 queries; send 1 to 64"),
    b'{"queries": ["sofa", 3]}': (422, "queries[1] must be a string, got a JSON number"),
    b'{"queries": ["sofa", null]}': (422, "queries[1] must be a string, got a JSON null"),
    b'{"queries": [["sofa"]]}': (422, "queries[0] must be a string, got a JSON array"),
    b'{"queries": ["sofa", " \\t "]}': (422, "queries[1] is empty"),
    b'{"queries": ["\\ud800 sofa"]}': (422, "not valid Unicode"),
    json.dumps({"queries": ["sofa", "a" * 257]}).encode(): (422, "queries[1] has 257 characters; the limit is 256"),
    THOUSAND_QUERIES: (422, "holds 1000 queries; send 1 to 64 (max_queries_per_request=64)"),
    HUNDRED_KB_QUERY: (413, "the limit is 65536 (max_body_bytes=65536)"),
}


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda b: repr(b[:24]) + f"..{len(b)}B")
def test_bad_bodies_get_a_one_line_error_with_the_limit(default_server, body):
    status, words = BAD_BODIES[body]
    response = httpx.post(f"{default_server}/expand", content=body, timeout=WAIT_S,
                          headers={"content-type": "application/json"})
    assert words in error_of(response, status)
    assert_answers(default_server)


def test_the_limits_allow_what_they_name(default_server):
    """64 queries of 256 characters are fine (no off-by-one), and a body need not say it is JSON."""
    queries = [f"{i:03d} " + "a" * 252 for i in range(64)]
    response = httpx.post(f"{default_server}/expand", content=json.dumps({"queries": queries}), timeout=WAIT_S)
    assert response.status_code == 200, response.text
    assert [r["query"] for r in response.json()["results"]] == queries


def test_other_errors_are_one_line_json_too(default_server):
    assert "Not Found" in error_of(httpx.get(f"{default_server}/nothing", timeout=WAIT_S), 404)
    assert "Method Not Allowed" in error_of(httpx.get(f"{default_server}/expand", timeout=WAIT_S), 405)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(default_server):
    """Content-Length of 10 MB and not one byte of body sent: the 413 must come at once, not after a read."""
    port = int(default_server.rsplit(":", 1)[1])
    status, body = raw_http(port, "POST /expand HTTP/1.1\nHost: x\nContent-Type: application/json\n"
                                  "Content-Length: 10000000\n")
    assert status == 413 and json.loads(body) == {
        "error": "the request body is 10000000 bytes; the limit is 65536 (max_body_bytes=65536)"}
    assert_answers(default_server)


def test_a_chunked_body_is_counted_as_it_streams(default_server):
    """No Content-Length (chunked): the server stops reading once the count passes the limit."""
    sent = []

    def chunks(body: bytes, size: int = 8192):
        for start in range(0, len(body), size):
            sent.append(size)
            yield body[start:start + size]

    response = httpx.post(f"{default_server}/expand", content=chunks(HUNDRED_KB_QUERY), timeout=WAIT_S)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "over 65536 bytes (max_body_bytes=65536)" in error_of(response, 413)
    small = json.dumps({"queries": ["blue sofa"]}).encode()
    response = httpx.post(f"{default_server}/expand", content=chunks(small, 4), timeout=WAIT_S)
    assert response.status_code == 200 and response.json()["results"][0]["query"] == "blue sofa", response.text


def test_a_full_queue_answers_503_and_never_grows_past_its_bound():
    """The worker is held on one request; 64 queries then fill the queue (its bound); one more query is a 503
    with Retry-After, a precomputed-free /health still answers, and once the worker goes on everyone queued
    gets their answer."""
    gate = threading.Event()
    stub = stub_expander(["serve.max_queued_queries=64"], gate)
    with running(stub) as url, httpx.Client(timeout=WAIT_S) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, f"{url}/expand", json={"queries": ["held query"]})
        assert stub.entered.wait(WAIT_S)  # the worker is inside generate: nothing it takes from here on
        many = [f"queued {i}" for i in range(64)]
        second = pool.submit(client.post, f"{url}/expand", json={"queries": many})
        for _ in range(200):  # until the 64 are in the queue (bounded: 200 x 10 ms)
            if client.get(f"{url}/health").json()["queued"] == 64:
                break
            threading.Event().wait(0.01)
        busy = client.post(f"{url}/expand", json={"queries": ["one more"]})
        assert busy.headers["retry-after"] == "1"
        assert "64 queries wait for the model and this request adds 1; the limit is 64" in error_of(busy, 503)
        gate.set()
        assert first.result(WAIT_S).status_code == 200
        assert [r["query"] for r in second.result(WAIT_S).json()["results"]] == many
        assert stub.peak_queued == 64 and stub.queued == 0
        assert_answers(url)


def test_past_the_time_limit_a_request_gets_504_and_leaves_the_queue():
    """A request the model holds up gets a 504 at the limit; one queued behind it also gets its 504 and its
    queries are dropped, not generated later; the server then answers as before."""
    gate = threading.Event()
    stub = stub_expander(["serve.request_timeout_s=0.5"], gate)
    with running(stub) as url, httpx.Client(timeout=WAIT_S) as client, ThreadPoolExecutor(2) as pool:
        held = pool.submit(client.post, f"{url}/expand", json={"queries": ["held query"]})
        assert stub.entered.wait(WAIT_S)
        behind = pool.submit(client.post, f"{url}/expand", json={"queries": ["behind it"]})
        assert error_of(held.result(WAIT_S), 504) == "no answer within 0.5 s (request_timeout_s=0.5)"
        assert "no answer within 0.5 s" in error_of(behind.result(WAIT_S), 504)
        gate.set()
        assert_answers(url, "after the timeouts")
        assert stub.generated == ["held query", "after the timeouts"] and stub.queued == 0


def test_a_body_that_does_not_arrive_in_time_gets_408():
    stub = stub_expander(["serve.request_timeout_s=0.5"])
    with running(stub) as url:
        port = int(url.rsplit(":", 1)[1])
        status, body = raw_http(port, "POST /expand HTTP/1.1\nHost: x\nContent-Length: 100\n", b'{"queries": [')
        assert status == 408 and json.loads(body) == {
            "error": "the request body did not arrive within 0.5 s (request_timeout_s=0.5)"}
        assert_answers(url)


def test_fifty_concurrent_clients_get_answers_or_a_clear_503(eval_overrides, tmp_path):  # noqa: F811
    """50 clients at once against the tiny Llama, a queue of 8: every good request is a 200 or a 503 that says
    the server is busy, every bad one its 4xx; the queue never held more than 8; afterwards all is as before."""
    from leser.serve import build_expander

    cfg = load_config(None, eval_overrides + ["serve.max_queries_per_request=4", "serve.max_queued_queries=8"])
    expander = build_expander(cfg, str(write_head(tmp_path)), micro_batch=4)
    start = threading.Barrier(50, timeout=WAIT_S)
    bodies = [(i, {"queries": [f"sofa {i}"]} if i % 5 else {"queries": ["cordless drill"]}) for i in range(40)]
    bodies += [(i, b'{"queries": [') if i % 2 else (i, {"queries": ["a", "b", "c", "d", "e"]}) for i in range(40, 50)]

    def client(item):
        i, body = item
        with httpx.Client(timeout=30) as http:
            start.wait()
            if isinstance(body, bytes):
                return i, http.post(f"{url}/expand", content=body)
            return i, http.post(f"{url}/expand", json=body)

    with running(expander) as url, ThreadPoolExecutor(50) as pool:
        answers = dict(pool.map(client, bodies))
        statuses = {}
        for i, response in answers.items():
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if i >= 40:
                assert error_of(response, 400 if i % 2 else 422)
            elif response.status_code == 503:
                assert "the limit is 8 (max_queued_queries=8)" in error_of(response, 503)
            else:
                assert response.status_code == 200, response.text
                [result] = response.json()["results"]
                check_result(result, f"sofa {i}" if i % 5 else "cordless drill")
        assert statuses.get(200, 0) >= 8, statuses  # the 8 precomputed ones at least
        assert expander.peak_queued <= 8 and expander.queued == 0
        response = httpx.post(f"{url}/expand", json={"queries": ["patio chair"]}, timeout=30)
        assert response.status_code == 200, response.text
        check_result(response.json()["results"][0], "patio chair")


def test_limits_are_checked_settings():
    with pytest.raises(ConfigError, match=r"--set serve.max_queued_queries=2: \[serve\] max_queued_queries must be "
                                          r">= max_queries_per_request \(64\)"):
        load_config(None, ["serve.max_queued_queries=2"])
    with pytest.raises(ConfigError, match=r"max_body_bytes must be an integer >= 1"):
        load_config(None, ["serve.max_body_bytes=0"])
    with pytest.raises(ConfigError, match=r"request_timeout_s must be > 0"):
        load_config(None, ["serve.request_timeout_s=-1"])


def test_cli_limit_flags_set_the_serve_table(monkeypatch, capsys):
    import leser.serve
    from leser.cli import main

    seen = {}
    monkeypatch.setattr(leser.serve, "serve", lambda cfg, **kw: seen.update(limits=cfg.serve))
    assert main(["serve", "--max-body-bytes", "1000", "--max-queries-per-request", "8", "--max-query-chars", "99",
                 "--max-queued-queries", "16", "--request-timeout", "2.5"]) == 0
    limits = seen["limits"]
    assert (limits.max_body_bytes, limits.max_queries_per_request, limits.max_query_chars,
            limits.max_queued_queries, limits.request_timeout_s) == (1000, 8, 99, 16, 2.5)
    assert main(["serve", "--max-queries-per-request", "0"]) == 2
    assert "max_queries_per_request must be an integer >= 1, got 0" in capsys.readouterr().err
