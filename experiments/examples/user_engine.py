"""Bring your own engine: a stemmed BM25 that the user builds and owns, plugged in from the config alone.

    [engine]
    kind = "python:user_engine:make_engine"    # with experiments/examples on PYTHONPATH

``make_engine(dataset)`` gets the loaded data set and returns anything with ``search(texts, k)`` over the
catalog's rows. An engine that answers with its own product ids (Elasticsearch, OpenSearch, Solr, a service)
is wrapped in :class:`retrieval.ProductIdEngine`, which maps those ids to rows; here bm25s stands in for it.
"""
from __future__ import annotations

import bm25s
import Stemmer

from retrieval import ProductIdEngine


def make_engine(dataset):
    stemmer = Stemmer.Stemmer("english")
    index = bm25s.BM25()
    index.index(bm25s.tokenize(dataset.product_texts, stopwords="en", stemmer=stemmer, show_progress=False),
                show_progress=False)
    product_ids = list(dataset.product_ids)

    def search_ids(texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        """What a remote engine would answer: (product id, score) pairs, best first."""
        k = min(k, len(product_ids))
        docs, scores = index.retrieve(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                                      k=k, show_progress=False)
        return [[(product_ids[d], float(s)) for d, s in zip(row, row_scores) if s > 0]
                for row, row_scores in zip(docs, scores)]

    return ProductIdEngine(search_ids, dataset.product_ids)
