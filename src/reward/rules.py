"""Platform rules for expansions: what a search platform accepts before it runs a query.

A violated rule costs reward; the checker names each rule so dashboards can show which ones the
policy breaks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

RULES = (
    "unparsable",  # the completion held no expansion at all
    "count",  # more than max_expansions (or fewer than min_expansions)
    "too_long",  # an expansion over max_words words or max_chars characters
    "too_short",  # fewer than min_chars letters or digits: "1", "K", "[1" retrieve noise
    "not_printable",  # control characters or other non-printable text
    "duplicate",  # two expansions equal when case and spaces are ignored
    "equals_query",  # an expansion that only repeats the query
    "banned_term",  # a term the platform forbids
    "url_or_price",  # a URL or a price: engines index neither, and prices go stale
)

_URL = re.compile(r"(https?://|www\.|\b[\w-]+\.(com|net|org|io)\b)", re.IGNORECASE)
_PRICE = re.compile(r"([$€£¥]\s?\d)|(\b\d+(\.\d+)?\s?(usd|dollars?|eur|euros?)\b)", re.IGNORECASE)


@dataclass
class RulesConfig:
    min_expansions: int = 1
    max_expansions: int = 3
    max_words: int = 8
    max_chars: int = 60
    min_chars: int = 3
    banned_terms: list[str] = field(default_factory=list)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", text).casefold()


def _item_violations(expansion: str, cfg: RulesConfig) -> list[str]:
    """The rules that one expansion breaks on its own, whatever its siblings are."""
    violated = []
    if len(expansion.split()) > cfg.max_words or len(expansion) > cfg.max_chars:
        violated.append("too_long")
    if sum(c.isalnum() for c in expansion) < cfg.min_chars:
        violated.append("too_short")
    if not expansion.isprintable():
        violated.append("not_printable")
    lowered = expansion.casefold()
    if any(re.search(rf"\b{re.escape(t.casefold())}\b", lowered) for t in cfg.banned_terms):
        violated.append("banned_term")
    if _URL.search(expansion) or _PRICE.search(expansion):
        violated.append("url_or_price")
    return violated


def check(expansions: list[str], query: str, cfg: RulesConfig) -> list[str]:
    """The names of the rules (from :data:`RULES`) that these expansions violate, each once, in RULES order."""
    if not expansions:
        return ["unparsable"]
    violated = {v for e in expansions for v in _item_violations(e, cfg)}
    if not cfg.min_expansions <= len(expansions) <= cfg.max_expansions:
        violated.add("count")
    keys = [_normalise(e) for e in expansions]
    if len(set(keys)) < len(keys):
        violated.add("duplicate")
    if _normalise(query) in keys:
        violated.add("equals_query")
    return [rule for rule in RULES if rule in violated]


def usable(expansions: list[str], query: str, cfg: RulesConfig) -> list[str]:
    """What a platform would actually run: the first ``max_expansions`` distinct, rule-abiding expansions."""
    seen = {_normalise(query)}
    kept: list[str] = []
    for e in expansions:
        key = _normalise(e)
        if key in seen or _item_violations(e, cfg):
            continue
        seen.add(key)
        kept.append(e)
    return kept[: cfg.max_expansions]


def judge(query: str, expansions: list[str], cfg: RulesConfig) -> dict:
    """Split the policy's expansions into what the platform runs (:func:`usable`) and what it drops, with the
    reasons: what ``leser serve``, ``expand`` and ``precompute`` answer.

    An expansion that breaks no rule alone was dropped for repeating an earlier one, or for coming after
    ``max_expansions`` good ones."""
    kept = usable(expansions, query, cfg)
    dropped, next_kept = [], 0
    for i, expansion in enumerate(expansions):
        if next_kept < len(kept) and expansion == kept[next_kept]:
            next_kept += 1
            continue
        violations = [v for v in check([expansion], query, cfg) if v != "count"]
        if not violations:
            repeats = any("duplicate" in check([earlier, expansion], query, cfg) for earlier in expansions[:i])
            violations = ["duplicate"] if repeats else ["count"]
        dropped.append({"expansion": expansion, "violations": violations})
    # The whole answer's violations, as the reward counts them: shows "unparsable" when nothing was dropped
    # because the policy gave no expansion at all.
    return {"query": query, "expansions": kept, "dropped": dropped, "violations": check(expansions, query, cfg)}
