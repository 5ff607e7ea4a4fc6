"""List what a frozen program bundles: `python packaging/contents.py PROGRAM [--json]`.

PROGRAM is the one-file agent (its embedded archive is read) or the one-folder desktop
executable (its archive plus the files of its `_internal/` folder). Each line is one entry:
a Python module (`numpy.linalg`), a data file or a shared library (`libpython3.11.so.1.0`).
`--forbid REGEX` (repeatable) exits 1 if an entry matches it at its start (ignoring case):
`--forbid 'PySide6|libQt6'` proves a build carries no Qt.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from PyInstaller.archive.readers import pkg_archive_contents

INTERNAL = "_internal"


def bundled(program: Path) -> list[str]:
    """Entries of the program's archive and, for a one-folder build, of its folder."""
    names = set(pkg_archive_contents(str(program), recursive=True))
    internal = program.parent / INTERNAL
    if internal.is_dir():
        names.update(str(p.relative_to(internal)) for p in internal.rglob("*") if p.is_file())
    return sorted(names)


def offending(entries: list[str], patterns: list[str]) -> list[str]:
    """Entries that match (at their start, ignoring case) any of the regular expressions."""
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    return [e for e in entries if any(c.match(e) for c in compiled)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", type=Path, help="the frozen executable")
    parser.add_argument("--json", action="store_true", help="a JSON list on stdout")
    parser.add_argument("--forbid", action="append", default=[], metavar="REGEX",
                        help="fail if an entry matches this at its start (ignoring case)")
    args = parser.parse_args(argv)
    if not args.program.is_file():
        print(f"error: {args.program} is not a file", file=sys.stderr)
        return 1
    entries = bundled(args.program)
    print(json.dumps(entries) if args.json else "\n".join(entries))
    bad = offending(entries, args.forbid)
    if bad:
        print(f"error: {len(bad)} forbidden entries, e.g. {bad[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
