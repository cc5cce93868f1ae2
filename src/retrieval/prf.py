"""Pseudo-relevance feedback written as a query: no model, only the engine's own top results.

The query's words lead, so the expansion keeps the shopper's intent; a result title adds the catalogue's
vocabulary (product type, material, size) that a short query leaves out. It is both a baseline row of
``make eval`` (the floor a context-aware policy should clear) and the candidate pool of the warm start.
"""
from __future__ import annotations

import math
import re
from collections import Counter


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


_WORD = re.compile(r"[a-z][a-z\-]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


class CatalogVocabulary:
    """How common each word is in the catalogue's titles, to tell a specific word from a filler.

    ``feedback_terms`` is relevance feedback with known relevant items (a relevance model, as RM3 computes it
    from the top results): the words most of the relevant titles share and few other titles use. Those are the
    catalogue's names for what the shopper wants (``weewacker edger`` -> ``trimmer string cordless``), often
    missing from the query and from its top results alike.
    """

    def __init__(self, titles: list[str], max_share: float = 0.05):
        self.num_titles = max(1, len(titles))
        self.title_counts = Counter(w for t in titles for w in set(_words(t)))
        self.max_count = max(1.0, max_share * self.num_titles)
        """Words in more than ``max_share`` of the titles (``with``, ``in``, ``white``) never count as specific."""

    def feedback_terms(self, query: str, relevant_titles: list[str], k: int) -> list[str]:
        """Up to ``k`` words of ``relevant_titles`` the query lacks, ranked by (relevant titles containing the
        word) x idf; ties keep first-seen order, so the result is deterministic."""
        in_query = set(_words(query))
        counts = Counter(w for t in relevant_titles for w in dict.fromkeys(_words(t)) if w not in in_query)

        def weight(word: str) -> float:
            return counts[word] * math.log(self.num_titles / max(1, self.title_counts[word]))

        usable = [w for w in counts if self.title_counts[w] <= self.max_count]
        return sorted(usable, key=weight, reverse=True)[:k]


def term_expansions(query: str, terms: list[str], per_expansion: int, max_expansions: int, max_words: int,
                    max_chars: int) -> list[str]:
    """The query plus ``per_expansion`` of ``terms`` at a time, in order: ``[q t1 t2, q t3 t4, ...]``, each cut
    to whole words within the limits (as :func:`title_expansions`); one that adds nothing is dropped."""
    groups = [terms[i:i + per_expansion] for i in range(0, len(terms), per_expansion)][:max_expansions]
    return title_expansions(query, [" ".join(g) for g in groups], max_words, max_chars)
