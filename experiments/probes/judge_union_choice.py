"""Do the policy's lines add to PRF's when the judge chooses? VALID queries, hybrid plan, from a finished eval.

Reads an eval run with ``[eval] judge_choice_samples`` (its ``expansions.jsonl``) and lets the judge's reward
choose up to 3 lines (:func:`reward.line_choice.greedy_lines`) among the union of three of its rows' lines: the
policy's judge-chosen lines, PRF's judge-chosen lines and the three-line PRF's. Each is label-free, so the union
is a system a server could run. Paired with the three-line PRF and with PRF's judge-chosen row. Never run on test.

    python experiments/probes/judge_union_choice.py runs/eval_valid_choice/expansions.jsonl \
        --set engine.correct_spelling=true --output runs/eval_valid_choice/union.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pair_rows import pick, rows_by_system  # noqa: E402

from leser.config import load_config  # noqa: E402
from leser.evaluate import build_judge_reward  # noqa: E402
from leser.scoring import PSEUDO_RELEVANCE, EngineScores, paired  # noqa: E402
from leser.runtime import Engines, build_plan  # noqa: E402
from reward.line_choice import greedy_lines, line_pool  # noqa: E402
from retrieval import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("expansions", type=Path)
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--policy", default="labels warm start + judge", help="the policy's judge-chosen row (prefix)")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    systems = rows_by_system(args.expansions)
    policy, prf_judge = pick(systems, args.policy), pick(systems, "pseudo-relevance, judge")
    prf = systems[PSEUDO_RELEVANCE]
    dataset = load_dataset(cfg.data.path)
    qids = list(prf)
    plan = build_plan(cfg, dataset, "hybrid", Engines(cfg, dataset))
    pools = [line_pool([systems[policy][q], systems[prf_judge][q], prf[q]]) for q in qids]
    union = greedy_lines(build_judge_reward(cfg, dataset, plan), qids, pools, most=3)
    scores = EngineScores(plan, dataset, qids)
    for name, lines in ((PSEUDO_RELEVANCE, [prf[q] for q in qids]),
                        (prf_judge, [systems[prf_judge][q] for q in qids]), ("union", union)):
        scores.add(name, lines)
    out = {"expansions": str(args.expansions), "num_queries": len(qids), "mean_pool_lines":
           sum(map(len, pools)) / len(pools), "mean_lines": sum(map(len, union)) / len(union),
           "union vs original": paired(scores.scores["union"], scores.scores["original query"]),
           "union vs PRF (3 lines)": paired(scores.scores["union"], scores.scores[PSEUDO_RELEVANCE]),
           "union vs PRF, judge's choice": paired(scores.scores["union"], scores.scores[prf_judge])}
    for key, value in out.items():
        print(key, value, flush=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
