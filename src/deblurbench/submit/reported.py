"""Load `leaderboard/reported.csv` (numbers transcribed from papers) into the `reported` table.

The CSV's columns are ``method,dataset,subset,metric,value,source,paper,table,notes``; the
table's ``table_ref`` takes ``table``. The whole table is replaced in one transaction, so
reloading never duplicates and a bad file changes nothing. Every problem of the file is
reported at once, with its line number.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from deblurbench.store import db

COLUMNS = ["method", "dataset", "subset", "metric", "value", "source", "paper", "table", "notes"]
REQUIRED = COLUMNS[:-1]


class ReportedError(ValueError):
    pass


def read_reported(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reported-numbers CSV not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != COLUMNS:
            raise ReportedError(f"{path}: columns must be {','.join(COLUMNS)}; found "
                                f"{','.join(reader.fieldnames or [])}")
        rows, problems = [], []
        for lineno, r in enumerate(reader, start=2):
            empty = [c for c in REQUIRED if not (r.get(c) or "").strip()]
            if empty:
                problems.append(f"line {lineno}: empty {', '.join(empty)}")
                continue
            try:
                value = float(r["value"])
            except ValueError:
                problems.append(f"line {lineno}: value {r['value']!r} is not a number")
                continue
            if not math.isfinite(value):
                problems.append(f"line {lineno}: value {r['value']!r} is not finite")
                continue
            rows.append({"method": r["method"], "dataset": r["dataset"], "subset": r["subset"],
                         "metric": r["metric"], "value": value, "source": r["source"],
                         "paper": r["paper"], "table_ref": r["table"],
                         "notes": r["notes"] or None})
    if problems:
        raise ReportedError(f"{path}: {len(problems)} bad rows, nothing loaded:\n"
                            + "\n".join(problems))
    return rows


def load_reported(csv_path: str | Path, db_path: str | Path) -> int:
    """Replace the `reported` table with the CSV's rows; returns the number of rows."""
    rows = read_reported(csv_path)
    con = db.connect(db_path)
    try:
        db.replace_reported(con, rows)
    finally:
        con.close()
    return len(rows)
