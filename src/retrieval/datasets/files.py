"""Reading data files: decoding, strict delimited tables, JSON lines, and counting what gets skipped.

Every format reads through here, so bad input is handled one way everywhere: an unreadable file, an
undecodable byte or a malformed CSV record is a :class:`DatasetError` naming the file and line; a record
that parses but cannot be used (unknown id, empty text) is counted and logged by :class:`Skips`.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from .core import DatasetError

log = logging.getLogger("retrieval.datasets")

# WANDS product descriptions exceed csv's default 128 KiB field limit; sys.maxsize overflows a C long on
# some platforms, 2**31 - 1 does not.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

AUTO = "auto"
"""Encoding setting: strict UTF-8 when the whole file decodes as UTF-8, else latin-1 (see :func:`decode`)."""


class Skips:
    """Counts skipped records by reason and logs one warning per file, so bad rows never pass silently."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        self.counts[reason] += 1

    def report(self) -> None:
        if self.counts:
            detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
            log.warning("%s: skipped %d record(s) (%s)", self.path, sum(self.counts.values()), detail)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def decode(path: Path, data: bytes, encoding: str) -> tuple[str, str]:
    """``(text, encoding used)``. ``"auto"`` tries UTF-8 strictly, then latin-1.

    Latin-1 decodes any byte sequence, so it cannot be the first guess: a UTF-8 file read as latin-1 turns
    ``90°`` into ``90Â°`` without an error. UTF-8 is strict enough that a latin-1 file with any non-ASCII byte
    almost never passes as UTF-8, which makes the order safe. A named encoding is used as given, and an
    undecodable byte is an error naming the line.
    """
    if encoding == AUTO:
        try:
            return data.decode("utf-8-sig"), "utf-8"
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not valid {encoding}") from None
    except LookupError:
        raise DatasetError(f"{path}: unknown encoding {encoding!r}; use 'auto', 'utf-8' or 'latin-1'") from None


def read_text(path: Path, encoding: str) -> str:
    """Whole file decoded with ``encoding``; an undecodable byte becomes a DatasetError naming the line."""
    return decode(path, read_bytes(path), encoding)[0]


def read_table(
    path: Path, required: Iterable[str], *, delimiter: str = ",", encoding: str = "utf-8-sig", skips: Skips,
    text: str | None = None,
) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Header column index and an iterator of ``(line number, fields)`` for a delimited text file.

    ``text``: the file's contents when the caller decoded them already (to detect the encoding). Parsing is
    strict: a stray quote is an error naming the line where its record starts, where a lenient reader would
    swallow every line up to the next quote into one field. Rows whose field count differs from the header's
    are counted in ``skips`` as malformed.
    """
    if text is None:
        text = read_text(path, encoding)
    # StringIO(newline="") rather than splitlines(): the latter also splits at \x0b, \x1c, \u2028 ..., which
    # may occur inside quoted product descriptions.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise DatasetError(f"{path}: empty file, expected a header line") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1: {exc}") from None
    missing = [name for name in required if name not in header]
    if missing:
        raise DatasetError(f"{path}: line 1: missing column(s) {missing}; found {header}")
    return {name: i for i, name in enumerate(header)}, _table_rows(path, reader, len(header), skips)


def _table_rows(path: Path, reader, width: int, skips: Skips) -> Iterator[tuple[int, list[str]]]:
    for start, row in _records(path, reader):
        if not row:
            continue
        if len(row) != width:
            skips.add(f"malformed line ({len(row)} fields, expected {width})")
            continue
        yield start, row


def _records(path: Path, reader) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` per record; a record csv cannot parse is an error naming its first line.

    csv counts physical lines, so a quoted field spanning lines ends later than it starts; the first line is
    the one to look at, since that is where an unbalanced quote opens.
    """
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = f", read up to line {reader.line_num}" if reader.line_num > start else ""
            raise DatasetError(
                f"{path}: line {start}: malformed CSV record ({exc}{end}); a stray or unbalanced quote?"
            ) from None
        yield start, row


def read_delimited(path: Path, *, delimiter: str, encoding: str = "utf-8-sig") -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` per record of a file with no required header (strict, as :func:`read_table`)."""
    reader = csv.reader(io.StringIO(read_text(path, encoding), newline=""), delimiter=delimiter, strict=True)
    return _records(path, reader)


def read_jsonl(path: Path, skips: Skips) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` per non-blank line; lines that are not JSON objects are counted and skipped."""
    for line_no, line in enumerate(io.StringIO(read_text(path, "utf-8-sig"), newline=""), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            skips.add("malformed JSON line")
            continue
        if not isinstance(obj, dict):
            skips.add("JSON line is not an object")
            continue
        yield line_no, obj


def parse_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
