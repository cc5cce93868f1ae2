"""Pseudo-relevance feedback written as a query: no model, only the engine's own top results.

The query's words lead, so the expansion keeps the shopper's intent; a result title adds the catalogue's
vocabulary (product type, material, size) that a short query leaves out. It is both a baseline row of
``make eval`` (the floor a context-aware policy should clear) and the candidate pool of the warm start.
"""
from __future__ import annotations


def title_expansions(query: str, titles: list[str], max_words: int, max_chars: int) -> list[str]:
    """One expansion per title: the query, then the title's words it lacks, cut to whole words within the limits.

    Titles that add nothing to the query give no expansion, and repeats are dropped, so the result may be
    shorter than ``titles``.
    """
    seen = {w.casefold() for w in query.split()}
    query_text = " ".join(query.split())
    expansions: list[str] = []
    for title in titles:
        words = query.split() + [w for w in title.split() if w.casefold() not in seen]
        text = " ".join(words[:max_words])
        while len(text) > max_chars and " " in text:
            text = text.rsplit(" ", 1)[0]
        if text.casefold() != query_text.casefold() and text not in expansions:
            expansions.append(text)
    return expansions
