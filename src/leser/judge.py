"""``leser judge train | eval``: the relevance judge, trained on the training split, measured on valid.

The report sets the judge beside the engine's own scores of the same pairs (the dense engine's cosine, BM25),
on the valid split's judged products: a judge that orders them no better than the engine cannot tell the
reward which new products are relevant.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from grpo.provenance import provenance
from leser.config import LeserConfig
from leser.runtime import Engines, build_plan
from retrieval import Dataset, load_dataset
from retrieval.encoder import default_encoder_path
from reward.relevance_judge import RelevanceJudge
from reward.judge_train import fine_tune, judged_item_metrics, save_judge, training_pairs


def judge_bf16(precision: str, device: torch.device) -> bool:
    """Whether the judge runs bf16: ``[judge] precision`` as set, or under ``auto`` where bf16 is native."""
    from policy.precision import resolve_precision

    return resolve_precision(precision, device, name="judge.precision") == "bf16"


def load_judge(cfg: LeserConfig) -> RelevanceJudge:
    """The trained judge of ``[judge]``, in the precision it asks for."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return RelevanceJudge(cfg.judge.folder, max_length=cfg.judge.max_length, bf16=judge_bf16(cfg.judge.precision,
                                                                                                device))


def judged_train_queries(cfg: LeserConfig, dataset: Dataset) -> list[str]:
    """The training split's judged queries (sorted by id), capped by ``[judge] max_train_queries``."""
    return sorted(q for q in dataset.split("train") if dataset.qrels.get(q))[: cfg.judge.max_train_queries]


def train(cfg: LeserConfig) -> Path:
    """Fine-tune the judge on the training split, save it to ``[judge] output_dir``, then report it on valid."""
    jc = cfg.judge
    dataset = load_dataset(cfg.data.path)
    print(dataset.summary())
    engines = Engines(cfg, dataset)
    plan = build_plan(cfg, dataset, engines=engines)
    qids = judged_train_queries(cfg, dataset)
    rankings = {}
    for start in tqdm(range(0, len(qids), 512), desc="hard negatives", unit="x512 queries"):
        chunk = qids[start:start + 512]
        for qid, ranking in zip(chunk, plan.rank([dataset.queries[q] for q in chunk])):
            rankings[qid] = ranking[: jc.hard_negative_depth].tolist()
    pairs = training_pairs(dataset, qids, rankings, jc)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    judge = RelevanceJudge(jc.base_model or default_encoder_path(), max_length=jc.max_length, new_head=True,
                           bf16=judge_bf16(jc.precision, device))
    print(f"judge: fine-tuning {jc.base_model or 'all-MiniLM-L6-v2'} on {len(pairs):,} pairs of {len(qids):,} "
          f"training queries ({'bf16' if judge.bf16 else 'fp32'})")
    log_path = Path(jc.output_dir) / "judge_training_log.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        summary = fine_tune(judge, pairs, jc, log=lambda row: (log.write(json.dumps(row) + "\n"), log.flush()))
    summary["queries"] = len(qids)
    folder = save_judge(judge, jc.output_dir, jc, dataset, summary, provenance(cfg.to_dict()))
    print(f"judge: {summary['steps']} batches in {summary['seconds']:.0f} s, saved to {folder}")
    evaluate(cfg, judge=judge, dataset=dataset, engines=engines, out_dir=folder)
    return folder


def engine_scorers(dataset: Dataset, engines: Engines) -> dict:
    """The engine's own score of (query, catalog rows): the dense engine's cosine and stemmed BM25."""
    dense, bm25 = engines.get("dense"), engines.get("bm25")

    def cosine(query: str, rows: list[int]) -> np.ndarray:
        return (dense.embeddings[rows] @ dense.encoder.encode([query])[0]).numpy()

    def lexical(query: str, rows: list[int]) -> np.ndarray:
        tokens = bm25.tokenizer.tokenize([query], update_vocab=False, show_progress=False, return_as="ids")[0]
        return bm25.retriever.get_scores(list(tokens))[rows] if tokens else np.zeros(len(rows))

    return {"dense cosine": cosine, "bm25": lexical}


def evaluate(cfg: LeserConfig, judge: RelevanceJudge | None = None, dataset: Dataset | None = None,
             engines: Engines | None = None, out_dir: str | Path | None = None) -> dict:
    """The judge against the engine's scores on the valid split's judged products (never test): written to
    ``judge_report.json`` and ``.md`` in ``out_dir`` (default: the judge's folder)."""
    dataset = dataset or load_dataset(cfg.data.path)
    engines = engines or Engines(cfg, dataset)
    judge = judge or load_judge(cfg)
    qids = sorted(q for q in dataset.split("valid") if len(dataset.qrels.get(q, {})) >= 2)[: cfg.judge.eval_queries]
    texts = dataset.product_texts
    scorers = {"judge": lambda q, rows: judge.rows(q, rows, texts).numpy(), **engine_scorers(dataset, engines)}
    table = judged_item_metrics(dataset, qids, scorers)
    report = {"split": "valid", "num_queries": len(qids), "judge": str(cfg.judge.folder), "scorers": table,
              **provenance(cfg.to_dict())}
    out = Path(out_dir or cfg.judge.folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge_report.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Relevance judge on {len(qids)} valid queries' judged products", "",
             "| scorer | nDCG@10 re-ranking judged items | pairwise accuracy | AUC relevant vs not |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {m['ndcg@10_rerank']:.4f} | {m['pairwise_accuracy']:.4f} | {m['auc']:.4f} |"
              for name, m in table.items()]
    (out / "judge_report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return report
