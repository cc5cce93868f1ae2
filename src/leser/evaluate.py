"""``make eval``: the original query against expansion policies, on held-out queries.

Rows: the original query (dense engine; BM25 when installed), pseudo-relevance feedback (the query plus its
top result's new words: no model), zero-shot base-model expansions, and each trained checkpoint's expansions.
Expansion rows are fused with the original query exactly as the reward fuses them (``[reward]`` fusion,
original_weight and rrf_k), so eval measures what training optimised.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from leser.config import LeserConfig
from leser.runtime import build_engine, trainable_queries
from retrieval import Dataset, load_dataset, title_expansions
from retrieval.metrics import mrr_at_k, ndcg_at_k, paired_bootstrap, recall_at_k
from reward import RewardConfig, check, fuse_with_original, usable

PSEUDO_RELEVANCE = "@title1"
"""The model path that means no model: pseudo-relevance feedback from the top result's title."""
METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "coverage_increment")
PAIRED_METRICS = ("ndcg@10", "recall@100")
"""The metrics each expansion row is compared on, query by query, with the original query: the issue's two."""


@dataclass
class Row:
    system: str
    metrics: dict[str, float]
    rule_violation_rate: float | None = None
    latency_ms_per_query: float | None = None
    generation: dict | None = None
    vs_original: dict[str, dict[str, float]] | None = None
    """Per metric in PAIRED_METRICS: the mean per-query difference from the original query (dense), its 95%
    bootstrap interval and how many queries went up or down (:func:`retrieval.metrics.paired_bootstrap`)."""
    examples: list[dict] = field(default_factory=list)


def per_query_scores(dataset: Dataset, qids: list[str], rankings: list[torch.Tensor],
                     originals: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Each metric of METRICS per query ``[len(qids)]``; ``rankings[i]`` and ``originals[i]`` are ranked
    catalog rows for qids[i]."""
    rel = dataset.relevant_gain
    scores = {k: np.zeros(len(qids)) for k in METRICS}
    for i, (qid, ranked, orig) in enumerate(zip(qids, rankings, originals)):
        gains = dataset.qrels.get(qid, {})
        r100 = recall_at_k(ranked, gains, 100, rel)
        scores["ndcg@10"][i] = ndcg_at_k(ranked, gains, 10)
        scores["recall@10"][i] = recall_at_k(ranked, gains, 10, rel)
        scores["recall@100"][i] = r100
        scores["mrr@10"][i] = mrr_at_k(ranked, gains, 10, rel)
        scores["coverage_increment"][i] = r100 - recall_at_k(orig, gains, 100, rel)
    return scores


def mean_scores(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean of each per-query metric (0 when there are no queries)."""
    return {k: float(v.mean()) if len(v) else 0.0 for k, v in scores.items()}


def score_rankings(dataset: Dataset, qids: list[str], rankings: list[torch.Tensor],
                   originals: list[torch.Tensor]) -> dict[str, float]:
    """Mean metrics over queries."""
    return mean_scores(per_query_scores(dataset, qids, rankings, originals))


def paired_with_original(system: dict[str, np.ndarray], original: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Row.vs_original from two :func:`per_query_scores` of the same queries: whether a row's lead over the
    original query is larger than the sample's noise."""
    return {m: paired_bootstrap(system[m] - original[m]) for m in PAIRED_METRICS}


@dataclass
class Expansions:
    """One policy's expansions of a list of queries, with what producing them cost."""

    expansions: list[list[str]]
    violations: list[list[str]]
    seconds: float


def generate_expansions(model_path: str | None, cfg: LeserConfig, dataset: Dataset, qids: list[str],
                        original_ids: torch.Tensor) -> Expansions:
    """Expand every query with the policy at ``model_path``, shown the engine's top results as context."""
    from policy import expand_queries, load_policy

    model, tokenizer = load_policy(model_path, dtype=cfg.policy.dtype)
    texts = dataset.product_texts
    queries = [dataset.queries[q] for q in qids]
    contexts = [[texts[r] for r in row[: cfg.prompt.context_k].tolist() if r >= 0] for row in original_ids]
    start = time.perf_counter()
    parsed = expand_queries(model, tokenizer, queries, contexts, cfg.prompt, max_new_tokens=cfg.eval.max_new_tokens,
                            temperature=cfg.eval.temperature, batch_size=cfg.eval.batch_queries)
    seconds = time.perf_counter() - start
    violations = [check(p, q, cfg.rules) for p, q in zip(parsed, queries)]
    expansions = [usable(p, q, cfg.rules) for p, q in zip(parsed, queries)]
    return Expansions(expansions, violations, seconds)


def fused_rankings(expansions: list[list[str]], reward_cfg: RewardConfig, engine,
                   original: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
    """Each query's original list fused with its expansions' lists, as the reward fuses them."""
    orig_ids, orig_scores = original
    unique = list(dict.fromkeys(e for es in expansions for e in es))
    depth = max(100, reward_cfg.coverage_k)
    exp_ids, exp_scores = engine.search(unique, depth) if unique else (None, None)
    where = {t: n for n, t in enumerate(unique)}
    return [
        fuse_with_original(orig_ids[j], [exp_ids[where[e]] for e in es], reward_cfg, orig_scores[j],
                           [exp_scores[where[e]] for e in es])
        for j, es in enumerate(expansions)
    ]


def pseudo_relevance_expansions(cfg: LeserConfig, dataset: Dataset, qids: list[str],
                                original_ids: torch.Tensor) -> Expansions:
    """One expansion per query, no model: the query plus the new words of its top result's title."""
    start = time.perf_counter()
    queries = [dataset.queries[q] for q in qids]
    expansions = [title_expansions(q, [dataset.product_texts[int(row[0])]], cfg.rules.max_words, cfg.rules.max_chars)
                  for q, row in zip(queries, original_ids)]
    seconds = time.perf_counter() - start
    return Expansions(expansions, [check(e, q, cfg.rules) for e, q in zip(expansions, queries)], seconds)


def expansion_row(label: str, model_path: str | None, cfg: LeserConfig, dataset: Dataset, engine,
                  qids: list[str], original: tuple[torch.Tensor, torch.Tensor]) -> tuple[Row, Expansions]:
    """Expand every query (with the policy at ``model_path``, or by pseudo-relevance feedback when it is
    :data:`PSEUDO_RELEVANCE`), fuse each with its original list, and score."""
    fusion = {"fusion": cfg.reward.fusion, "original_weight": cfg.reward.original_weight, "rrf_k": cfg.reward.rrf_k}
    if model_path == PSEUDO_RELEVANCE:
        out = pseudo_relevance_expansions(cfg, dataset, qids, original[0])
        generation = {"method": "query + new words of the top result's title", "max_words": cfg.rules.max_words,
                      **fusion}
    else:
        out = generate_expansions(model_path, cfg, dataset, qids, original[0])
        generation = {"temperature": cfg.eval.temperature, "max_new_tokens": cfg.eval.max_new_tokens,
                      "context_k": cfg.prompt.context_k, "num_expansions": cfg.prompt.num_expansions, **fusion}
    print(f"  {label}: {len(qids)} queries expanded in {out.seconds:.0f}s", flush=True)
    fused = fused_rankings(out.expansions, cfg.reward, engine, original)
    originals = list(original[0])
    scores = per_query_scores(dataset, qids, fused, originals)
    row = Row(
        system=label,
        metrics=mean_scores(scores),
        vs_original=paired_with_original(scores, per_query_scores(dataset, qids, originals, originals)),
        rule_violation_rate=sum(bool(v) for v in out.violations) / len(qids),
        latency_ms_per_query=1000 * out.seconds / len(qids),
        generation=generation,
        examples=[{"query": dataset.queries[qids[j]], "expansions": out.expansions[j]}
                  for j in range(min(5, len(qids)))],
    )
    return row, out


def original_row(label: str, dataset: Dataset, engine, qids: list[str]) -> tuple[Row, tuple]:
    ids, scores = engine.search([dataset.queries[q] for q in qids], 100)
    return Row(label, score_rankings(dataset, qids, list(ids), list(ids))), (ids, scores)


def _checkpoint_rows(cfg: LeserConfig) -> list[tuple[str, str]]:
    rows = []
    for item in cfg.eval.checkpoints:
        label, sep, path = item.partition("=")
        rows.append((label, path) if sep else (f"trained ({Path(item).name})", item))
    return rows


def check_checkpoint_paths(cfg: LeserConfig) -> None:
    """Every trained row's folder must exist and hold an HF model: a typo must fail in a second, not after
    the 15-20 minutes of zero-shot generation that come before the checkpoint rows."""
    for label, path in _checkpoint_rows(cfg):
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            problem = "not an HF model folder (no config.json)" if folder.is_dir() else "no such folder"
            raise FileNotFoundError(f"[eval] checkpoint {label!r}: {folder}: {problem}")


def run_evaluation(cfg: LeserConfig) -> dict:
    check_checkpoint_paths(cfg)
    dataset = load_dataset(cfg.data.path)
    print(dataset.summary())
    qids = trainable_queries(cfg, dataset, cfg.eval.split)[: cfg.eval.max_queries]
    if not qids:
        raise ValueError(f"no judged queries in split {cfg.eval.split!r}")
    print(f"evaluating {len(qids)} {cfg.eval.split} queries")
    dense = build_engine(cfg, dataset, "dense")
    rows: list[Row] = []
    row, original = original_row("original query (dense)", dataset, dense, qids)
    rows.append(row)
    try:
        rows.append(original_row("original query (BM25)", dataset, build_engine(cfg, dataset, "bm25"), qids)[0])
    except ImportError as err:
        print(f"skipping BM25: {err}")
    policies = [("pseudo-relevance feedback (no model)", PSEUDO_RELEVANCE)] if cfg.eval.pseudo_relevance else []
    policies += [("zero-shot base model", cfg.policy.model)] if cfg.eval.zero_shot else []
    generated = []
    for label, path in policies + _checkpoint_rows(cfg):
        row, out = expansion_row(label, path, cfg, dataset, dense, qids, original)
        rows.append(row)
        generated.append((label, out))

    report = {
        "dataset": dataset.name,
        "split": cfg.eval.split,
        "num_queries": len(qids),
        "engine": asdict(cfg.engine),
        "conventions": {"ndcg_gain": "dataset gain (Home Depot: relevance - 1)",
                        "relevant_gain": dataset.relevant_gain},
        "rows": [asdict(r) for r in rows],
    }
    write_report(report, Path(cfg.eval.output_dir))
    write_expansions(generated, dataset, qids, Path(cfg.eval.output_dir) / "expansions.jsonl")
    return report


def write_expansions(generated: list[tuple[str, Expansions]], dataset: Dataset, qids: list[str], path: Path) -> None:
    """Every expansion behind the report, one JSON line per (system, query): to read, or to re-fuse offline."""
    with path.open("w") as f:
        for label, out in generated:
            for qid, expansions, violations in zip(qids, out.expansions, out.violations):
                f.write(json.dumps({"system": label, "query_id": qid, "query": dataset.queries[qid],
                                    "expansions": expansions, "violations": violations}) + "\n")


def markdown_table(report: dict) -> str:
    head = "| system | nDCG@10 | R@10 | R@100 | MRR@10 | coverage + | rule violations | ms/query |"
    lines = [head, "|" + "---|" * 8]
    for r in report["rows"]:
        m = r["metrics"]
        viol = "" if r["rule_violation_rate"] is None else f"{r['rule_violation_rate']:.1%}"
        lat = "" if r["latency_ms_per_query"] is None else f"{r['latency_ms_per_query']:.0f}"
        lines.append(f"| {r['system']} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['recall@100']:.4f} | "
                     f"{m['mrr@10']:.4f} | {m['coverage_increment']:+.4f} | {viol} | {lat} |")
    return "\n".join(lines)


def paired_table(report: dict) -> str:
    """The rows with a paired comparison: difference from the original query, 95% interval, queries up / down."""
    names = {"ndcg@10": "nDCG@10", "recall@100": "R@100"}
    rows = [r for r in report["rows"] if r.get("vs_original")]
    if not rows:
        return ""
    metrics = list(rows[0]["vs_original"])
    head = "| system | " + " | ".join(f"{names.get(m, m)} - original [95% CI] | queries up / down" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(metrics))]
    for r in rows:
        cells = []
        for m in metrics:
            d = r["vs_original"][m]
            cells += [f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]", f"{d['better']} / {d['worse']}"]
        lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    md = [f"# Evaluation: {report['dataset']} {report['split']} split, {report['num_queries']} queries", "",
          markdown_table(report), ""]
    paired = paired_table(report)
    if paired:
        md += ["Paired with the original query (dense), query by query (bootstrap over queries, 10,000 resamples):",
               "", paired, ""]
    for r in report["rows"]:
        if r["generation"]:
            md.append(f"- {r['system']}: generation {json.dumps(r['generation'])}")
    (out / "report.md").write_text("\n".join(md) + "\n")
    _plot(report, out / "report.png")
    print("\n" + markdown_table(report) + ("\n\n" + paired if paired else "") + f"\n\nwrote {out}/report.md, report.json")


def _plot(report: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install leser[plot]): no report.png")
        return
    names = [r["system"] for r in report["rows"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, metric in zip(axes, ("ndcg@10", "recall@100")):
        values = [r["metrics"][metric] for r in report["rows"]]
        ax.bar_label(ax.barh(names, values), fmt="%.4f", padding=2, fontsize=8)
        ax.axvline(values[0], color="k", linestyle="--", linewidth=0.8)  # the original query: the bar to beat
        ax.set_xlim(0, max(values) * 1.25)
        ax.set_title(metric)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
