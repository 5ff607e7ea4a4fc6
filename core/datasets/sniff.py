"""Sniffing a text file before DuckDB reads it: its encoding, and CSV header problems.

DuckDB sniffs the CSV dialect and the column types itself. What it does not do
is refuse what a user would want refused: it renames duplicate or empty header
names (``a_1``, ``column1``), it falls back to one column when rows are ragged
inside its sample, and it reads only UTF-8, UTF-16 and latin-1. This module
finds those cases from the first bytes of the file, so they fail with one line.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import InvalidInput

SAMPLE_BYTES = 1 << 18
_CHUNK = 1 << 20
# cp1252 is the single-byte encoding spreadsheets write on Windows; latin-1 text is
# the same except in 0x80-0x9F, where latin-1 has only control characters.
SINGLE_BYTE = "cp1252"
DELIMITERS = (",", ";", "\t", "|")


class InvalidText(InvalidInput):
    """The bytes are neither UTF-8 nor the known single-byte encoding."""


@dataclass(frozen=True)
class TextSample:
    encoding: str  # utf-8 | utf-8-sig | utf-16 | cp1252
    text: str
    ascii_only: bool

    @property
    def needs_transcoding(self) -> bool:
        return self.encoding not in ("utf-8", "utf-8-sig")


@contextmanager
def open_raw(path: Path) -> Iterator[BinaryIO]:
    """The file's bytes, decompressed when it is gzipped (DuckDB reads .gz itself)."""
    if path.suffix.lower() == ".gz":
        with gzip.open(path, "rb") as fh:
            yield fh  # type: ignore[misc]
    else:
        with path.open("rb") as fh:
            yield fh


def _not_text(path: Path, data: bytes, offset: int) -> InvalidText:
    return InvalidText(
        f"{path.name} is not UTF-8 and not {SINGLE_BYTE}/latin-1 text: "
        f"byte 0x{data[offset]:02x} at offset {offset}"
    )


def sample_text(path: Path) -> TextSample:
    """Decode the first bytes of ``path`` and say which encoding they are in."""
    try:
        with open_raw(path) as fh:
            data = fh.read(SAMPLE_BYTES)
    except (OSError, EOFError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from exc
    if len(data) < SAMPLE_BYTES and not data.removeprefix(codecs.BOM_UTF8).strip():
        raise InvalidInput(f"{path.name} is empty (nothing but blank space)")
    if data.startswith(codecs.BOM_UTF8):
        return TextSample("utf-8-sig", _decode_prefix(data[3:], "utf-8"), data[3:].isascii())
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return TextSample("utf-16", _decode_prefix(data, "utf-16"), False)
    if b"\x00" in data:
        raise InvalidText(f"{path.name} looks like a binary file, not text (it contains NUL bytes)")
    try:
        return TextSample("utf-8", _decode_prefix(data, "utf-8"), data.isascii())
    except UnicodeDecodeError as exc:
        if not data[: exc.start].isascii():
            # Valid multi-byte UTF-8 before the bad byte: a damaged UTF-8 file, not cp1252.
            raise InvalidText(
                f"{path.name} is not valid UTF-8: "
                f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
            ) from exc
        try:
            return TextSample(SINGLE_BYTE, data.decode(SINGLE_BYTE), False)
        except UnicodeDecodeError as exc2:
            raise _not_text(path, data, exc2.start) from exc2


def _decode_prefix(data: bytes, encoding: str) -> str:
    """Decode a prefix that may end inside a multi-byte character."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    return decoder.decode(data, final=False)


def transcode(path: Path, encoding: str, out: Path) -> None:
    """Stream ``path`` into ``out`` as UTF-8; a byte that does not decode is an error."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    with open_raw(path) as src, out.open("w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(_CHUNK):
            try:
                dst.write(decoder.decode(chunk))
            except UnicodeDecodeError as exc:
                raise InvalidText(
                    f"{path.name} is not UTF-8 and not {SINGLE_BYTE}/latin-1 text: "
                    f"byte 0x{chunk[exc.start]:02x} at offset {offset + exc.start}"
                ) from exc
            offset += len(chunk)
        dst.write(decoder.decode(b"", final=True))


def _records(text: str, delimiter: str, quote: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for each complete record of the sample."""
    body = text[: text.rfind("\n") + 1] if "\n" in text else text
    reader = csv.reader(io.StringIO(body), delimiter=delimiter, quotechar=quote or '"',
                        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE, strict=False)
    start = 1
    for fields in reader:
        yield start, fields
        start = reader.line_num + 1


def header_fields(text: str, delimiter: str, quote: str, skip_lines: int) -> list[str]:
    lines = text.split("\n", skip_lines)
    rest = lines[-1] if len(lines) > skip_lines else ""
    for _, fields in _records(rest, delimiter, quote):
        return fields
    return []


def check_header(label: str, names: list[str]) -> None:
    """Refuse empty or duplicate column names, naming them (``label``: the file or table)."""
    empty = [i + 1 for i, name in enumerate(names) if not name.strip()]
    if empty:
        where = ", ".join(str(i) for i in empty)
        raise InvalidInput(f"{label}: empty column name at position {where}")
    seen: dict[str, str] = {}
    dups: list[str] = []
    for name in names:
        key = name.strip().lower()
        if key in seen and name not in dups:
            dups.append(name if seen[key] == name else f"{seen[key]}/{name}")
        seen.setdefault(key, name)
    if dups:
        raise InvalidInput(f"{label}: duplicate column names: {', '.join(dups)}")


def find_ragged(path: Path, text: str, delimiter: str | None, quote: str) -> None:
    """Raise for the first record whose field count differs from the header's."""
    first_line = text.split("\n", 1)[0]
    if delimiter is None:
        counts = {d: first_line.count(d) for d in DELIMITERS}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0:
            return
    expected: int | None = None
    for line, fields in _records(text, delimiter, quote):
        if not fields:
            continue
        if expected is None:
            expected = len(fields)
        elif len(fields) != expected:
            raise InvalidInput(
                f"{path.name}: ragged rows: "
                f"line {line} has {len(fields)} fields, expected {expected}"
            )
