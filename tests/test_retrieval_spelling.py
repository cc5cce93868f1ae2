"""Spelling correction against the catalogue's words (retrieval.Speller)."""
from __future__ import annotations

import pytest

from retrieval import CatalogVocabulary, Speller

CATALOG = ["Bathroom Plumbing Kit", "Pneumatic Cylinder 2 in.", "Patio Heater Propane", "Pantry Cabinet",
           "Troy-Bilt Lawn Mower", "Caulk Gun", "Hammer Drill", "Hamper Basket", "Hamper Lid", "Nailer Kit"]


class SuffixStemmer:
    """Enough of PyStemmer for the test: strips -ing and -s."""

    def stemWord(self, word: str) -> str:  # noqa: N802 (PyStemmer's name)
        for suffix in ("ing", "s"):
            if word.endswith(suffix) and len(word) > len(suffix) + 2:
                return word[: -len(suffix)]
        return word


@pytest.fixture
def speller():
    return Speller(CatalogVocabulary(CATALOG), SuffixStemmer())


def test_unknown_words_become_the_nearest_catalogue_word(speller):
    assert speller.correct("bathroom plummbing") == "bathroom plumbing"  # one letter too many
    assert speller.correct("pneumatic cynlinder") == "pneumatic cylinder"
    assert speller.correct("padtio heater") == "patio heater"
    assert speller.correct("Pnuematic CYLINDER") == "pneumatic CYLINDER"  # a swap of two letters costs 1


def test_known_short_and_far_words_and_model_numbers_stay(speller):
    assert speller.correct("caulking gun") == "caulking gun"  # known by its stem, caulk
    assert speller.correct("palm nailers") == "palm nailers"  # palm: no catalogue word within 1; nailers: stem
    assert speller.correct("troy bilt mower") == "troy bilt mower"  # bilt is part of troy-bilt
    assert speller.correct("pvs cap 13yx78ks011") == "pvs cap 13yx78ks011"  # 3 letters; a model number
    assert speller.correct("zzzzzzzz") == "zzzzzzzz"  # nothing within 2


def test_among_equally_near_words_a_shown_title_wins_then_the_commoner(speller):
    # "hamner" is 1 from "hammer" and 1 from "hamper"; hamper is in two titles, hammer in one.
    assert speller.nearest("hamner") == "hamper"
    assert speller.nearest("hamner", frozenset({"hammer"})) == "hammer"
    assert speller.correct("hamner drill", ["Hammer Drill"]) == "hammer drill"


def test_a_stemmer_makes_inflected_words_known(speller):
    assert speller.known("caulking") and speller.correct("pneumatic cylinders") == "pneumatic cylinders"
    exact = Speller(CatalogVocabulary(CATALOG))  # without a stemmer, only the catalogue's own words are known
    assert not exact.known("caulking") and exact.correct("pneumatic cylinders") == "pneumatic cylinder"
