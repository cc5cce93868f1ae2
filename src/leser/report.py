"""The evaluation report: ``report.json`` (everything), ``report.md`` (tables) and ``report.png`` (intervals)."""
from __future__ import annotations

import json
from pathlib import Path

NAMES = {"ndcg@10": "nDCG@10", "recall@100": "R@100"}


def metrics_table(rows: list[dict]) -> str:
    head = "| system | nDCG@10 | R@10 | R@100 | MRR@10 | coverage + | rule violations | ms/query |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        m = r["metrics"]
        viol = "" if r["rule_violation_rate"] is None else f"{r['rule_violation_rate']:.1%}"
        lat = "" if r["latency_ms_per_query"] is None else f"{r['latency_ms_per_query']:.0f}"
        lines.append(f"| {r['system']} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['recall@100']:.4f} | "
                     f"{m['mrr@10']:.4f} | {m['coverage_increment']:+.4f} | {viol} | {lat} |")
    return "\n".join(lines)


def paired_table(rows: list[dict], key: str) -> str:
    """Rows with a paired comparison under ``key`` (``vs_original`` or ``vs_pseudo_relevance``): the mean
    per-query difference, its 95% interval, and queries up / down."""
    rows = [r for r in rows if r.get(key)]
    if not rows:
        return ""
    metrics = list(rows[0][key])
    head = "| system | " + " | ".join(f"{NAMES.get(m, m)} diff [95% CI] | up / down" for m in metrics) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(metrics))]
    for r in rows:
        cells = []
        for m in metrics:
            d = r[key][m]
            cells += [f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]", f"{d['better']} / {d['worse']}"]
        lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    md = [f"# Evaluation: {report['dataset']} {report['split']} split, {report['num_queries']} queries", "",
          f"Commit {report.get('commit', '?')[:10]}, {report.get('date', '?')}. Policies see the top titles of the "
          f"{report['context_plan']['kind']} plan. Intervals: paired bootstrap over queries, 10,000 resamples.", ""]
    for engine in report["engines"]:
        rows = [r for r in report["rows"] if r["engine"] == engine]
        plan = next((r["generation"]["plan"] for r in rows if r.get("generation")), None)
        md += [f"## Engine: {engine}" + (f" (original weight {plan['original_weight']:g}, expansion weight "
                                         f"{plan['expansion_weight']:g}, RRF k {plan['rrf_k']})" if plan else ""),
               "", metrics_table(rows), ""]
        for key, what in (("vs_original", "the original query"), ("vs_pseudo_relevance", "pseudo-relevance")):
            table = paired_table(rows, key)
            if table:
                md += [f"Against {what} on {engine}, query by query:", "", table, ""]
    return "\n".join(md) + "\n"


def write_report(report: dict, out: Path, quiet: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (out / "report.md").write_text(text)
    if quiet:
        return
    _plot(report, out / "report.png")
    print("\n" + text + f"\nwrote {out}/report.md, report.json")


def _plot(report: dict, path: Path) -> None:
    """Each row's paired difference from its engine's original query, with the 95% interval: a 0.002 lead
    is visible, and so is whether its interval clears zero."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install leser[plot]): no report.png")
        return
    engines = report["engines"]
    fig, axes = plt.subplots(len(engines), 2, figsize=(11, 1.2 + 1.1 * len(engines) * 2), squeeze=False)
    for row_axes, engine in zip(axes, engines):
        rows = [r for r in report["rows"] if r["engine"] == engine and r.get("vs_original")]
        for ax, metric in zip(row_axes, ("ndcg@10", "recall@100")):
            diffs = [r["vs_original"][metric] for r in rows]
            y = range(len(rows))
            means = [d["mean"] for d in diffs]
            errors = [[d["mean"] - d["ci_low"] for d in diffs], [d["ci_high"] - d["mean"] for d in diffs]]
            ax.errorbar(means, y, xerr=errors, fmt="o", capsize=3)
            ax.axvline(0, color="k", linewidth=0.8)
            ax.set_yticks(list(y), [r["system"] for r in rows], fontsize=8)
            ax.invert_yaxis()
            ax.set_title(f"{engine}: {NAMES[metric]} minus the original (95% CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
