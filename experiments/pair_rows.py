"""Pair two rows of a finished eval: re-fuse each row's expansions from its ``expansions.jsonl`` on an engine and
report the per-query difference (nDCG@10, R@100) with its paired bootstrap interval, as ``make eval`` pairs a row
with the original and with PRF. Nothing is generated; give the eval's own ``--config`` and ``--set``.

    python experiments/pair_rows.py runs/eval_valid/expansions.jsonl --config experiments/configs/labels.toml \
        --row "labels warm start + judge's choice of 8 samples" --baseline "pseudo-relevance, judge's choice" \
        --engines hybrid dense bm25 --output runs/eval_valid/pairs.json

``--row`` and ``--baseline`` each name a system by the start of its name (it must match exactly one system).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from leser.config import load_config
from leser.scoring import EngineScores, paired
from leser.runtime import Engines, build_plan
from retrieval import load_dataset


def rows_by_system(path: Path) -> dict[str, dict[str, list[str]]]:
    """``{system: {query_id: expansions}}`` of an eval's ``expansions.jsonl``."""
    systems: dict[str, dict[str, list[str]]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        systems.setdefault(record["system"], {})[record["query_id"]] = record["expansions"]
    return systems


def pick(systems: dict, prefix: str) -> str:
    matches = [s for s in systems if s.startswith(prefix)]
    if len(matches) != 1:
        raise SystemExit(f"{prefix!r} matches {len(matches)} systems of {sorted(systems)}")
    return matches[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("expansions", type=Path)
    ap.add_argument("--config", default="experiments/configs/labels.toml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--row", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--engines", nargs="+", default=["hybrid"])
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    systems = rows_by_system(args.expansions)
    row, baseline = pick(systems, args.row), pick(systems, args.baseline)
    if systems[row].keys() != systems[baseline].keys():
        raise SystemExit(f"{row!r} and {baseline!r} expand different queries")
    dataset = load_dataset(cfg.data.path)
    qids = list(systems[row])
    engines = Engines(cfg, dataset)
    out = {"expansions": str(args.expansions), "row": row, "baseline": baseline, "num_queries": len(qids),
           "engines": {}}
    for kind in args.engines:
        scores = EngineScores(build_plan(cfg, dataset, kind, engines), dataset, qids)
        for system in (row, baseline):
            scores.add(system, [systems[system][q] for q in qids])
        out["engines"][kind] = paired(scores.scores[row], scores.scores[baseline])
        print(kind, {m: f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"
                     for m, d in out["engines"][kind].items()}, flush=True)
    if args.output:
        args.output.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
