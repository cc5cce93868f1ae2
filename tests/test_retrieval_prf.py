"""Pseudo-relevance feedback as a query: the warm start's candidates and eval's no-model row."""
from __future__ import annotations

from retrieval import CatalogVocabulary, term_expansions, title_expansions


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


CATALOG = [f"Filler {i} widget with handle" for i in range(40)] + [
    "Ryobi String Trimmer Cordless", "Echo String Trimmer Gas", "Trimmer Line Spool", "Cordless Drill with Case",
]


def test_feedback_terms_rank_shared_specific_words_and_skip_the_query_and_fillers():
    vocab = CatalogVocabulary(CATALOG, max_share=0.5)
    relevant = ["Ryobi String Trimmer Cordless", "Echo String Trimmer Gas", "Filler 1 widget with handle"]
    terms = vocab.feedback_terms("weed Trimmer", relevant, k=3)
    # "string" is in 2 of the relevant titles and 2 catalogue titles; "trimmer" is the query's own word; the
    # filler words are in nearly every title: too common to be specific at max_share 0.5.
    assert terms[0] == "string"
    assert "trimmer" not in terms and not {"with", "widget", "handle", "filler"} & set(terms)
    assert terms[1:] == ["ryobi", "echo"]  # one title each, equally rare: first seen first
    assert vocab.feedback_terms("weed trimmer", [], k=3) == []


def test_term_expansions_group_terms_after_the_query():
    terms = ["string", "ryobi", "echo", "gas", "spool"]
    assert term_expansions(" weed  trimmer", terms, 2, 3, 8, 60) == [
        "weed trimmer string ryobi", "weed trimmer echo gas", "weed trimmer spool"]
    assert term_expansions("weed trimmer", terms, 1, 2, 8, 60) == ["weed trimmer string", "weed trimmer ryobi"]
    assert term_expansions("weed trimmer", [], 2, 3, 8, 60) == []
    # Cut to whole words within the rules' limits, like the title expansions.
    assert term_expansions("weed trimmer", terms, 2, 1, 3, 60) == ["weed trimmer string"]
    assert term_expansions("weed trimmer", terms, 2, 1, 8, 20) == ["weed trimmer string"]
