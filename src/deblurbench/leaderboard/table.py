"""The per-method mean table, read-only from the results database.

Scores are grouped by their metric *spec*: two numbers for the same metric name computed under
different specs become separate columns (``psnr@<spec>``), never one ranked column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deblurbench.store.db import connect

QUERY = """
SELECT r.dataset, r.split, r.protocol, r.method, m.label, r.status, r.error,
       r.latency_ms_per_mp, r.n_images, s.metric, s.spec_id, ms.direction, avg(s.value) AS mean
FROM runs r
LEFT JOIN scores s ON s.run_id = r.run_id AND s.region = 'all'
LEFT JOIN metric_specs ms ON ms.spec_id = s.spec_id
LEFT JOIN methods m ON m.method = r.method
GROUP BY ALL
"""


def mean_table(db_path: str | Path) -> dict[tuple[str, str, str], pd.DataFrame]:
    """One frame per (dataset, split, protocol): rows are methods, columns metrics + cost."""
    con = connect(db_path, read_only=True)
    try:
        df = con.execute(QUERY).df()
    finally:
        con.close()
    tables = {}
    for key, g in df.groupby(["dataset", "split", "protocol"]):
        scored = g.dropna(subset=["metric"])
        names = scored.groupby("metric")["spec_id"].nunique()
        col = scored.apply(lambda r: r["metric"] if names[r["metric"]] == 1
                           else f"{r['metric']}@{r['spec_id']}", axis=1) if len(scored) else []
        scored = scored.assign(column=col)
        wide = scored.pivot_table(index="method", columns="column", values="mean") \
            if len(scored) else pd.DataFrame()
        arrows = {c: ("↑" if d == "higher" else "↓")
                  for c, d in zip(scored.get("column", []), scored.get("direction", []))}
        meta = g.groupby("method").first()[["label", "status", "n_images", "latency_ms_per_mp",
                                            "error"]]
        table = meta.join(wide, how="left")
        table = table.rename(columns={c: f"{c} {a}" for c, a in arrows.items()})
        first = next((c for c in table.columns if c.startswith("psnr")), None)
        if first:
            table = table.sort_values(first, ascending=False, na_position="last")
        tables[tuple(key)] = table.reset_index()
    return tables


def to_markdown(tables: dict[tuple[str, str, str], pd.DataFrame]) -> str:
    parts = []
    for (dataset, split, protocol), t in tables.items():
        parts.append(f"## {dataset} / {split} (protocol: {protocol})\n")
        parts.append(t.drop(columns=["error"]).to_markdown(index=False, floatfmt=".4f"))
        errs = t.dropna(subset=["error"])
        for r in errs.itertuples():
            parts.append(f"\n- {r.method} failed: {r.error}")
        parts.append("\n")
    return "\n".join(parts)


def print_tables(tables: dict[tuple[str, str, str], pd.DataFrame]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    for (dataset, split, protocol), t in tables.items():
        table = Table(title=f"{dataset} / {split}  (protocol: {protocol})")
        cols = [c for c in t.columns if c != "error"]
        for c in cols:
            table.add_column(c, justify="left" if c in ("method", "label", "status") else "right")
        for d in t.to_dict("records"):
            table.add_row(*[_fmt(d[c]) for c in cols])
        console.print(table)
        for r in t.dropna(subset=["error"]).itertuples():
            console.print(f"[red]{r.method} failed:[/red] {r.error}")


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
