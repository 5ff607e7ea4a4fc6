"""Build the frozen programs with PyInstaller: `python packaging/build.py [agent|desktop|all]`.

- agent:   dist/outpost-agent        one console executable, the edge agent only
- desktop: dist/outpost/outpost      one folder, the GUI + `outpost` CLI + local agent

A build is skipped when nothing it is made from changed: the spec, the entry point, the
package sources (and resources/ for the desktop), the installed distributions and the
Python version are hashed into a fingerprint kept beside the output. A lock file keeps
two processes (two test sessions, `make dist` during a test run) from building at once.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"


@dataclass(frozen=True)
class Target:
    name: str
    spec: str
    entry: str
    sources: tuple[str, ...]  # folders under ROOT whose files go into the build
    output: str  # relative to the dist folder: the executable

    def executable(self, dist: Path) -> Path:
        return dist / self.output


TARGETS = {
    "agent": Target("agent", "agent.spec", "agent_entry.py", ("edge_agent",), "outpost-agent"),
    "desktop": Target("desktop", "desktop.spec", "desktop_entry.py",
                      ("app", "core", "edge_agent", "resources"), "outpost/outpost"),
}


@dataclass(frozen=True)
class BuildResult:
    target: str
    executable: Path
    seconds: float  # 0.0 when the previous build was reused
    reused: bool
    size_bytes: int  # the executable (agent) or the whole folder (desktop)

    def to_dict(self) -> dict[str, object]:
        return {"target": self.target, "executable": str(self.executable),
                "seconds": round(self.seconds, 1), "reused": self.reused,
                "size_bytes": self.size_bytes}


def _source_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def fingerprint(target: Target) -> str:
    """sha256 over everything the build reads; equal fingerprints give equal programs."""
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    for dist in sorted(distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        digest.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    files = [PACKAGING / target.spec, PACKAGING / target.entry, ROOT / "pyproject.toml"]
    for folder in target.sources:
        files.extend(_source_files(ROOT / folder))
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(name: str, dist: Path = ROOT / "dist", work: Path = ROOT / "build" / "pyinstaller",
          force: bool = False) -> BuildResult:
    """Build one target unless an identical build is already in `dist`."""
    target = TARGETS[name]
    dist, work = dist.resolve(), work.resolve()
    stamp = dist / f".{target.name}.fingerprint"
    executable = target.executable(dist)
    product = executable if target.name == "agent" else executable.parent
    with _locked(work / f"{target.name}.lock"):
        wanted = fingerprint(target)
        if (not force and executable.exists() and stamp.exists()
                and stamp.read_text().strip() == wanted):
            return BuildResult(name, executable, 0.0, True, _size(product))
        stamp.unlink(missing_ok=True)
        start = time.monotonic()
        log = work / f"{target.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as out:
            done = subprocess.run(
                [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                 "--distpath", str(dist), "--workpath", str(work / target.name),
                 str(PACKAGING / target.spec)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise SystemExit(f"error: PyInstaller failed for {name} (see {log}): "
                             f"{tail[0] if tail else done.returncode}")
        seconds = time.monotonic() - start
        stamp.write_text(wanted + "\n")
    return BuildResult(name, executable, seconds, False, _size(product))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=["all"],
                        choices=[*TARGETS, "all"], help="what to build (all)")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (dist)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    names = list(TARGETS) if "all" in args.targets else list(dict.fromkeys(args.targets))
    if shutil.which("objdump") is None and sys.platform == "linux":
        raise SystemExit("error: PyInstaller needs objdump on Linux: install binutils")
    results = [build(n, args.dist, force=args.force) for n in names]
    if args.json:
        print(json.dumps([r.to_dict() for r in results]))
    for r in results if not args.json else []:
        how = "up to date" if r.reused else f"built in {r.seconds:.0f} s"
        print(f"{r.target}: {r.executable} ({r.size_bytes / 1e6:.1f} MB) {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
