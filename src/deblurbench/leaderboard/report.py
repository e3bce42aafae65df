"""The board as `deblurbench leaderboard` prints and writes it: one ranked frame per (data set,
split, protocol) with its per-PBA-level and per-subset means and its unavailable metrics, as a
terminal table (rich) or markdown. Ranking and columns come from :mod:`.table`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deblurbench.leaderboard.snapshot import open_snapshot
from deblurbench.leaderboard.table import (
    COST,
    MEAN_RANK,
    Board,
    display_frame,
    export,
    fmt,
    load_boards,
    view,
)
from deblurbench.store import queries


def mean_table(db_path: str | Path) -> dict[tuple[str, str, str], pd.DataFrame]:
    """One display frame per (dataset, split, protocol), ranked by mean rank over all metrics.

    ``frame.attrs["unavailable"]`` maps each metric that was asked for but has no value on
    this board to the reason (what the user must provide).
    """
    con = open_snapshot(db_path)
    try:
        boards = load_boards(con)
        missing = queries.unavailable(con)
        per_level = {k: queries.region_means(con, k[0], k[1], b.table["run_id"])
                     for k, b in boards.items()}
        per_subset = {k: queries.subset_means(con, b.table["run_id"]) for k, b in boards.items()}
    finally:
        con.close()
    out = {}
    for key, b in boards.items():
        t, cols = view(b)
        frame = display_frame(t, cols, b)
        frame["error"] = t["error"].values
        m = missing[(missing["dataset"] == key[0]) & (missing["split"] == key[1])
                    & (missing["protocol"] == key[2])]
        frame.attrs["unavailable"] = dict(zip(m["metric"], m["reason"]))
        frame.attrs["levels"] = _levels(per_level[key], b, "psnr")
        frame.attrs["subsets"] = _levels(per_subset[key], b, "psnr", order=None)
        out[key] = frame
    return out


LEVELS = ("slight", "mild", "moderate", "severe")


def _levels(rm: pd.DataFrame, board: Board, metric: str,
            order: tuple[str, ...] | None = LEVELS) -> dict:
    """{"metric", "n": {part: images}, "means": {method: {part: mean}}} of one metric's
    scores per part of the images (PBA level, or image subset when ``order`` is None: in
    sorted order) on this board (its spec only), or {} when there are none."""
    spec = next((c.spec_id for c in board.columns if c.metric == metric), None)
    rm = rm[(rm["metric"] == metric) & (rm["spec_id"] == spec)] if len(rm) else rm
    if spec is None or not len(rm):
        return {}
    means = {m: dict(zip(g["region"], g["mean"])) for m, g in rm.groupby("method")}
    n = rm.groupby("region")["n"].max().to_dict()
    parts = order if order is not None else tuple(sorted(n))
    return {"metric": metric, "n": {k: int(n[k]) for k in parts if k in n}, "means": means}


def _unavailable_lines(t: pd.DataFrame) -> list[str]:
    return [f"{k}: {why}" for k, why in t.attrs.get("unavailable", {}).items()]


def to_markdown(tables: dict[tuple[str, str, str], pd.DataFrame]) -> str:
    parts = [f"Ranking: {MEAN_RANK} over all metric columns (1 = best; see "
             "deblurbench.leaderboard.table).\n"]
    for (dataset, split, protocol), t in tables.items():
        parts.append(f"## {dataset} / {split} (protocol: {protocol})\n")
        parts.append(export(t.drop(columns=["error"]), "markdown"))
        for r in t[t["status"] != "ok"].itertuples():
            parts.append(f"\n- {r.method} failed: {r.error}")
        lines = _unavailable_lines(t)
        if lines:
            parts.append("\nUnavailable here (no value, never ranked):\n")
            parts.extend(f"- {line}" for line in lines)
        parts.append("\n")
    return "\n".join(parts)


def print_tables(tables: dict[tuple[str, str, str], pd.DataFrame]) -> None:
    """A terminal board: rank, method, metric means, mean rank and cost, never truncated; the
    labels, failures and unavailable metrics as notes below (the markdown file has them all).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200) if not Console().is_terminal else Console()
    for (dataset, split, protocol), t in tables.items():
        metric_cols = [c for c in t.columns if c[-1:] in ("↑", "↓")]
        rows = []
        for i, d in enumerate(t.to_dict("records"), start=1):
            name = d["method"] if d["status"] == "ok" else f"{d['method']} ({d['status']})"
            rows.append([str(i), name, fmt(d["n_images"]), *[fmt(d[c]) for c in metric_cols],
                         fmt(d[MEAN_RANK], 2), *[fmt(d[c], 2) for c in COST]])
        heads = ["#", "method", "n", *metric_cols, MEAN_RANK, *COST]
        table = Table(title=f"{dataset} / {split}  (protocol: {protocol}; sorted by {MEAN_RANK})",
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for j, h in enumerate(heads):
            width = max([len(h)] + [len(r[j]) for r in rows])  # never truncate a number
            table.add_column(h, justify="left" if h == "method" else "right", no_wrap=True,
                             min_width=width)
        for r, d in zip(rows, t.to_dict("records")):
            table.add_row(*r, style=None if d["status"] == "ok" else "dim")
        console.print(table)
        for d in t.to_dict("records"):
            console.print(f"  {d['method']}: {d['label']}", highlight=False, soft_wrap=True)
        for attr, what in (("levels", "per PBA blur level of the input"),
                           ("subsets", "per image subset of the data set")):
            lv = t.attrs.get(attr)
            if not lv:
                continue
            console.print(f"\n{lv['metric']} {what} (n: images)")
            per = Table(box=box.SIMPLE_HEAD, pad_edge=False)
            per.add_column("method", no_wrap=True)
            for k, n in lv["n"].items():
                per.add_column(f"{k} (n={n})", justify="right", no_wrap=True)
            for meth in t["method"]:
                if meth in lv["means"]:
                    per.add_row(meth, *[fmt(lv["means"][meth].get(k)) for k in lv["n"]])
            console.print(per)
        for r in t[t["status"] != "ok"].itertuples():
            console.print(f"[red]{r.method} failed:[/red] {r.error}")
        lines = _unavailable_lines(t)
        if lines:
            console.print(f"[yellow]unavailable here (no value, never ranked):[/yellow] "
                          f"{', '.join(t.attrs['unavailable'])}; `deblurbench weights status` "
                          "says which files to provide")
