"""``make eval``: the original query against expansion policies, on held-out queries, on every engine.

Each policy expands each query once, shown the top results of the configured plan (``[engine]``): that is
what it sees when served. Its expansions are then scored on every plan of ``[eval] engines`` (dense, BM25,
hybrid), each fused exactly as the reward fuses them (:class:`retrieval.RetrievalPlan`), and compared query
by query with that plan's own original query and with the pseudo-relevance row (the no-model bar).
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from grpo.provenance import provenance as run_provenance
from leser.config import LeserConfig, checkpoint_overrides, load_config
from leser.judge import load_judge
from leser.report import write_report
from leser.runtime import Engines, build_plan, build_speller
from leser.queries import trainable_queries
from leser.scoring import ORIGINAL, PSEUDO_RELEVANCE, PSEUDO_RELEVANCE_ONE_LINE, EngineScores, Expansions
from retrieval import Dataset, load_dataset, title_expansions
from retrieval.plan import RetrievalPlan, top_titles
from reward import SearchReward, check, usable
from reward.line_choice import greedy_lines, line_pool

def generate_expansions(model_path: str | None, cfg: LeserConfig, queries: list[str],
                        contexts: list[list[str]], shown: list[str] | None = None, num_samples: int = 0) -> Expansions:
    """Expand every query with the policy at ``model_path``, shown its context titles and the query as ``shown``
    (default: as typed); the rules judge the expansions against the query as typed, as the reward does. With
    ``num_samples``, also that many sampled completions per query (``[eval] judge_choice_temperature``)."""
    shown = shown or queries
    from policy import expand_queries, load_policy, sample_expansions

    stored = checkpoint_overrides(model_path, sections=("prompt",))
    if stored:
        # The policy is prompted as it was trained; the rules stay the platform's, the same for every row.
        print(f"  {model_path}: prompted with the [prompt] it was trained with (leser_settings.json)")
        cfg = dataclasses.replace(cfg, prompt=load_config(None, stored).prompt)
    model, tokenizer = load_policy(model_path, dtype=cfg.policy.dtype)
    parsed, start, size = [], time.perf_counter(), cfg.eval.batch_queries
    for i in tqdm(range(0, len(queries), size), desc="  generating", unit="batch", leave=False):
        parsed += expand_queries(model, tokenizer, shown[i:i + size], contexts[i:i + size], cfg.prompt,
                                 max_new_tokens=cfg.eval.max_new_tokens, temperature=cfg.eval.temperature,
                                 batch_size=size, distinct_lines=cfg.eval.distinct_lines)
    seconds = time.perf_counter() - start
    generation = {"temperature": cfg.eval.temperature, "max_new_tokens": cfg.eval.max_new_tokens,
                  "distinct_lines": cfg.eval.distinct_lines,
                  "context_k": cfg.prompt.context_k, "num_expansions": cfg.prompt.num_expansions}
    samples = None
    if num_samples:
        sampled = sample_expansions(model, tokenizer, shown, contexts, cfg.prompt, num_samples,
                                    temperature=cfg.eval.judge_choice_temperature,
                                    max_new_tokens=cfg.eval.max_new_tokens, batch_size=size)
        samples = [[usable(p, q, cfg.rules) for p in per_query] for per_query, q in zip(sampled, queries)]
        generation["sample_seconds"] = time.perf_counter() - start - seconds
    return Expansions([usable(p, q, cfg.rules) for p, q in zip(parsed, queries)],
                      [check(p, q, cfg.rules) for p, q in zip(parsed, queries)], seconds, generation, samples)


def judge_choice_expansions(cfg: LeserConfig, reward: SearchReward, qids: list[str], queries: list[str],
                            pools: list[list[str]], base: Expansions, pool_source: str) -> Expansions:
    """Up to ``[prompt] num_expansions`` lines per query, chosen by ``reward`` (the judge's) among ``pools[i]``
    (:func:`reward.line_choice.greedy_lines`); its time adds to ``base``'s, which made the pools."""
    start = time.perf_counter()
    most = min(cfg.prompt.num_expansions, cfg.rules.max_expansions)
    chosen = greedy_lines(reward, qids, pools, most=most)
    generation = {**base.generation, "chosen_by": "relevance judge reward, greedy forward selection",
                  "pool": pool_source, "mean_pool_lines": float(np.mean([len(p) for p in pools])), "most_lines": most}
    return Expansions(chosen, [check(e, q, cfg.rules) for e, q in zip(chosen, queries)],
                      base.seconds + time.perf_counter() - start, generation)


def judge_choice_pools(cfg: LeserConfig, out: Expansions, queries: list[str], contexts: list[list[str]],
                       shown: list[str]) -> tuple[list[list[str]], Expansions, str]:
    """The lines the judge chooses among for a row: a policy's greedy and sampled lines, or, for the no-model row,
    the pseudo-relevance line of each of the ``context_k`` titles the policy is shown (the same information)."""
    if out.samples is not None:
        pools = [line_pool([greedy, *sampled]) for greedy, sampled in zip(out.expansions, out.samples)]
        base = dataclasses.replace(out, seconds=out.seconds + out.generation["sample_seconds"])
        return pools, base, (f"distinct lines of the greedy completion and {cfg.eval.judge_choice_samples} samples "
                             f"at T {cfg.eval.judge_choice_temperature}")
    base = pseudo_relevance_expansions(cfg, queries, contexts, shown, lines=cfg.prompt.context_k)
    return base.expansions, base, f"the pseudo-relevance line of each of the top {cfg.prompt.context_k} titles"


def pseudo_relevance_expansions(cfg: LeserConfig, queries: list[str], contexts: list[list[str]],
                                shown: list[str] | None = None, lines: int | None = None) -> Expansions:
    """No model: the query (as ``shown``, default as typed) plus the new words of each of the top ``lines``
    context titles, one line a title. ``lines`` defaults to the policy's budget (``[prompt] num_expansions``,
    within ``[rules] max_expansions``), so the no-model row writes as many lines as the policy."""
    start = time.perf_counter()
    lines = lines or min(cfg.prompt.num_expansions, cfg.rules.max_expansions)
    expansions = [title_expansions(q, c[:lines], cfg.rules.max_words, cfg.rules.max_chars)
                  for q, c in zip(shown or queries, contexts)]
    return Expansions(expansions, [check(e, q, cfg.rules) for e, q in zip(expansions, queries)],
                      time.perf_counter() - start,
                      {"method": f"query + new words of each of the top {lines} titles, a line each", "lines": lines,
                       "max_words": cfg.rules.max_words})


def _checkpoint_rows(cfg: LeserConfig) -> list[tuple[str, str]]:
    rows = []
    for item in cfg.eval.checkpoints:
        label, sep, path = item.partition("=")
        rows.append((label, path) if sep else (f"trained ({Path(item).name})", item))
    return rows


def provenance(cfg: LeserConfig) -> dict:
    """The commit, the date and the resolved config (:func:`grpo.provenance.provenance`)."""
    return run_provenance(cfg.to_dict())


def check_checkpoint_paths(cfg: LeserConfig) -> None:
    """Every trained row's folder must exist and hold an HF model: a typo must fail in a second, not after
    the 15-20 minutes of zero-shot generation that come before the checkpoint rows."""
    for label, path in _checkpoint_rows(cfg):
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            problem = "not an HF model folder (no config.json)" if folder.is_dir() else "no such folder"
            raise FileNotFoundError(f"[eval] checkpoint {label!r}: {folder}: {problem}")


def context_depth(cfg: LeserConfig, model_paths: list[str | None]) -> int:
    """How many top titles to fetch per query: the most any policy's prompt shows, the configured ``context_k`` or
    a checkpoint's stored one (a policy trained on 20 titles is shown 20 under a config that says 5)."""
    stored = [checkpoint_overrides(path, sections=("prompt",)) for path in model_paths if path]
    return max([cfg.prompt.context_k, *(load_config(None, s).prompt.context_k for s in stored if s)])


def run_evaluation(cfg: LeserConfig) -> dict:
    check_checkpoint_paths(cfg)
    dataset = load_dataset(cfg.data.path)
    print(dataset.summary())
    qids = trainable_queries(cfg, dataset, cfg.eval.split)[: cfg.eval.max_queries]
    if not qids:
        raise ValueError(f"no judged queries in split {cfg.eval.split!r}")
    kinds = list(dict.fromkeys([cfg.engine.kind, *cfg.eval.engines]))
    engines = Engines(cfg, dataset)
    by_engine = {k: EngineScores(build_plan(cfg, dataset, k, engines), dataset, qids)
                 for k in tqdm(kinds, desc="original queries", unit="engine")}
    queries = [dataset.queries[q] for q in qids]
    policies = [(PSEUDO_RELEVANCE, None)] if cfg.eval.pseudo_relevance else []
    policies += [(PSEUDO_RELEVANCE_ONE_LINE, None)] if cfg.eval.pseudo_relevance_one_line else []
    policies += [("zero-shot base model", cfg.policy.model or "")] if cfg.eval.zero_shot else []
    checkpoints = _checkpoint_rows(cfg)
    policies += checkpoints
    # Each policy's prompt then shows the first context_k titles it was trained with.
    depth = context_depth(cfg, [path for _, path in policies])
    print(f"evaluating {len(qids)} {cfg.eval.split} queries on {', '.join(kinds)}; "
          f"policies see the {cfg.engine.kind} plan's top titles (up to {depth})")
    contexts = [top_titles(dataset.product_texts, r, depth) for r in by_engine[kinds[0]].originals]
    shown = queries  # what the expanders see: as typed, or with its typos fixed; the engine runs it as typed
    speller = build_speller(cfg, dataset, by_engine[kinds[0]].plan)
    if speller is not None:
        shown = [speller.correct(q, c[: cfg.prompt.context_k]) for q, c in zip(queries, contexts)]
        print(f"expanders see {sum(s != q for s, q in zip(shown, queries))} queries with their typos fixed")

    report = {"dataset": dataset.name, "split": cfg.eval.split, "num_queries": len(qids), "engines": kinds,
              "context_plan": by_engine[kinds[0]].plan.describe(), **provenance(cfg),
              "conventions": {"ndcg_gain": "dataset gain (Home Depot: relevance - 1)",
                              "relevant_gain": dataset.relevant_gain},
              "checkpoints": dict(_checkpoint_rows(cfg)),
              "rows": [asdict(e.row(ORIGINAL)) for e in by_engine.values()]}
    out_dir = Path(cfg.eval.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    judge_reward = None  # built at the first judge-chosen row
    with (out_dir / "expansions.jsonl").open("w") as jsonl:
        for label, path in policies:
            print(f"- {label}", flush=True)
            if label in (PSEUDO_RELEVANCE, PSEUDO_RELEVANCE_ONE_LINE):
                lines = 1 if label == PSEUDO_RELEVANCE_ONE_LINE else None
                out = pseudo_relevance_expansions(cfg, queries, contexts, shown, lines=lines)
            else:
                samples = cfg.eval.judge_choice_samples if (label, path) in checkpoints else 0
                out = generate_expansions(path or None, cfg, queries, contexts, shown, num_samples=samples)
            for scores in by_engine.values():
                scores.add(label, out.expansions)
                report["rows"].append(asdict(scores.row(label, out)))
            write_expansions(jsonl, label, qids, queries, out)
            write_report(report, out_dir, quiet=True)  # each finished row is on disk at once
            if cfg.eval.judge_choice_samples and (out.samples is not None or label == PSEUDO_RELEVANCE):
                chosen_label = (f"{label} + judge's choice of {cfg.eval.judge_choice_samples} samples"
                                if out.samples is not None else
                                f"pseudo-relevance, judge's choice of the top {cfg.prompt.context_k} titles' lines")
                print(f"- {chosen_label}", flush=True)
                judge_reward = judge_reward or build_judge_reward(cfg, dataset, by_engine[kinds[0]].plan)
                pools, base, source = judge_choice_pools(cfg, out, queries, contexts, shown)
                chosen = judge_choice_expansions(cfg, judge_reward, qids, queries, pools, base, source)
                for scores in by_engine.values():
                    scores.add(chosen_label, chosen.expansions)
                    report["rows"].append(asdict(scores.row(chosen_label, chosen)))
                write_expansions(jsonl, chosen_label, qids, queries, chosen, pools=pools)
                write_report(report, out_dir, quiet=True)
    write_report(report, out_dir)
    return report


def build_judge_reward(cfg: LeserConfig, dataset: Dataset, plan: RetrievalPlan) -> SearchReward:
    """The judge's reward on ``plan``, as training computes it (``reward.relevance = "judge"``, fused list): it
    reads no labels, so it may choose lines of any split's queries."""
    reward_cfg = dataclasses.replace(cfg.reward, relevance="judge", relevance_on="fused", headroom_only=False)
    return SearchReward(dataset, plan, reward_cfg, cfg.rules, judge=load_judge(cfg))


def write_expansions(f, label: str, qids: list[str], queries: list[str], out: Expansions,
                     pools: list[list[str]] | None = None) -> None:
    """Every expansion behind the report, one JSON line per (system, query): to read, or to re-fuse offline. A
    judge-chosen row also records each query's ``pool`` of lines it chose from, so another choice can be made
    offline without generating again."""
    for i, (qid, query, expansions, violations) in enumerate(zip(qids, queries, out.expansions, out.violations)):
        record = {"system": label, "query_id": qid, "query": query, "expansions": expansions,
                  "violations": violations}
        f.write(json.dumps(record if pools is None else {**record, "pool": pools[i]}) + "\n")
    f.flush()
