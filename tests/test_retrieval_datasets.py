"""Data set loaders: one small fixture per format, bad input, splits, and the WANDS download path."""
from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from urllib.error import URLError

import pytest

from retrieval import datasets as ds
from retrieval.datasets import DatasetError, esci, load_dataset, query_id_for, split_of, wands

FIXTURES = Path(__file__).parent / "fixtures" / "retrieval"
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def copy_fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def gains_by_text(dataset: ds.Dataset, query: str) -> dict[str, float]:
    """{product id: gain} of a query, so assertions read in source ids rather than row numbers."""
    qrels = dataset.qrels[query_id_for(query)]
    return {dataset.product_ids[row]: gain for row, gain in qrels.items()}


# ------------------------------------------------------------------------------------------------ Home Depot


def test_home_depot_fixture(caplog):
    with caplog.at_level(logging.WARNING):
        data = load_dataset(str(FIXTURES / "home_depot"))
    assert data.name == "home_depot" and data.relevant_gain == 1.0
    assert len(data.product_ids) == 6 and data.product_ids[0] == "100001"
    assert data.product_texts[3] == "Elbow 90° Copper Fitting, 1/2 in."
    # latin-1 byte 0xb0 decodes to the degree sign; the two ratings 2.67 and 2.33 average to 2.5 -> gain 1.5.
    assert gains_by_text(data, "90° elbow") == pytest.approx({"100004": 1.5})
    # gain = relevance - 1: 3 -> 2, 1 -> 0.
    assert gains_by_text(data, "deck over") == {"100002": 2.0, "100005": 0.0}
    # "Shower  Faucet" and "shower faucet" are one query: (0.67 + 1.0) / 2 = 0.835; text kept as first seen.
    assert gains_by_text(data, "shower faucet") == pytest.approx({"100003": 0.835})
    assert data.queries[query_id_for("shower faucet")] == "Shower Faucet"
    assert len(data.queries) == 7
    # Unknown product 999999, the blank query, the non-numeric relevance and the short line are counted.
    message = caplog.text
    for reason in ("unknown product id: 1", "empty query: 1", "relevance not a number", "malformed line"):
        assert reason in message


def test_home_depot_without_products_uses_train_titles(tmp_path):
    folder = copy_fixture("home_depot", tmp_path)
    (folder / "products.csv").unlink()
    data = load_dataset(str(folder))
    # 999999 is now a catalog item (its title comes from train.csv); 100006's title from its first row.
    assert "999999" in data.product_ids
    assert len(data.product_ids) == 7
    assert gains_by_text(data, "led bulb") == {"100006": 2.0, "999999": 2.0}


def test_named_home_depot_uses_data_root(tmp_path, monkeypatch):
    copy_fixture("home_depot", tmp_path)
    monkeypatch.setenv("LESER_DATA_ROOT", str(tmp_path))
    assert load_dataset("home_depot").name == "home_depot"
    monkeypatch.setenv("LESER_DATA", "home_depot")
    assert len(load_dataset().queries) == 7


# ----------------------------------------------------------------------------------------------------- WANDS


def test_wands_fixture(caplog):
    with caplog.at_level(logging.WARNING):
        data = load_dataset(str(FIXTURES / "wands"))
    assert data.name == "wands" and data.relevant_gain == 2.0
    assert data.product_texts[1] == "all-clad 7 qt . slow cooker"
    assert gains_by_text(data, "smart coffee table") == {"3": 2.0, "1": 1.0}
    # Query 4 "Salon  Chair" merges into query 0: Exact (2) and Partial (1) on product 2 average to 1.5.
    assert gains_by_text(data, "salon chair") == {"2": 1.5, "0": 0.0}
    assert gains_by_text(data, "dinosaur") == {"4": 1.0}
    assert data.relevant(query_id_for("smart coffee table")) == [3]
    for reason in ("unknown product id: 1", "unknown query id: 1", "unknown label: 1", "empty query: 1"):
        assert reason in caplog.text


def test_wands_quoted_fields_with_odd_line_breaks(tmp_path):
    """A description holding a quoted newline, a tab and U+2028 stays one record."""
    folder = copy_fixture("wands", tmp_path)
    with (folder / "product.csv").open("a", encoding="utf-8") as f:
        f.write('5\tsalon chair cover\tCovers\tDecor\t"line one\nline\ttwo\u2028three"\t\t\t\t\n')
    data = load_dataset(str(folder))
    assert data.product_ids[-1] == "5" and data.product_texts[-1] == "salon chair cover"


def test_wands_downloads_missing_files_into_cache(tmp_path, monkeypatch):
    """Only query.csv local: product.csv and label.csv come from 'the network' into the cache, atomically."""
    folder = tmp_path / "local"
    folder.mkdir()
    shutil.copy(FIXTURES / "wands" / "query.csv", folder)
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    fetched = []

    def fake_urlopen(url, timeout):
        fetched.append(url.rsplit("/", 1)[1])
        return io.BytesIO((FIXTURES / "wands" / fetched[-1]).read_bytes())

    monkeypatch.setattr(wands, "urlopen", fake_urlopen)
    data = load_dataset(str(folder))
    assert fetched == ["product.csv", "label.csv"]
    assert gains_by_text(data, "smart coffee table") == {"3": 2.0, "1": 1.0}
    cached = sorted(p.name for p in (tmp_path / "cache" / "wands").iterdir())
    assert cached == ["label.csv", "label.csv.sha256", "product.csv", "product.csv.sha256"]

    # Second load: served from the cache. A corrupted file (sha256 mismatch) is fetched again.
    load_dataset(str(folder))
    assert len(fetched) == 2
    (tmp_path / "cache" / "wands" / "label.csv").write_text("id\tquery_id\tproduct_id\tlabel\n")
    load_dataset(str(folder))
    assert fetched[2:] == ["label.csv"]


def test_wands_offline_error_says_how_to_point_at_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LESER_DATA_ROOT", str(tmp_path / "nowhere"))

    def offline(url, timeout):
        raise URLError("Name or service not known")

    monkeypatch.setattr(wands, "urlopen", offline)
    with pytest.raises(DatasetError, match="LESER_DATA=/path/to/WANDS/dataset"):
        load_dataset("wands")
    assert not any((tmp_path / "cache" / "wands").iterdir())  # no partial file left behind


def test_wands_download_with_wrong_header_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("LESER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(wands, "urlopen", lambda url, timeout: io.BytesIO(b"<html>rate limited</html>\n"))
    with pytest.raises(DatasetError, match="missing column"):
        wands.cached_wands_file("product.csv")
    assert not (tmp_path / "cache" / "wands" / "product.csv").exists()


# --------------------------------------------------------------------------------------------------- generic


def test_generic_fixture(caplog):
    with caplog.at_level(logging.WARNING):
        data = load_dataset(str(FIXTURES / "generic"))
    assert data.name == "tiny" and data.relevant_gain == 2.0
    assert data.product_texts == ["red running shoes", "blue denim jacket", "wireless earbuds"]
    assert gains_by_text(data, "running shoes") == {"p1": 2.0, "p3": 0.0}
    assert gains_by_text(data, "jacket") == {"p2": 1.0}
    # "unjudged query" has no qrels line, so it is dropped (and counted).
    assert sorted(data.queries.values()) == ["jacket", "running shoes"]
    for reason in ("malformed JSON line: 1", "empty query: 1", "unknown product id: 1", "query without judgments: 1"):
        assert reason in caplog.text


# ------------------------------------------------------------------------------------------------------ ESCI


def test_esci_from_columns():
    products = {
        "product_id": ["B1", "B2", "B3", "B1"],
        "product_title": ["usb cable", "phone case", "", "câble usb"],
        "product_locale": ["us", "us", "us", "fr"],
    }
    examples = {
        "query_id": [1, 1, 1, 2, 3],
        "query": ["usb c cable", "usb c cable", "usb c cable", "coque", "case"],
        "product_id": ["B1", "B2", "B9", "B1", "B2"],
        "product_locale": ["us", "us", "us", "fr", "us"],
        "esci_label": ["E", "C", "S", "E", "X"],
    }
    data = esci.build_esci(examples, products)
    assert data.relevant_gain == 3.0 and data.product_ids == ["B1", "B2"]  # B3 has no title
    assert gains_by_text(data, "usb c cable") == {"B1": 3.0, "B2": 1.0}  # B9 unknown, dropped
    assert list(data.queries.values()) == ["usb c cable"]  # "case" had only an unknown label


def test_esci_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"product_id": ["B1"], "product_title": ["usb cable"], "product_locale": ["us"]}),
                   tmp_path / esci.ESCI_PRODUCTS)
    pq.write_table(pa.table({"query_id": [1], "query": ["usb"], "product_id": ["B1"], "product_locale": ["us"],
                             "esci_label": ["E"]}), tmp_path / esci.ESCI_EXAMPLES)
    assert gains_by_text(load_dataset(str(tmp_path)), "usb") == {"B1": 3.0}


# ------------------------------------------------------------------------------------------------- bad input


def test_missing_column_names_file_and_columns(tmp_path):
    folder = copy_fixture("home_depot", tmp_path)
    text = (folder / "train.csv").read_bytes().replace(b"search_term", b"query", 1)
    (folder / "train.csv").write_bytes(text)
    with pytest.raises(DatasetError, match=r"train\.csv: line 1: missing column\(s\) \['search_term'\]"):
        load_dataset(str(folder))


def test_undecodable_bytes_name_the_line(tmp_path):
    folder = copy_fixture("home_depot", tmp_path)
    lines = (folder / "products.csv").read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"Delta", b"D\xe9lta")  # latin-1 e-acute: not UTF-8
    (folder / "products.csv").write_bytes(b"".join(lines))
    with pytest.raises(DatasetError, match=r"products\.csv: line 4: byte 0xe9 is not valid utf-8"):
        load_dataset(str(folder))


@pytest.mark.parametrize("content", ["product_uid,product_title\n", ""])
def test_empty_catalog(tmp_path, content):
    folder = copy_fixture("home_depot", tmp_path)
    (folder / "products.csv").write_text(content)
    with pytest.raises(DatasetError, match="products.csv"):
        load_dataset(str(folder))


def test_empty_generic_catalog(tmp_path):
    folder = copy_fixture("generic", tmp_path)
    (folder / "catalog.jsonl").write_text("\n")
    with pytest.raises(DatasetError, match=r"catalog\.jsonl: empty catalog"):
        load_dataset(str(folder))


def test_unknown_folder_and_name(tmp_path):
    with pytest.raises(DatasetError, match="no known data set files"):
        load_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="neither a folder nor a known data set name"):
        load_dataset("not-a-dataset")


def test_dataset_rejects_mismatched_catalog():
    with pytest.raises(DatasetError):
        ds.Dataset("x", ["a"], [], {}, {}, 1.0)


# ---------------------------------------------------------------------------------------------------- splits


def test_split_is_a_function_of_normalised_text():
    assert split_of("Deck  Over") == split_of("deck over")
    assert query_id_for(" Deck Over ") == query_id_for("deck over")
    texts = [f"query number {i}" for i in range(2000)]
    counts = {name: sum(split_of(t) == name for t in texts) for name in ds.SPLITS}
    # 80/10/10 in expectation; 2,000 draws stay well within +-3 points.
    assert abs(counts["train"] / 2000 - 0.8) < 0.03
    assert abs(counts["valid"] / 2000 - 0.1) < 0.03


def test_splits_are_deterministic_disjoint_and_complete():
    data = load_dataset(str(FIXTURES / "home_depot"))
    parts = [data.split(name) for name in ds.SPLITS]
    assert sum(map(len, parts)) == len(data.queries)
    assert set().union(*map(set, parts)) == set(data.queries)
    assert parts == [load_dataset(str(FIXTURES / "home_depot")).split(name) for name in ds.SPLITS]
    with pytest.raises(ValueError):
        data.split("dev")
    assert "home_depot: 6 products, 7 queries" in data.summary()


# ------------------------------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_home_depot():
    data = load_dataset(str(REAL_DATA / "home_depot"))
    assert len(data.product_ids) == 54_667
    # 10,616 distinct search terms; a few differ only in case/whitespace and are merged.
    assert 10_500 < len(data.queries) <= 10_616
    valid = data.split("valid")
    assert 0.08 < len(valid) / len(data.queries) < 0.12
