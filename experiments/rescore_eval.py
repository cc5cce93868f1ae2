"""Score an evaluation's saved expansions again under the current parser and rules, without generating.

``make eval`` writes every expansion to ``expansions.jsonl``. When the parser or the platform rules change,
this re-reads those expansions (each saved list re-parsed as one completion, then filtered by ``usable``),
fuses them with the original query again (RRF k and weight as the report recorded them) and writes
``rescored.md`` / ``rescored.json`` beside the report, with the paired comparison to the original query that
newer reports carry.
The policies are not run again, so a rescored row shows what the change alone does to the same outputs.

    LESER_DATA=../shared/data/home_depot python experiments/rescore_eval.py runs/eval_test300_v2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

from leser.config import load_config
from leser.evaluate import (Row, fused_rankings, markdown_table, mean_scores, original_row, paired_table,
                            paired_with_original, per_query_scores)
from leser.runtime import build_engine
from policy import parse_completion
from retrieval import load_dataset
from reward import RewardConfig, usable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--config", default="experiments/configs/cpu.toml")
    args = ap.parse_args()

    cfg = load_config(args.config)
    report = json.loads((args.eval_dir / "report.json").read_text())
    saved: dict[str, list[dict]] = defaultdict(list)
    for line in (args.eval_dir / "expansions.jsonl").read_text().splitlines():
        item = json.loads(line)
        saved[item["system"]].append(item)
    dataset = load_dataset(cfg.data.path)
    qids = [item["query_id"] for item in next(iter(saved.values()))]
    engine = build_engine(cfg, dataset, "dense")
    base, original = original_row("original query (dense)", dataset, engine, qids)
    rows = [base]
    original_scores = per_query_scores(dataset, qids, list(original[0]), list(original[0]))
    # Fuse as the report did, whatever the config says today: only the parser and the rules may differ.
    # Reports written before rows recorded rrf_k fused at the default, 60.
    generation = next(r["generation"] for r in report["rows"] if r["generation"])
    reward_cfg = dataclasses.replace(cfg.reward, fusion=generation["fusion"],
                                     original_weight=generation["original_weight"],
                                     rrf_k=generation.get("rrf_k", RewardConfig.rrf_k))
    for system, items in saved.items():
        if [i["query_id"] for i in items] != qids:
            raise ValueError(f"{system}: its queries differ from the first system's")
        parsed = [parse_completion("\n".join(i["expansions"]), cfg.prompt.num_expansions) for i in items]
        queries = [dataset.queries[q] for q in qids]
        expansions = [usable(p, q, cfg.rules) for p, q in zip(parsed, queries)]
        fused = fused_rankings(expansions, reward_cfg, engine, original)
        dropped = sum(len(i["expansions"]) - len(e) for i, e in zip(items, expansions))
        # No violation rate: the saved lists were already filtered once, so it would not compare with the report's.
        scores = per_query_scores(dataset, qids, fused, list(original[0]))
        rows.append(Row(f"{system} (rescored, {dropped} expansions dropped)", mean_scores(scores),
                        vs_original=paired_with_original(scores, original_scores)))
    out = {"source": str(args.eval_dir), "split": report["split"], "num_queries": len(qids),
           "rows": [r.__dict__ for r in rows]}
    (args.eval_dir / "rescored.json").write_text(json.dumps(out, indent=1))
    table = markdown_table(out) + "\n\n" + paired_table(out)
    (args.eval_dir / "rescored.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
