"""How the user asked a file to be read: encoding, decimal mark, sheet, bad-line policy."""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import InvalidInput

BadLines = Literal["skip", "null-pad"]
BAD_LINES: tuple[str, ...] = ("skip", "null-pad")
DECIMALS = (".", ",")
# The CLI's way out of a ragged-rows refusal; the GUI words its own (a choice in the form).
BAD_LINES_HINT = "pass --bad-lines skip or --bad-lines null-pad to import the rest"


def ragged_rows(label: str, line: int | str, fields: int | str, expected: int | str,
                hint: str = BAD_LINES_HINT) -> InvalidInput:
    """The one-line refusal of a file whose line ``line`` has another field count."""
    plural = "field" if str(fields) == "1" else "fields"
    return InvalidInput(f"{label}: ragged rows: line {line} has {fields} {plural}, expected "
                        f"{expected}; {hint}")


@dataclass(frozen=True)
class ReadOptions:
    """``None`` everywhere means: work it out from the file."""

    encoding: str | None = None
    decimal: str = "."
    sheet: str | None = None
    bad_lines: BadLines | None = None

    def __post_init__(self) -> None:
        if self.encoding is not None:
            try:
                object.__setattr__(self, "encoding", codecs.lookup(self.encoding).name)
            except LookupError:
                raise InvalidInput(f"unknown encoding {self.encoding!r}") from None
        if self.decimal not in DECIMALS:
            raise InvalidInput(f"--decimal must be '.' or ',', not {self.decimal!r}")
        if self.bad_lines is not None and self.bad_lines not in BAD_LINES:
            raise InvalidInput(
                f"--bad-lines must be one of {', '.join(BAD_LINES)}, not {self.bad_lines!r}")

    def to_dict(self) -> dict[str, Any]:
        """What the user chose, for the version's source metadata."""
        chosen = {"encoding": self.encoding, "sheet": self.sheet, "bad_lines": self.bad_lines,
                  "decimal": self.decimal if self.decimal != "." else None}
        return {k: v for k, v in chosen.items() if v is not None}
