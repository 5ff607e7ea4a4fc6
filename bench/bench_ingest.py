"""Ingest and profile speed: `outpost dataset import` / `dataset profile` against raw DuckDB.

Generates (once, cached in bench/.data/) a CSV of 5 M rows x 12 mixed columns, then in
the same run times, alternately and several times:
  - raw DuckDB: COPY (SELECT * FROM read_csv(f, nullstr=['NA', ''])) TO 'x.parquet'
      in-process (the statement alone) and as `python -c` (process start included); the
      null strings are the import's, so both write the same table (checked once);
  - `outpost dataset import f.csv` end to end through the CLI, into a fresh home each time,
      with its peak RSS and CPU time (user + system, all threads);
  - with --also DIR, the same import from another checkout (e.g. main) in the same rounds:
      a same-run before/after;
  - DuckDB SUMMARIZE of the stored Parquet object vs `outpost dataset profile`;
  - each step the import adds to the COPY, alone, in CPU time: sniffing, the row-accounting
    pass (counting the CSV's lines: no row lost), the content hash (the version id), the
    object's sha256, opening a fresh catalog;
  - an .xlsx of --xlsx-rows x 10 columns: python-calamine reading the sheet alone vs
    `import_dataset` of the same file in-process.
Prints the ratios (medians) and writes bench/results/bench_ingest.json.
Usage: python bench/bench_ingest.py [--rows N] [--repeat K] [--xlsx-rows N] [--also DIR]
       [--import-only]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = HERE / ".data"
RESULTS = Path(os.environ.get("OUTPOST_BENCH_RESULTS") or HERE / "results")
OUTPOST = [sys.executable, "-m", "core.cli.__main__"]
TARGET_IMPORT, TARGET_RSS_MB, TARGET_PROFILE = 1.1, 1536, 2.0
# What the import does besides the COPY, each timed alone (CPU): sniffing the dialect and
# types, counting the lines (row accounting), the content hash (version id), the object's
# sha256, opening a fresh catalog (migrations).
STEPS = ("sniff", "count", "hash", "sha256", "open_fresh")

# 12 columns: ids, floats (one with empty cells, one with NA), ints, categoricals,
# a high-cardinality string, a boolean, a date and a timestamp. Values come from
# hash() so the file is the same on every machine.
GENERATE = """
COPY (
  SELECT i AS id,
    (hash(i, 1) % 1000000) / 1000.0 AS amount,
    CASE WHEN i % 17 = 0 THEN NULL ELSE (hash(i, 2) % 2000000) / 1000000.0 - 1 END AS delta,
    CASE WHEN i % 23 = 0 THEN 'NA' ELSE ((hash(i, 3) % 100000) / 100.0)::VARCHAR END AS reading,
    (hash(i, 4) % 100)::INTEGER AS score,
    (i % 1000)::INTEGER AS bucket,
    ['north', 'south', 'east', 'west', 'center'][1 + (hash(i, 5) % 5)::INTEGER] AS region,
    CASE WHEN i % 11 = 0 THEN NULL ELSE 'site_' || (hash(i, 6) % 240)::VARCHAR END AS site,
    'user' || (hash(i, 7) % 100000)::VARCHAR AS user_id,
    hash(i, 8) % 3 = 0 AS flag,
    DATE '2020-01-01' + (hash(i, 9) % 1500)::INTEGER AS day,
    TIMESTAMP '2024-01-01' + to_seconds(i) AS ts
  FROM range({rows}) t(i)
) TO '{path}' (HEADER, DELIMITER ',')
"""


def dataset_csv(rows: int) -> Path:
    path = DATA / f"ingest_{rows}.csv"
    if not path.is_file():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        duckdb.connect().execute(GENERATE.format(rows=rows, path=tmp))
        tmp.rename(path)
    return path


def workbook(rows: int) -> Path:
    """An .xlsx of ``rows`` x 10 columns (numbers, whole numbers, text, dates), cached."""
    import datetime as dt

    import openpyxl

    path = DATA / f"ingest_{rows}.xlsx"
    if not path.is_file():
        DATA.mkdir(parents=True, exist_ok=True)
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("data")
        sheet.append([f"c{i}" for i in range(10)])
        day = dt.date(2024, 1, 1)
        for i in range(rows):
            sheet.append([i, i * 0.5, f"s{i % 97}", i % 7, day + dt.timedelta(days=i % 365),
                          (i * 7919) % 1000 / 10, f"t{i}", i % 2 == 0, i * 3, -i / 3])
        tmp = path.with_suffix(".tmp.xlsx")
        book.save(tmp)
        tmp.rename(path)
    return path


def xlsx_round(samples: dict[str, list[float]], book: Path, home: Path) -> None:
    import python_calamine

    sys.path.insert(0, str(REPO))
    from core.catalog import Catalog
    from core.config import Settings
    from core.datasets import import_dataset

    def read_alone() -> None:
        workbook = python_calamine.CalamineWorkbook.from_path(str(book))
        workbook.get_sheet_by_index(0).to_python()

    samples["xlsx_reader_s"].append(timed(read_alone))
    with Catalog.open(Settings(home=home)) as catalog:
        samples["xlsx_import_s"].append(timed(lambda: import_dataset(catalog, book, "sheet")))


def steps_round(samples: dict[str, list[float]], csv: Path, home: Path, work: Path) -> None:
    """CPU time (all threads) of each step the import adds to the COPY, each alone."""
    sys.path.insert(0, str(REPO))
    from core.catalog import Catalog
    from core.config import Settings
    from core.datasets import readers, resolve_version, version_path
    from core.datasets.accounting import count_lines
    from core.datasets.storing import content_hash, parquet_columns
    from core.objects import sha256_file

    samples["accounting_s"].append(timed(lambda: count_lines(csv, csv.name)))
    con = duckdb.connect()
    samples["step_sniff_cpu_s"].append(cpu_timed(lambda: readers.prepare(
        con, csv, "csv", lambda suffix: work / f"scratch{suffix}", readers.Attempt())))
    samples["step_count_cpu_s"].append(cpu_timed(lambda: count_lines(csv, csv.name)))
    with Catalog.open(Settings(home=home)) as catalog:
        parquet = version_path(catalog, resolve_version(catalog, "bench"))
    samples["step_hash_cpu_s"].append(cpu_timed(
        lambda: content_hash(con, parquet, parquet_columns(con, parquet))))
    samples["step_sha256_cpu_s"].append(cpu_timed(lambda: sha256_file(parquet)))
    samples["step_open_fresh_cpu_s"].append(cpu_timed(
        lambda: Catalog.open(Settings(home=work / "fresh")).close()))
    shutil.rmtree(work / "fresh")


def run_measured(args: list[str], env: dict[str, str] | None = None,
                 cwd: Path = REPO) -> tuple[float, float, str, float]:
    """(seconds, peak RSS MB, stdout, CPU seconds) of one child process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args[:6])} failed: {err.read().decode()[-500:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return elapsed, usage.ru_maxrss / 1024, out.read().decode(), cpu


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_timed(fn) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds of ``fn``: this process, all its threads (DuckDB's included)."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def copy_sql(csv: Path, out: Path) -> str:
    return f"COPY (SELECT * FROM read_csv('{csv}', nullstr=['NA', ''])) TO '{out}'"


def in_python(sql: str) -> list[str]:
    """A `python -c` running one DuckDB statement: raw DuckDB, process start included."""
    return [sys.executable, "-c", f"import duckdb; duckdb.connect().execute({sql!r}).fetchall()"]


def copy_round(samples: dict[str, list[float]], csv: Path, out: Path) -> None:
    sql = copy_sql(csv, out)
    start = time.process_time()
    samples["copy_inprocess_s"].append(timed(lambda: duckdb.connect().execute(sql)))
    samples["copy_inprocess_cpu_s"].append(time.process_time() - start)
    secs, rss, _, cpu = run_measured(in_python(sql))
    samples["copy_process_s"].append(secs)
    samples["copy_process_cpu_s"].append(cpu)
    samples["copy_rss_mb"].append(rss)


def import_round(samples: dict[str, list[float]], csv: Path, home: Path, rows: int,
                 tree: Path = REPO, key: str = "import") -> str:
    """Import ``csv`` with the CLI of checkout ``tree`` into a fresh ``home``; its version id."""
    env = dict(os.environ, OUTPOST_HOME=str(home), PYTHONPATH=str(tree))
    args = [*OUTPOST, "dataset", "import", str(csv), "--name", "bench", "--json"]
    secs, rss, stdout, cpu = run_measured(args, env, tree)
    samples[f"{key}_cli_s"].append(secs)
    samples[f"{key}_cpu_s"].append(cpu)
    samples[f"{key}_rss_mb"].append(rss)
    result = json.loads(stdout)
    assert result["rows"] == rows and result["new"], result
    if tree == REPO:
        secs, _, _, _ = run_measured([*OUTPOST, "--version"], env)
        samples["cli_start_s"].append(secs)
    return str(result["version"])


def same_table(copied: Path, home: Path) -> None:
    """The raw COPY wrote the table the import stored: same columns, types and content."""
    sys.path.insert(0, str(REPO))
    from core.catalog import Catalog
    from core.config import Settings
    from core.datasets import resolve_version, version_path
    from core.datasets.storing import content_hash, parquet_columns

    with Catalog.open(Settings(home=home)) as catalog:
        dv = resolve_version(catalog, "bench")
        cur = catalog.cursor()
        stored = parquet_columns(cur, version_path(catalog, dv))
        ours = content_hash(cur, copied, parquet_columns(cur, copied))[0]
    assert stored == parquet_columns(duckdb.connect(), copied), "the COPY's columns differ"
    assert ours == dv.version, "the raw COPY and the import hold different tables"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--xlsx-rows", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 k rows, 1 round")
    parser.add_argument("--also", type=Path, metavar="DIR",
                        help="also time the import of another checkout (before/after)")
    parser.add_argument("--import-only", action="store_true",
                        help="time only the COPY and the imports (no profile, .xlsx)")
    opts = parser.parse_args()
    if opts.quick:
        opts.rows, opts.repeat, opts.xlsx_rows = 20_000, 1, 2_000
    csv = dataset_csv(opts.rows)
    book = workbook(opts.xlsx_rows)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    samples: dict[str, list[float]] = {k: [] for k in (
        "copy_inprocess_s", "copy_inprocess_cpu_s", "copy_process_s", "copy_process_cpu_s",
        "copy_rss_mb",
        "import_cli_s", "import_cpu_s", "import_rss_mb", "also_cli_s", "also_cpu_s",
        "also_rss_mb", "cli_start_s", "summarize_inprocess_s", "profile_inprocess_s",
        "summarize_process_s", "profile_cli_s", "accounting_s", "step_sniff_cpu_s",
        "step_count_cpu_s", "step_hash_cpu_s", "step_sha256_cpu_s", "step_open_fresh_cpu_s",
        "xlsx_reader_s", "xlsx_import_s")}
    try:
        for index in range(opts.repeat):
            copy_round(samples, csv, work / f"x{index}.parquet")
            # The two imports take turns going first: neither always follows the COPY.
            trees = [(REPO, "import", work / f"home{index}")]
            if opts.also:
                trees.append((opts.also.resolve(), "also", work / f"also{index}"))
            versions = {import_round(samples, csv, home, opts.rows, tree, key)
                        for tree, key, home in (trees[::-1] if index % 2 else trees)}
            assert len(versions) == 1, f"the checkouts stored different versions: {versions}"
            if index == 0:
                same_table(work / "x0.parquet", work / "home0")
            (work / f"x{index}.parquet").unlink()
            steps_round(samples, csv, work / f"home{index}", work)
            if opts.import_only:
                continue
            profile_round(samples, work / f"home{index}")
            xlsx_round(samples, book, work / f"xhome{index}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(opts, csv, samples)


def profile_round(samples: dict[str, list[float]], home: Path) -> None:
    sys.path.insert(0, str(REPO))
    from core.catalog import Catalog
    from core.config import Settings
    from core.datasets import profile_version, resolve_version, version_path

    with Catalog.open(Settings(home=home)) as catalog:
        dv = resolve_version(catalog, "bench")
        parquet = version_path(catalog, dv)
        summarize = f"SUMMARIZE SELECT * FROM read_parquet('{parquet}')"
        samples["summarize_inprocess_s"].append(timed(
            lambda: duckdb.connect().execute(summarize).fetchall()))
        samples["profile_inprocess_s"].append(timed(lambda: profile_version(catalog, dv)))
    secs, _, _, _ = run_measured(in_python(summarize))
    samples["summarize_process_s"].append(secs)
    env = dict(os.environ, OUTPOST_HOME=str(home))
    secs, _, _, _ = run_measured([*OUTPOST, "dataset", "profile", "bench", "--json"], env)
    samples["profile_cli_s"].append(secs)


def paired(samples: dict[str, list[float]], top: str, bottom: str) -> float:
    """Median over the rounds of top/bottom within a round: steadier than a ratio of
    medians when the load of a shared machine changes during the run."""
    return statistics.median(t / b for t, b in zip(samples[top], samples[bottom], strict=True))


def report(opts: argparse.Namespace, csv: Path, samples: dict[str, list[float]]) -> None:
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    import_work = med["import_cli_s"] - med["cli_start_s"]
    ratios = {
        "import_vs_copy_process": med["import_cli_s"] / med["copy_process_s"],
        "import_vs_copy_process_paired": paired(samples, "import_cli_s", "copy_process_s"),
        "import_cpu_vs_copy_process_cpu_paired":
            paired(samples, "import_cpu_s", "copy_process_cpu_s"),
        "import_cpu_vs_copy_process_cpu": med["import_cpu_s"] / med["copy_process_cpu_s"],
        "import_vs_copy_inprocess": med["import_cli_s"] / med["copy_inprocess_s"],
        "import_less_cli_start_vs_copy_inprocess": import_work / med["copy_inprocess_s"],
        "accounting_share_of_copy_inprocess": med["accounting_s"] / med["copy_inprocess_s"],
        **{f"{step}_share_of_copy_inprocess_cpu": med[f"step_{step}_cpu_s"]
           / med["copy_inprocess_cpu_s"] for step in STEPS},
    }
    if opts.also:
        ratios |= {
            "also_vs_copy_process": med["also_cli_s"] / med["copy_process_s"],
            "also_cpu_vs_copy_process_cpu": med["also_cpu_s"] / med["copy_process_cpu_s"],
            "also_vs_copy_process_paired": paired(samples, "also_cli_s", "copy_process_s"),
            "import_vs_also": med["import_cli_s"] / med["also_cli_s"],
            "import_vs_also_paired": paired(samples, "import_cli_s", "also_cli_s"),
            "import_cpu_vs_also_cpu_paired": paired(samples, "import_cpu_s", "also_cpu_s"),
            "import_cpu_vs_also_cpu": med["import_cpu_s"] / med["also_cpu_s"],
        }
    if not opts.import_only:
        ratios |= {
            "profile_vs_summarize_inprocess":
                med["profile_inprocess_s"] / med["summarize_inprocess_s"],
            "profile_cli_vs_summarize_process":
                med["profile_cli_s"] / med["summarize_process_s"],
            "xlsx_import_vs_reader": med["xlsx_import_s"] / med["xlsx_reader_s"],
        }
    met = {"import_ratio": ratios["import_vs_copy_process_paired"] <= TARGET_IMPORT,
           "rss": med["import_rss_mb"] <= TARGET_RSS_MB}
    if not opts.import_only:
        met["profile_ratio"] = ratios["profile_vs_summarize_inprocess"] <= TARGET_PROFILE
    result = {
        "benchmark": "bench_ingest", "rows": opts.rows, "columns": 12, "repeat": opts.repeat,
        "xlsx_rows": opts.xlsx_rows, "xlsx_columns": 10,
        "also": str(opts.also) if opts.also else None,
        "csv_mb": round(csv.stat().st_size / 1e6, 1), "cpus": os.cpu_count(),
        "python": platform.python_version(), "duckdb": duckdb.__version__,
        "median": {k: round(v, 3) for k, v in med.items()},
        "samples": {k: [round(x, 3) for x in v] for k, v in samples.items() if v},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": {"import_ratio": TARGET_IMPORT, "rss_mb": TARGET_RSS_MB,
                    "profile_ratio": TARGET_PROFILE},
        "met": met,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{opts.rows:,} rows x 12 columns, {result['csv_mb']} MB CSV, median of {opts.repeat}")
    print(f"raw COPY: in-process {med['copy_inprocess_s']:.2f}s, as a process "
          f"{med['copy_process_s']:.2f}s, CPU {med['copy_process_cpu_s']:.2f}s "
          f"({med['copy_rss_mb']:.0f} MB)")
    print(f"outpost dataset import: {med['import_cli_s']:.2f}s, CPU {med['import_cpu_s']:.2f}s, "
          f"peak RSS {med['import_rss_mb']:.0f} MB (CLI start alone {med['cli_start_s']:.2f}s)")
    print(f"  ratio vs COPY process {ratios['import_vs_copy_process']:.2f} (target <= "
          f"{TARGET_IMPORT}), CPU {ratios['import_cpu_vs_copy_process_cpu']:.2f}; paired by "
          f"round {ratios['import_vs_copy_process_paired']:.2f}, CPU "
          f"{ratios['import_cpu_vs_copy_process_cpu_paired']:.2f}; vs in-process "
          f"COPY {ratios['import_vs_copy_inprocess']:.2f}; less CLI start "
          f"{ratios['import_less_cli_start_vs_copy_inprocess']:.2f}")
    print(f"row accounting pass alone {med['accounting_s']:.2f}s = "
          f"{ratios['accounting_share_of_copy_inprocess']:.1%} of the in-process COPY")
    print(f"steps alone, CPU as a share of the in-process COPY's "
          f"{med['copy_inprocess_cpu_s']:.2f}s: " + ", ".join(
              f"{step} {ratios[f'{step}_share_of_copy_inprocess_cpu']:.1%}" for step in STEPS))
    if opts.also:
        print(f"import from {opts.also}: {med['also_cli_s']:.2f}s, CPU {med['also_cpu_s']:.2f}s: "
              f"ratio vs COPY process {ratios['also_vs_copy_process']:.2f}, CPU "
              f"{ratios['also_cpu_vs_copy_process_cpu']:.2f}; paired by round "
              f"{ratios['also_vs_copy_process_paired']:.2f}")
        print(f"  this tree / that one: {ratios['import_vs_also']:.3f}, CPU "
              f"{ratios['import_cpu_vs_also_cpu']:.3f}; paired by round "
              f"{ratios['import_vs_also_paired']:.3f}, CPU "
              f"{ratios['import_cpu_vs_also_cpu_paired']:.3f}")
    if not opts.import_only:
        print(f"SUMMARIZE {med['summarize_inprocess_s']:.2f}s, profile "
              f"{med['profile_inprocess_s']:.2f}s: ratio "
              f"{ratios['profile_vs_summarize_inprocess']:.2f} (target <= {TARGET_PROFILE})")
        print(f"  CLI profile {med['profile_cli_s']:.2f}s vs SUMMARIZE process "
              f"{med['summarize_process_s']:.2f}s: "
              f"{ratios['profile_cli_vs_summarize_process']:.2f}")
        print(f".xlsx {opts.xlsx_rows:,} x 10: python-calamine alone "
              f"{med['xlsx_reader_s']:.2f}s, import {med['xlsx_import_s']:.2f}s: ratio "
              f"{ratios['xlsx_import_vs_reader']:.2f}")
    print(f"met: {met}")


if __name__ == "__main__":
    main()
