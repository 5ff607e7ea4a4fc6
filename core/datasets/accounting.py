"""Row accounting for text imports: every data line read is a row stored, or the import says why.

DuckDB's CSV reader drops lines without saying so: a ragged file sniffed as
"no header, skip 3 lines", a ``#`` line taken for a comment, a delimiter it
only meets later. After the COPY, the data lines of the file are counted with
``bytes.count`` (fast, no parsing) and compared with the rows stored; only when
they differ is the file parsed record by record to find the first line that
does not fit, which the refusal names. With an explicit policy
(``--bad-lines skip|null-pad``) the bad lines are counted instead, and the
counts go into the version's metadata.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from core.datasets.options import BAD_LINES_HINT, BadLines, ragged_rows
from core.datasets.records import LineCounts as Counts
from core.datasets.sniff import open_raw
from core.errors import InvalidInput

_CHUNK = 1 << 20
_TAIL = 4096
_WHITESPACE = b" \t\r\n"
_BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class Layout:
    """The dialect a CSV is read with, and what its first record looks like."""

    path: Path  # the UTF-8 file DuckDB reads (transcoded when the original was not)
    delimiter: str
    quote: str
    header: bool
    columns: int  # columns DuckDB found
    first_fields: int  # fields of the file's first non-blank record


@dataclass(frozen=True)
class Scan:
    """A record-by-record parse of the file."""

    records: int  # non-blank data records (header excluded)
    expected: int  # fields per record, from the first one
    short: int
    long: int
    first_bad: tuple[int, int] | None  # (line number, fields)

    @property
    def bad(self) -> int:
        return self.short + self.long


def count_lines(path: Path, label: str) -> int:
    """Lines up to the last non-blank one; refuses a byte-order mark past the start.

    One ``bytes.count`` per chunk, and a search for the mark's first byte (memchr fast,
    and rare in text: only U+F000..U+FFFF start with it) instead of the three-byte mark,
    which cost as much again as the count.
    """
    newlines = offset = 0
    last = before = b""
    with open_raw(path) as fh:
        while chunk := fh.read(_CHUNK):
            at = _bom_at(chunk, 0 if offset else 1)
            if at >= 0 or (offset and _bom_at(last[-2:] + chunk[:2], 0) >= 0):
                line = newlines + (chunk.count(b"\n", 0, at) if at > 0 else 0) + 1
                raise InvalidInput(
                    f"{label}: line {line} holds a byte-order mark: two files joined "
                    "into one? Remove the second header and its mark")
            newlines += chunk.count(b"\n")
            offset += len(chunk)
            before, last = last, chunk
    tail = (before[-_TAIL:] + last)[-_TAIL:]
    body = tail.rstrip(_WHITESPACE)
    if offset and not body and offset <= _TAIL:
        return 0
    return newlines - tail.count(b"\n", len(body)) + 1


def _bom_at(data: bytes, start: int) -> int:
    """Index of the first UTF-8 byte-order mark in ``data`` at or after ``start``, or -1."""
    at = data.find(_BOM[0], start)
    while at >= 0 and data[at:at + 3] != _BOM:
        at = data.find(_BOM[0], at + 1)
    return at


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    if path.suffix.lower() == ".gz":
        with gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            yield fh
    else:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
            yield fh


def _records(layout: Layout, label: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank record."""
    csv.field_size_limit(sys.maxsize)
    with _open_text(layout.path) as fh:
        reader = csv.reader(fh, delimiter=layout.delimiter, quotechar=layout.quote or '"',
                            quoting=csv.QUOTE_MINIMAL if layout.quote else csv.QUOTE_NONE,
                            strict=False)
        start = 1
        try:
            for fields in reader:
                line, start = start, reader.line_num + 1
                if fields:
                    yield line, fields
        except csv.Error as exc:
            raise InvalidInput(f"{label}: line {start}: {exc}") from exc


def scan(layout: Layout, label: str, header: bool, *, stop_long: bool = False) -> Scan:
    """Count the records whose field count differs from the first record's.

    ``stop_long``: stop at the first record with too many fields and report it.
    """
    expected: int | None = None
    records = short = long = 0
    first_bad: tuple[int, int] | None = None
    for line, fields in _records(layout, label):
        if expected is None:
            expected = len(fields)
            if header:
                continue
        records += 1
        if len(fields) == expected:
            continue
        if stop_long and len(fields) > expected:
            return Scan(records, expected, 0, 1, (line, len(fields)))
        short += len(fields) < expected
        long += len(fields) > expected
        first_bad = first_bad or (line, len(fields))
    return Scan(records, expected or 0, short, long, first_bad)


def _bad_line(label: str, found: Scan, hint: str = BAD_LINES_HINT) -> InvalidInput:
    assert found.first_bad is not None
    line, fields = found.first_bad
    return ragged_rows(label, line, fields, found.expected, hint)


def check(layout: Layout, label: str, stored: int, lines: int | None = None) -> Counts:
    """Counts for an import without a policy; refuses when a data line is not a stored row.

    ``lines``: ``count_lines`` of the file, when the caller counted them already.
    """
    lines = count_lines(layout.path, label) if lines is None else lines
    read = lines - (1 if layout.header else 0)
    if read == stored and layout.first_fields == layout.columns:
        return Counts(read, stored)
    found = scan(layout, label, layout.header or layout.first_fields != layout.columns)
    if found.first_bad is not None:
        raise _bad_line(label, found)
    if found.expected != layout.columns:
        raise InvalidInput(f"{label}: the first line has {found.expected} fields but the "
                           f"reader found {layout.columns} columns; nothing imported")
    if found.records != stored:
        raise InvalidInput(f"{label}: {found.records} data lines read but {stored} rows "
                           "parsed; nothing imported")
    return Counts(found.records, stored)


def plan(layout: Layout, label: str, policy: BadLines) -> tuple[bool, Scan]:
    """(header, scan) for an import under ``policy``; refuses what the policy cannot fix."""
    header = layout.header or layout.first_fields != layout.columns
    found = scan(layout, label, header)
    if policy == "null-pad" and found.long:
        raise _bad_line(label, scan(layout, label, header, stop_long=True),
                        "null-pad only pads short lines; use --bad-lines skip to drop long ones")
    return header, found


def settle(found: Scan, label: str, policy: BadLines, stored: int) -> Counts:
    """Counts under ``policy``, once the rows are stored; refuses when they do not add up."""
    skipped = found.bad if policy == "skip" else 0
    padded = found.short if policy == "null-pad" else 0
    if found.records - skipped != stored:
        raise InvalidInput(
            f"{label}: {found.records} data lines read, {skipped} skipped, but {stored} rows "
            "parsed (a value that does not fit its column?); nothing imported")
    return Counts(found.records, stored, skipped, padded)
