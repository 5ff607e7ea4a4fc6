"""How DuckDB reads each supported file: the ``FROM`` expression and its failures.

Each reader checks what DuckDB would otherwise paper over (renamed duplicate
columns, a wrong encoding) and words DuckDB's multi-line errors as one line.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from core.datasets import sniff
from core.datasets.accounting import Layout
from core.datasets.duck import first_line, literal
from core.datasets.options import BadLines, ReadOptions, ragged_rows
from core.errors import InvalidInput, NotFound, OutpostError, StorageError

FORMATS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
    ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson",
    ".xlsx": "xlsx", ".xlsm": "xlsx",
}
TEXT_FORMATS = {"csv", "tsv", "json", "ndjson"}
NULLS = ("NA", "")
_NULLSTR = "nullstr=[" + ", ".join(literal(n) for n in NULLS) + "]"
_KEY_SAMPLE = 1000
_RAGGED = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_CSV_LINE = re.compile(r"CSV Error on Line: (\d+)")
_CONVERT = re.compile(r'Error when converting column "([^"]*)"\. (.*)')
_WRITE_FAILED = re.compile(r'Could not write file \\?"[^"\\]*\\?": ([^"\\]+)')

Scratch = Callable[[str], Path]  # a temp file in the object store, removed afterwards


@dataclass(frozen=True)
class Attempt:
    """How to read the file this time; a failed read may ask for another attempt."""

    encoding: str | None = None
    full_sniff: bool = False
    decimal: str = "."
    strict: bool = True  # False under a --bad-lines policy: ragged rows are expected


@dataclass(frozen=True)
class Source:
    path: Path
    kind: str
    relation: str  # what goes after FROM
    details: dict[str, Any]
    attempt: Attempt = field(default_factory=Attempt)
    ascii_sample: bool = False
    layout: Layout | None = None  # CSV/TSV only
    options: tuple[str, ...] = ()  # the read_csv options the relation was built with


def detect_format(path: Path) -> tuple[str, str]:
    """(kind, name stem) from the file name; refuses what Outpost cannot read."""
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    named = suffixes[:-1] if compressed else suffixes
    ext = named[-1] if named else ""
    kind = FORMATS.get(ext)
    if kind is None or (compressed and kind not in TEXT_FORMATS):
        shown = "".join(path.suffixes[-2:] if compressed else path.suffixes[-1:]) or "(none)"
        known = ", ".join(sorted(FORMATS))
        raise InvalidInput(f"{path.name}: unsupported file type {shown}; "
                           f"Outpost reads {known} (text ones also .gz)")
    if compressed and kind == "xlsx":
        raise InvalidInput(f"{path.name}: a compressed spreadsheet; unpack it first")
    stem = path.name[: len(path.name) - len(ext) - (3 if compressed else 0)]
    return kind, stem


def check_file(path: Path) -> None:
    if not path.exists():
        raise NotFound(f"file not found: {path}")
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory, not a file")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"cannot read {path}: permission denied")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name} is empty")


def first_attempt(options: ReadOptions) -> Attempt:
    return Attempt(encoding=options.encoding, decimal=options.decimal,
                   strict=options.bad_lines is None)


def prepare(cur: duckdb.DuckDBPyConnection, path: Path, kind: str, scratch: Scratch,
            attempt: Attempt) -> Source:
    try:
        if kind in ("csv", "tsv"):
            return _csv(cur, path, kind, scratch, attempt)
        if kind == "parquet":
            return _parquet(cur, path)
        return _json(cur, path, kind, attempt)
    except duckdb.Error as exc:
        raise explain(path, exc) from exc


def retry(source: Source, exc: duckdb.Error) -> Attempt | None:
    """Another way to read ``source`` after DuckDB failed on it, if there is one."""
    message = str(exc)
    if source.kind not in ("csv", "tsv"):
        return None if source.attempt.full_sniff or "sample_size" not in message else replace(
            source.attempt, full_sniff=True)
    if "Invalid unicode" in message and source.attempt.encoding is None and source.ascii_sample:
        # Only ASCII in the sample, a non-UTF-8 byte further on: a cp1252 file.
        return replace(source.attempt, encoding=sniff.SINGLE_BYTE)
    converting = _CONVERT.search(message) or "Could not convert" in message
    if converting and not source.attempt.full_sniff:
        # A value past DuckDB's type-sniffing sample does not fit: sniff types over all rows.
        return replace(source.attempt, full_sniff=True)
    return None


def explain(path: Path, exc: duckdb.Error) -> OutpostError:
    """One line for a failure to read ``path``."""
    message = str(exc)
    name = path.name
    if isinstance(exc, duckdb.IOException) and "write" in message.lower():
        reason = _WRITE_FAILED.search(message)
        return StorageError("could not write the dataset object: "
                            f"{reason[1] if reason else first_line(exc)}")
    line = _CSV_LINE.search(message)
    ragged = _RAGGED.search(message)
    if line and ragged:
        return ragged_rows(name, line[1], ragged[2], ragged[1])
    if "Invalid unicode" in message:
        where = f" (line {line[1]})" if line else ""
        return sniff.InvalidText(f"{name} is not valid UTF-8{where}")
    converting = _CONVERT.search(message)
    if line and converting:
        return InvalidInput(f"{name}: line {line[1]}, column {converting[1]!r}: {converting[2]}")
    if "magic bytes" in message or "too small to be a Parquet file" in message:
        return InvalidInput(f"{name} is not a valid Parquet file (truncated or corrupt)")
    return InvalidInput(f"{name}: {first_line(exc).replace(str(path), name)}")


def _csv(cur: duckdb.DuckDBPyConnection, path: Path, kind: str, scratch: Scratch,
         attempt: Attempt) -> Source:
    sample = sniff.sample_text(path, attempt.encoding)
    encoding = attempt.encoding or sample.encoding
    read_path = path
    mixed = sniff.mixed_newlines(sample.text)
    if mixed or encoding not in ("utf-8", "utf-8-sig"):
        read_path = scratch(".csv")
        sniff.transcode(path, encoding, read_path, newlines=mixed)
        sample = replace(sniff.sample_text(read_path), encoding=encoding)
    forced = "\t" if kind == "tsv" else None
    options = [_NULLSTR] + ([f"delim={literal(forced)}"] if forced else [])
    if attempt.decimal != ".":
        options.append(f"decimal_separator={literal(attempt.decimal)}")
    if attempt.full_sniff:
        options.append("sample_size=-1")
    try:
        row = cur.execute(
            "SELECT Delimiter, Quote, HasHeader, SkipRows, Columns, Prompt "
            f"FROM sniff_csv({literal(read_path)}, {', '.join(options)})"
        ).fetchone()
    except duckdb.InvalidInputException as exc:
        unicode = "Invalid unicode" in str(exc)
        if unicode and attempt.encoding is None and sample.ascii_only:
            # DuckDB's sniffer samples beyond our first bytes and met a cp1252 byte.
            return _csv(cur, path, kind, scratch, replace(attempt, encoding=sniff.SINGLE_BYTE))
        sniff.find_ragged(path, sample.text, forced, '"')
        if unicode:
            raise
        raise InvalidInput(
            f"{path.name}: cannot work out its CSV layout: {first_line(exc)}") from exc
    assert row is not None
    delimiter, quote, header, skip, columns, prompt = row
    quote = "" if quote == "(empty)" else quote
    if attempt.decimal == delimiter:
        raise InvalidInput(f"{path.name}: the decimal mark {attempt.decimal!r} is also the "
                           "delimiter; a file with decimal commas separates fields by ';'")
    if len(columns) == 1:
        # DuckDB falls back to one column when rows are ragged inside its sample.
        if attempt.strict:
            sniff.find_ragged(path, sample.text, None, quote or '"')
        delimiter = sniff.guess_delimiter(sample.text) or delimiter
        quote = quote or '"'
    first = sniff.first_record(sample.text, delimiter, quote)
    if header and len(first) == len(columns):
        sniff.check_header(path.name, sniff.header_fields(sample.text, delimiter, quote,
                                                          int(skip)))
    details = {"format": kind, "encoding": encoding, "delimiter": delimiter, "header": bool(header),
               **({"newlines": "normalized"} if mixed else {}),
               **({"decimal": attempt.decimal} if attempt.decimal != "." else {})}
    relation = f"read_csv({literal(read_path)}, {', '.join(options)})"
    # The sniffer's answer as a read_csv call with every option fixed (and ours passed
    # through): the COPY does not sniff the file a second time.
    sniffed = str(prompt).removeprefix("FROM ").rstrip(";")
    if sniffed.startswith(f"read_csv({literal(read_path)}, auto_detect=false, "):
        relation = sniffed  # else (a path the prompt quotes otherwise) DuckDB sniffs again
    layout = Layout(read_path, delimiter, quote, bool(header), len(columns), len(first))
    if not attempt.strict and len(columns) == 1:
        layout = replace(layout, columns=len(first))
    return Source(path, kind, relation, details, attempt, sample.ascii_only, layout,
                  tuple(options))


def with_policy(source: Source, header: bool, policy: BadLines) -> Source:
    """``source`` read with the header and dialect fixed, bad lines skipped or padded."""
    assert source.layout is not None
    layout = source.layout
    fixed = [*source.options, f"header={str(header).lower()}", f"quote={literal(layout.quote)}",
             "comment=''", "sample_size=-1",
             "ignore_errors=true" if policy == "skip" else "null_padding=true"]
    if not any(o.startswith("delim=") for o in fixed):
        fixed.append(f"delim={literal(layout.delimiter)}")
    relation = f"read_csv({literal(layout.path)}, {', '.join(dict.fromkeys(fixed))})"
    return replace(source, relation=relation, details={**source.details, "header": header})


def _parquet(cur: duckdb.DuckDBPyConnection, path: Path) -> Source:
    rows = cur.execute(
        f"SELECT name, num_children FROM parquet_schema({literal(path)})").fetchall()
    sniff.check_header(path.name, _top_level_names(rows))
    return Source(path, "parquet", f"read_parquet({literal(path)})", {"format": "parquet"})


def _top_level_names(rows: list[tuple[Any, ...]]) -> list[str]:
    """parquet_schema lists the tree depth first; keep the root's direct children."""

    def skip(i: int) -> int:
        children = rows[i][1] or 0
        i += 1
        for _ in range(children):
            i = skip(i)
        return i

    names, i = [], 1
    for _ in range(rows[0][1] or 0):
        names.append(str(rows[i][0]))
        i = skip(i)
    return names


def _json(cur: duckdb.DuckDBPyConnection, path: Path, kind: str, attempt: Attempt) -> Source:
    fmt = "newline_delimited" if kind == "ndjson" else "auto"
    sample = sniff.sample_text(path)
    if sample.needs_transcoding:
        raise sniff.InvalidText(f"{path.name}: JSON must be UTF-8 (found {sample.encoding})")
    keys = cur.execute(
        f"SELECT json_keys(json) FROM read_json_objects({literal(path)}, format={literal(fmt)}) "
        f"LIMIT {_KEY_SAMPLE}"
    ).fetchall()
    for (record,) in keys:
        sniff.check_header(path.name, list(record or []))
    options = f", format={literal(fmt)}" + (", sample_size=-1" if attempt.full_sniff else "")
    relation = f"read_json({literal(path)}{options})"
    return Source(path, kind, relation, {"format": kind, "encoding": "utf-8"}, attempt)
