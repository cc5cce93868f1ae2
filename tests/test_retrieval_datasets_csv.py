"""CSV input that used to pass silently: a stray quote, a UTF-8 Home Depot file, HTML entities in titles."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from retrieval.datasets import DatasetError, load_dataset, query_id_for

FIXTURES = Path(__file__).parent / "fixtures" / "retrieval"


def home_depot_copy(tmp_path: Path, *, catalog: bool = True) -> Path:
    folder = Path(shutil.copytree(FIXTURES / "home_depot", tmp_path / "home_depot"))
    if not catalog:
        (folder / "products.csv").unlink()
    return folder


def insert_line(path: Path, after: int, line: bytes) -> int:
    """Insert ``line`` after line ``after`` (1-based) and return the new line's number."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(after, line + b"\n")
    path.write_bytes(b"".join(lines))
    return after + 1


# ----------------------------------------------------------------------------------------------- strict CSV


@pytest.mark.parametrize("file, at, record", [
    # An opening quote that never closes used to swallow every later line into one field.
    ("train.csv", 3, b'40,100001,"Simpson Strong-Tie Angle,angle bracket,3'),
    ("train.csv", 5, b'41,100004,"Elbow 90" Copper Fitting",90 elbow,3'),  # a quote inside a quoted title
    ("products.csv", 2, b'100009,"Hampton Bay Fan'),  # the catalog too
])
def test_a_malformed_record_names_file_and_line(tmp_path, file, at, record):
    folder = home_depot_copy(tmp_path)
    line = insert_line(folder / file, at, record)
    with pytest.raises(DatasetError, match=rf"{re.escape(file)}: line {line}: malformed CSV record"):
        load_dataset(str(folder))


def test_a_quote_inside_an_unquoted_title_is_text(tmp_path):
    """Inches written as ``12"`` in a title that does not start with a quote are ordinary characters."""
    folder = home_depot_copy(tmp_path, catalog=False)
    insert_line(folder / "train.csv", 1, b'42,100007,Shelf 12" Pine,pine shelf,3')
    data = load_dataset(str(folder))
    assert 'Shelf 12" Pine' in data.product_texts


# ----------------------------------------------------------------------------------------- train.csv encoding


def test_latin1_train_csv_is_detected(tmp_path):
    data = load_dataset(str(home_depot_copy(tmp_path, catalog=False)))
    assert data.encodings == {"train.csv": "latin-1"}
    assert "Elbow 90° Copper Fitting, 1/2 in." in data.product_texts
    assert data.queries[query_id_for("90° elbow")] == "90° elbow"


def test_utf8_train_csv_reads_degrees_right(tmp_path):
    folder = home_depot_copy(tmp_path, catalog=False)
    train = folder / "train.csv"
    train.write_text(train.read_bytes().decode("latin-1"), encoding="utf-8")
    data = load_dataset(str(folder))
    assert data.encodings == {"train.csv": "utf-8"}
    assert "Elbow 90° Copper Fitting, 1/2 in." in data.product_texts  # not "90Â°"
    assert data.queries[query_id_for("90° elbow")] == "90° elbow"


def test_forced_encoding_names_the_undecodable_line(tmp_path):
    folder = home_depot_copy(tmp_path)
    with pytest.raises(DatasetError, match=r"train\.csv: line 6: byte 0xb0 is not valid utf-8"):
        load_dataset(str(folder), encoding="utf-8")
    assert load_dataset(str(folder), encoding="latin-1").encodings == {"train.csv": "latin-1"}


# ------------------------------------------------------------------------------------------- HTML entities


def test_html_entities_in_catalog_titles_are_unescaped(tmp_path):
    folder = home_depot_copy(tmp_path)
    insert_line(folder / "products.csv", 1, b"100008,K&amp;H Pet Products 12&quot; Heated Pad")
    insert_line(folder / "train.csv", 1, b"43,100008,K&amp;H Pet Products 12&quot; Heated Pad,heated pad,3")
    data = load_dataset(str(folder))
    assert 'K&H Pet Products 12" Heated Pad' in data.product_texts


def test_html_entities_in_train_titles_are_unescaped(tmp_path):
    folder = home_depot_copy(tmp_path, catalog=False)
    insert_line(folder / "train.csv", 1, b"43,100008,K&amp;H Pet Products Heated Pad,heated pad,3")
    assert "K&H Pet Products Heated Pad" in load_dataset(str(folder)).product_texts


# ------------------------------------------------------------------------------------------------ generic
