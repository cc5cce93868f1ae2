"""Do the policy's lines add to PRF's when the judge chooses? VALID queries, hybrid plan, from a finished eval.

Reads an eval run with ``[eval] judge_choice_samples`` (its ``expansions.jsonl``) and lets the judge's reward
choose up to 3 lines (:func:`reward.line_choice.greedy_lines`) among the union of three of its rows' lines: the
policy's judge-chosen lines, PRF's judge-chosen lines and the three-line PRF's. Each is label-free, so the union
is a system a server could run. Paired with the three-line PRF and with PRF's judge-chosen row. With ``--wide``
(an eval that recorded each row's ``pool``), also the go/no-go probe's wide no-model pool
(``relaxation_headroom.wide_pool``) chosen by the judge, alone and joined by the policy's whole pool. Never run
on test.

    python experiments/probes/judge_union_choice.py runs/eval_valid_choice/expansions.jsonl \
        --set engine.correct_spelling=true --output runs/eval_valid_choice/union.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
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
    ap.add_argument("--wide", action="store_true", help="also the wide pool, alone and with the policy's pool")
    ap.add_argument("--output", type=Path, required=True)
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    systems = rows_by_system(args.expansions)
    policy, prf_judge = pick(systems, args.policy), pick(systems, "pseudo-relevance, judge")
    prf = systems[PSEUDO_RELEVANCE]
    dataset = load_dataset(cfg.data.path)
    qids = list(prf)
    engines = Engines(cfg, dataset)
    plan = build_plan(cfg, dataset, "hybrid", engines)
    pools = [line_pool([systems[policy][q], systems[prf_judge][q], prf[q]]) for q in qids]
    reward = build_judge_reward(cfg, dataset, plan)
    union = greedy_lines(reward, qids, pools, most=3)
    scores = EngineScores(plan, dataset, qids)
    for name, lines in ((PSEUDO_RELEVANCE, [prf[q] for q in qids]),
                        (prf_judge, [systems[prf_judge][q] for q in qids]), ("union", union)):
        scores.add(name, lines)
    out = {"expansions": str(args.expansions), "num_queries": len(qids), "mean_pool_lines":
           sum(map(len, pools)) / len(pools), "mean_lines": sum(map(len, union)) / len(union),
           "union vs original": paired(scores.scores["union"], scores.scores["original query"]),
           "union vs PRF (3 lines)": paired(scores.scores["union"], scores.scores[PSEUDO_RELEVANCE]),
           "union vs PRF, judge's choice": paired(scores.scores["union"], scores.scores[prf_judge])}
    if args.wide:
        from relaxation_headroom import wide_pool

        policy_pools = {}
        for line in args.expansions.read_text().splitlines():
            record = json.loads(line)
            if record["system"] == policy:
                policy_pools[record["query_id"]] = record["pool"]
        wide = wide_pool(cfg, dataset, engines, scores, qids)[0]
        for name, pool in (("wide", wide), ("wide + policy pool", [w + policy_pools[q] for w, q in zip(wide, qids)])):
            scores.add(name, greedy_lines(reward, qids, [line_pool([p]) for p in pool], most=3))
            out[f"{name} vs original"] = paired(scores.scores[name], scores.scores["original query"])
            out[f"{name} vs PRF (3 lines)"] = paired(scores.scores[name], scores.scores[PSEUDO_RELEVANCE])
        out["wide + policy pool vs wide"] = paired(scores.scores["wide + policy pool"], scores.scores["wide"])
    for key, value in out.items():
        print(key, value, flush=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
