"""Pseudo-relevance feedback as a query: the warm start's candidates and eval's no-model row."""
from __future__ import annotations

from retrieval import title_expansions


def test_title_expansions_lead_with_the_query_and_add_only_new_words():
    titles = ["Cordless Drill Kit 20V Lithium Ion with Battery", "drill", "DeWalt 20V MAX Cordless Drill"]
    got = title_expansions("cordless drill", titles, max_words=5, max_chars=60)
    # Title words already in the query are skipped whatever their case; a title adding nothing gives nothing.
    assert got == ["cordless drill Kit 20V Lithium", "cordless drill DeWalt 20V MAX"]


def test_title_expansions_cut_whole_words_to_the_character_limit():
    expansions = title_expansions("cordless drill", ["Kit 20V Lithium"], max_words=8, max_chars=24)
    assert expansions == ["cordless drill Kit 20V"]


def test_title_expansions_drop_repeats_and_bare_queries():
    assert title_expansions("drill", ["drill", "Drill", "bits", "bits"], 8, 60) == ["drill bits"]
    assert title_expansions("  drill ", [], 8, 60) == []
