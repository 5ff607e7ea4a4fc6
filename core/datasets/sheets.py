"""Reading one sheet of an ``.xlsx`` workbook into an Arrow table (python-calamine reads it).

The first non-blank row is the header. Each column gets the one type its cells
share (numbers, whole numbers, dates, timestamps, booleans, text); a column that
mixes types becomes text, so no cell is dropped or turned into a null.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.datasets.sniff import check_header
from core.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

_INT64 = 2**63


@dataclass(frozen=True)
class Sheet:
    table: pa.Table
    name: str
    read: int  # non-blank data rows of the sheet
    dropped_columns: int  # columns with neither a header nor a value


def sheet_names(path: Path) -> list[str]:
    """The workbook's sheets, in order (the import dialog lists them)."""
    with _reading(path.name) as calamine:
        return list(calamine.CalamineWorkbook.from_path(str(path)).sheet_names)


def read_sheet(path: Path, sheet: str | None) -> Sheet:
    """The sheet ``sheet`` (default: the first) of the workbook at ``path``."""
    label = path.name
    with _reading(label) as calamine:
        book = calamine.CalamineWorkbook.from_path(str(path))
        names = list(book.sheet_names)
        if not names:
            raise InvalidInput(f"{label} has no sheets")
        chosen = names[0] if sheet is None else sheet
        if chosen not in names:
            raise InvalidInput(f"{label} has no sheet {chosen!r} (it has: "
                               f"{', '.join(repr(n) for n in names)})")
        rows = book.get_sheet_by_name(chosen).to_python(skip_empty_area=False)
    return _table(label, chosen, rows)


@contextmanager
def _reading(label: str) -> Iterator[Any]:
    """python-calamine, with its failures worded as one line about the workbook."""
    import python_calamine as calamine

    try:
        yield calamine
    except calamine.PasswordError as exc:
        raise InvalidInput(f"{label} is password-protected; save an unprotected copy") from exc
    except (calamine.ZipError, calamine.XmlError) as exc:
        raise InvalidInput(f"{label} is not a valid .xlsx file (corrupt or truncated)") from exc
    except calamine.CalamineError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "password" in first.lower() or "encrypt" in first.lower() or "cfb" in first.lower():
            raise InvalidInput(f"{label} is password-protected or encrypted; "
                               "save an unprotected copy") from exc
        raise InvalidInput(f"{label}: cannot read the workbook: {first}") from exc


def _blank(row: list[Any]) -> bool:
    # list.count compares in C; 0 and False are not == "" or None, so they count as values.
    return row.count("") + row.count(None) == len(row)


def _table(label: str, sheet: str, rows: list[list[Any]]) -> Sheet:
    import pyarrow as pa

    data = [row for row in rows if not _blank(row)]
    if not data:
        raise InvalidInput(f"{label}: sheet {sheet!r} is empty")
    header, body = data[0], data[1:]
    if not body:
        raise InvalidInput(f"{label}: sheet {sheet!r} has no data rows")
    width = max(len(r) for r in data)
    padded = [r if len(r) == width else [*r, *[""] * (width - len(r))] for r in (header, *body)]
    header, columns = padded[0], list(zip(*padded[1:], strict=True))
    arrays: list[pa.Array] = []
    names: list[str] = []
    dropped = 0
    for index, cells in enumerate(columns):
        name = _text(header[index])
        values = [None if v == "" else v for v in cells]
        if not name and all(v is None for v in values):
            dropped += 1
            continue
        names.append(name)
        arrays.append(_column(values))
    check_header(f"{label} (sheet {sheet!r})", names)
    return Sheet(pa.table(arrays, names=names), sheet, len(body), dropped)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return "" if value is None else str(value)


def _column(values: list[Any]) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    kinds = set(map(type, values)) - {type(None)}
    if kinds == {float} or kinds == {int} or kinds == {float, int}:
        numbers = pa.array(values, pa.float64())
        finite = numbers.drop_null().to_numpy()
        if np.all(np.floor(finite) == finite) and np.all(np.abs(finite) < _INT64):
            return numbers.cast(pa.int64())
        return numbers
    if kinds == {bool}:
        return pa.array(values, pa.bool_())
    if kinds == {dt.date}:
        return pa.array(values, pa.date32())
    if kinds and kinds <= {dt.date, dt.datetime}:
        return pa.array([v if v is None or isinstance(v, dt.datetime)
                         else dt.datetime.combine(v, dt.time()) for v in values],
                        pa.timestamp("us"))
    if kinds == {str}:
        return pa.array(values, pa.string())  # already text: no per-cell conversion
    return pa.array([None if v is None else _text(v) for v in values], pa.string())
