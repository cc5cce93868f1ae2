"""``leser serve`` over real HTTP on 127.0.0.1: a tiny generic data set, a tiny BERT engine, a tiny Llama."""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from leser.config import ConfigError, ServeConfig, load_config
from reward import RULES
from test_leser_evaluate import eval_overrides  # noqa: F401  (the fixture: data set, encoder, policy)

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(expander):
    """``expander``'s app under uvicorn on 127.0.0.1 (a free port, a thread); yields the base URL. On the way
    out the server and the expander's worker stop, each within a bounded wait."""
    import uvicorn

    from leser.serve import create_app

    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(expander), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        expander.close()


def write_head(tmp_path):
    head = tmp_path / "head.jsonl"
    head.write_text(json.dumps({"query": "cordless drill", "expansions": [
        "drill with battery", "x", "see www.drills.com", "Drill  with battery", "cordless drill", "drill bits",
        "drill case", "drill light"]}) + "\n")
    return head


@pytest.fixture
def server(eval_overrides, tmp_path):  # noqa: F811
    """A running server (base URL, Expander); one precomputed head query with a rule-breaking expansion."""
    from leser.serve import build_expander

    expander = build_expander(load_config(None, eval_overrides), str(write_head(tmp_path)), micro_batch=4)
    with running(expander) as url:
        yield url, expander


def check_result(result: dict, query: str, cfg_max: int = 3) -> None:
    assert result["query"] == query and result["source"] in ("precomputed", "generated")
    assert len(result["expansions"]) <= cfg_max and all(isinstance(e, str) for e in result["expansions"])
    assert set(result["violations"]) <= set(RULES) and (result["expansions"] or result["violations"])
    for dropped in result["dropped"]:
        assert dropped["violations"] and set(dropped["violations"]) <= set(RULES)


def test_expand_answers_head_queries_from_the_table_and_generates_the_rest(server):
    url, expander = server
    queries = ["cordless drill", "blue  sofa", "cordless  drill"]
    response = httpx.post(f"{url}/expand", json={"queries": queries}, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["source"] for r in results] == ["precomputed", "generated", "precomputed"]
    for query, result in zip(queries, results):
        check_result(result, query)
    head = results[0]
    assert head["expansions"] == ["drill with battery", "drill bits", "drill case"]
    assert {d["expansion"]: d["violations"] for d in head["dropped"]} == {
        "x": ["too_short"], "see www.drills.com": ["url_or_price"], "Drill  with battery": ["duplicate"],
        "cordless drill": ["equals_query"], "drill light": ["count"]}
    assert head["violations"] == ["count", "too_short", "duplicate", "equals_query", "url_or_price"]
    assert expander.batches == 1
    assert httpx.get(f"{url}/health").json() == {"status": "ok", "precomputed": 1, "batches": 1, "queued": 0}


def test_concurrent_requests_share_micro_batches(server):
    url, expander = server
    queries = ["white faucet", "led bulb", "blue sofa", "drill bit set", "kitchen sink", "patio chair"]
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda q: client.post(f"{url}/expand", json={"queries": [q]}), queries))
    for query, response in zip(queries, responses):
        assert response.status_code == 200, response.text
        [result] = response.json()["results"]
        check_result(result, query)
        assert result["source"] == "generated"
    assert 2 <= expander.batches <= len(queries)  # micro_batch=4: six queries need at least two calls


@pytest.mark.parametrize("body", [{"queries": []}, {"queries": ["  "]}, {"query": "x"}, {"queries": "drill"}])
def test_bad_requests_get_422(server, body):
    url, _ = server
    response = httpx.post(f"{url}/expand", json=body)
    assert response.status_code == 422 and list(response.json()) == ["error"], response.text


def test_precomputed_file_errors_name_the_line(tmp_path):
    from leser.serve import read_precomputed

    path = tmp_path / "p.jsonl"
    path.write_text('{"query": "a", "expansions": ["b"]}\n\n{"query": "c"}\n')
    with pytest.raises(ConfigError, match=r"p.jsonl:3"):
        read_precomputed(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_precomputed(tmp_path / "missing.jsonl")


def test_cli_serve_passes_its_options(monkeypatch):
    import leser.serve
    from leser.cli import main

    seen = {}
    monkeypatch.setattr(leser.serve, "serve",
                        lambda cfg, **kw: seen.update(kw, model=cfg.policy.model, limits=cfg.serve))
    assert main(["serve", "--model", "some/dir", "--port", "8123", "--precomputed", "h.jsonl"]) == 0
    assert seen == {"host": "127.0.0.1", "port": 8123, "precomputed": "h.jsonl", "micro_batch": 8, "model": "some/dir",
                    "limits": ServeConfig()}
