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
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.datasets.options import ragged_rows
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


def sample_text(path: Path, encoding: str | None = None) -> TextSample:
    """Decode the first bytes of ``path`` and say which encoding they are in.

    ``encoding``: the user's choice; the sample must decode in it.
    """
    try:
        with open_raw(path) as fh:
            data = fh.read(SAMPLE_BYTES)
    except (OSError, EOFError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from exc
    if encoding is not None:
        try:
            text = _decode_prefix(data, encoding)
        except UnicodeDecodeError as exc:
            raise InvalidText(f"{path.name} is not {encoding} text: byte "
                              f"0x{data[exc.start]:02x} at offset {exc.start}") from exc
        if not text.lstrip("\ufeff").strip():
            raise InvalidInput(f"{path.name} is empty (nothing but blank space)")
        return TextSample(encoding, text.lstrip("\ufeff"), data.isascii())
    if len(data) < SAMPLE_BYTES and not data.removeprefix(codecs.BOM_UTF8).strip():
        raise InvalidInput(f"{path.name} is empty (nothing but blank space)")
    if data.startswith(codecs.BOM_UTF8):
        return TextSample("utf-8-sig", _decode_prefix(data[3:], "utf-8"), data[3:].isascii())
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return TextSample("utf-16", _decode_prefix(data, "utf-16"), False)
    if b"\x00" in data:
        utf16 = _utf16_without_bom(data)
        if utf16:
            raise InvalidText(f"{path.name} looks like UTF-16 without a byte-order mark; "
                              f"pass --encoding {utf16}")
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


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when every other byte of the sample is NUL, as in ASCII text."""
    pairs = data[: len(data) - len(data) % 2]
    if not pairs:
        return None
    low, high = pairs[0::2], pairs[1::2]
    if high.count(0) >= 0.9 * len(high) and low.count(0) < 0.1 * len(low):
        return "utf-16-le"
    if low.count(0) >= 0.9 * len(low) and high.count(0) < 0.1 * len(high):
        return "utf-16-be"
    return None


def mixed_newlines(text: str) -> bool:
    """Both CRLF and bare LF line ends in the sample (DuckDB's sniffer gives up on those)."""
    crlf = text.count("\r\n")
    return 0 < crlf < text.count("\n")


def _decode_prefix(data: bytes, encoding: str) -> str:
    """Decode a prefix that may end inside a multi-byte character."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    return decoder.decode(data, final=False)


def transcode(path: Path, encoding: str, out: Path, *, newlines: bool = False) -> None:
    """Stream ``path`` into ``out`` as UTF-8; a byte that does not decode is an error.

    ``newlines``: also turn every CRLF and CR line end into LF.
    """
    if newlines:
        with open_raw(path) as src, io.TextIOWrapper(src, encoding, newline=None) as text, \
                out.open("w", encoding="utf-8", newline="") as dst:
            try:
                shutil.copyfileobj(text, dst, _CHUNK)
            except UnicodeDecodeError as exc:
                raise InvalidText(f"{path.name} is not {encoding} text: {exc.reason}") from exc
        return
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


def first_record(text: str, delimiter: str, quote: str) -> list[str]:
    """The fields of the sample's first non-blank record."""
    for _, fields in _records(text, delimiter, quote):
        if fields:
            return fields
    return []


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
        trailing = " (a delimiter at the end of the header line?)" if empty == [len(names)] else ""
        raise InvalidInput(f"{label}: empty column name at position {where}{trailing}")
    seen: dict[str, str] = {}
    dups: list[str] = []
    for name in names:
        key = name.strip().lower()
        if key in seen and name not in dups:
            dups.append(name if seen[key] == name else f"{seen[key]}/{name}")
        seen.setdefault(key, name)
    if dups:
        raise InvalidInput(f"{label}: duplicate column names: {', '.join(dups)}")


def guess_delimiter(text: str) -> str | None:
    """The most frequent of the usual delimiters on the first line, if any is there."""
    first_line = text.split("\n", 1)[0]
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else None


def find_ragged(path: Path, text: str, delimiter: str | None, quote: str) -> None:
    """Raise for the first record whose field count differs from the header's."""
    delimiter = delimiter or guess_delimiter(text)
    if delimiter is None:
        return
    expected: int | None = None
    for line, fields in _records(text, delimiter, quote):
        if not fields:
            continue
        if expected is None:
            expected = len(fields)
        elif len(fields) != expected:
            raise ragged_rows(path.name, line, len(fields), expected)
