"""Does the judge reward rank an eval's rows as the judgements do? VALID queries only, no policy.

Reads the ``expansions.jsonl`` of a ``leser eval`` run and scores every system's lines with two rewards as
training computes them (:class:`reward.SearchReward`, fused list, deep term): the judge's
(``reward.relevance = "judge"``, no labels) and the labels' (reads the valid judgements). Per system: the mean
of each reward's total and parts, and the mean number of lines. If the judge reward puts a row the labels call
worse (say one line) above a better one (three PRF lines), a policy trained on it learns the judge's view,
whatever the optimiser does. Never run on test.

    python experiments/probes/reward_of_eval_rows.py runs/eval_valid/expansions.jsonl --set judge.model='"runs/judge"'
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict

from leser.config import load_config
from leser.judge import load_judge
from leser.runtime import build_plan, build_speller
from retrieval import load_dataset
from reward import PART_NAMES, SearchReward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("expansions", help="an eval's expansions.jsonl (valid split)")
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. judge.model='\"runs/judge\"'")
    ap.add_argument("--output", default="runs/probe_reward_of_eval_rows.json")
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    dataset = load_dataset(cfg.data.path)
    valid = set(dataset.split("valid"))
    rows: dict[str, tuple[list[str], list[list[str]]]] = defaultdict(lambda: ([], []))
    with open(args.expansions) as f:
        for line in f:
            record = json.loads(line)
            if record["query_id"] not in valid:
                raise SystemExit(f"{record['query_id']} is not a valid query: this probe reads valid labels only")
            rows[record["system"]][0].append(record["query_id"])
            rows[record["system"]][1].append(record["expansions"])

    plan = build_plan(cfg, dataset)
    judge = load_judge(cfg)
    speller = build_speller(cfg, dataset, plan)
    rewards = {mode: SearchReward(dataset, plan, dataclasses.replace(cfg.reward, relevance=mode, headroom_only=False),
                                  cfg.rules, speller=speller, judge=judge if mode == "judge" else None)
               for mode in ("judge", "labels")}
    report = {}
    for system, (qids, lines) in rows.items():
        entry = {"queries": len(qids), "mean_lines": sum(map(len, lines)) / len(lines)}
        for mode, reward in rewards.items():
            parts = reward.score(qids, lines)
            entry[mode] = {name: float(getattr(parts, name).mean()) for name in PART_NAMES}
        report[system] = entry
        print(f"{system:55s} lines {entry['mean_lines']:.2f}  judge {entry['judge']['total']:+.4f}  "
              f"labels {entry['labels']['total']:+.4f}", flush=True)
    with open(args.output, "w") as f:
        json.dump({"expansions": args.expansions, "judge": str(cfg.judge.model or cfg.judge.output_dir),
                   "rows": report}, f, indent=1)


if __name__ == "__main__":
    main()
