"""Leaderboard tables, read-only from (a snapshot of) the results database.

One board per (dataset, split, protocol), where the protocol names the reference too when it is
not the original ground truth (``defocus+aligned``). Columns are metric *specs*: when one metric name was
computed under two specs in a board, each becomes its own column ``metric@spec_id`` and is
ranked on its own, so numbers from different definitions are never ranked together.

Ranking, documented once here and shown in the app:

- per metric column, rank 1 is the best value in the metric's direction (higher or lower is
  better); ties share the smaller rank; failed runs and missing values are not ranked;
- the aggregate is the **mean rank** over the metric columns the user chose (by default every
  column of the shown families); a method that lacks one of them gets no mean rank ("n/a")
  rather than a rank over fewer metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from deblurbench.store import queries

ARROW = {"higher": "↑", "lower": "↓"}
META = ["method", "source", "kind", "label", "status", "n_images"]
COST = list(queries.COST_COLUMNS)
MEAN_RANK = "mean rank"


@dataclass(frozen=True)
class MetricColumn:
    key: str  # the metric, or metric@<end of spec_id> when specs differ within the board
    metric: str
    spec_id: str
    direction: str  # "higher" or "lower"
    family: str  # fidelity, perceptual, no-reference

    @property
    def header(self) -> str:
        return f"{self.key} {ARROW.get(self.direction, '')}".strip()


@dataclass
class Board:
    dataset: str
    split: str
    protocol: str
    table: pd.DataFrame  # one row per method: META, run_id, metric keys, COST, floor
    columns: list[MetricColumn]
    ci: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.split, self.protocol)


def _json(value):
    """A JSON column as Python (DuckDB hands JSON back as text)."""
    import json

    if isinstance(value, str) and value:
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, (dict, list)) else None


def honest_label(row: pd.Series) -> str:
    """The card's label plus what the number was measured with (configuration, device)."""
    parts = [str(row["label"])] if row.get("label") else []
    if row.get("source") == "submitted":
        parts.append("submitted outputs, not rerun here")
    else:
        if isinstance(row.get("config"), str) and row["config"]:
            parts.append(f"{row['config']} config")
        dev = str(row.get("device") or "")
        if dev:
            parts.append("GPU" if dev.startswith("cuda") else "CPU")
    if isinstance(row.get("variant"), str) and row["variant"]:
        parts.append(f"variant {row['variant']}")
    if isinstance(row.get("trained_on"), str) and row["trained_on"]:
        parts.append(f"trained on {row['trained_on']}")
    ckpt = _json(row.get("checkpoint"))
    if ckpt:
        parts.append(f"checkpoint {str(ckpt.get('sha256', ''))[:8]} "
                     f"({ckpt.get('selected', 'step ' + str(ckpt.get('step')))})")
    for w in _json(row.get("weights")) or []:
        parts.append(f"{w.get('id', '?')}: {w.get('status', '?')}")
    # a part the card's own label already says is not said twice
    parts = parts[:1] + [p for p in parts[1:] if p.lower() not in parts[0].lower()] \
        if row.get("label") else parts
    out, data = row.get("output_bits"), row.get("dataset_bits")
    if pd.notna(out) and pd.notna(data) and out < data:
        parts.append(f"{int(out)}-bit outputs of {int(data)}-bit data")
    return ", ".join(parts)


def load_boards(con) -> dict[tuple[str, str, str], Board]:
    runs = queries.runs(con)
    means = queries.means(con)
    boards: dict[tuple[str, str, str], Board] = {}
    for key, g in runs.groupby(["dataset", "split", "protocol"], sort=True):
        m = means[means["run_id"].isin(g["run_id"])]
        n_specs = m.groupby("metric")["spec_id"].nunique()
        cols: dict[str, MetricColumn] = {}
        for r in m.drop_duplicates(["metric", "spec_id"]).itertuples():
            k = r.metric if n_specs[r.metric] == 1 else f"{r.metric}@{r.spec_id[-6:]}"
            cols[k] = MetricColumn(k, r.metric, r.spec_id, r.direction or "higher", r.family)
        by_spec = {(c.metric, c.spec_id): c.key for c in cols.values()}
        t = g.copy()
        t["label"] = [honest_label(r) for _, r in t.iterrows()]
        t["floor"] = [lbl.startswith("floor") or meth == "identity"
                      for lbl, meth in zip(g["label"].fillna(""), g["method"])]
        ci: dict[tuple[str, str], tuple[float, float]] = {}
        method_of = dict(zip(g["run_id"], g["method"]))
        values: dict[str, dict[str, float]] = {c: {} for c in cols}
        for r in m.itertuples():
            k = by_spec[(r.metric, r.spec_id)]
            values[k][method_of[r.run_id]] = r.mean
            if not (pd.isna(r.ci_low) or pd.isna(r.ci_high)):
                ci[(method_of[r.run_id], k)] = (float(r.ci_low), float(r.ci_high))
        for k in cols:
            t[k] = t["method"].map(values[k])
        ordered = sorted(cols.values(), key=lambda c: (_FAMILY_ORDER.get(c.family, 9), c.key))
        keep = META + ["run_id", "error", "config", "device", "floor"] + [c.key for c in ordered] + COST
        boards[tuple(key)] = Board(*key, table=t[keep].reset_index(drop=True), columns=ordered,
                                   ci=ci)
    return boards


_FAMILY_ORDER = {"fidelity": 0, "perceptual": 1, "no-reference": 2}


def on_board(scores: pd.DataFrame, board: Board) -> pd.DataFrame:
    """The rows of per-image or per-level ``scores`` (columns run_id, metric, spec_id, ...)
    that belong to ``board``: its runs and its metric specs, with ``metric`` renamed to the
    board's column key, so that the app never averages or ranks across definitions."""
    key = {(c.metric, c.spec_id): c.key for c in board.columns}
    d = scores[scores["run_id"].isin(board.table["run_id"])] if "run_id" in scores else scores
    keep = pd.Series([(m, sp) in key for m, sp in zip(d["metric"], d["spec_id"])],
                     index=d.index, dtype=bool)
    d = d[keep].copy()
    d["metric"] = [key[(m, sp)] for m, sp in zip(d["metric"], d["spec_id"])]
    return d


def rank_column(values: pd.Series, direction: str, ok: pd.Series) -> pd.Series:
    """1 = best in ``direction``; ties share the smaller rank; NaN and failed rows unranked."""
    v = values.where(ok & values.notna() & values.map(lambda x: not _isnan(x)))
    return v.rank(method="min", ascending=(direction == "lower"))


def _isnan(x: object) -> bool:
    return isinstance(x, float) and math.isnan(x)


def view(board: Board, families: list[str] | None = None, kinds: list[str] | None = None,
         sources: list[str] | None = None, rank_by: list[str] | None = None,
         sort_by: str | None = None) -> tuple[pd.DataFrame, list[MetricColumn]]:
    """The filtered, ranked and sorted table of a board, and the metric columns it shows.

    The floor (identity) row is kept whatever the kind/source filters say. ``rank_by`` lists
    the metric keys averaged into the mean rank (default: every shown metric column).
    ``sort_by`` is a metric key (sorted in its direction), ``"mean rank"`` (default) or a
    cost column (ascending).
    """
    cols = [c for c in board.columns if families is None or c.family in families]
    t = board.table.copy()
    keep = pd.Series(True, index=t.index)
    if kinds is not None:
        keep &= t["kind"].isin(kinds)
    if sources is not None:
        keep &= t["source"].isin(sources)
    t = t[keep | t["floor"]].copy()
    ok = t["status"] == "ok"
    for c in cols:
        t[f"rank:{c.key}"] = rank_column(t[c.key], c.direction, ok)
    chosen = [c for c in cols if rank_by is None or c.key in rank_by]
    if chosen:
        ranks = t[[f"rank:{c.key}" for c in chosen]]
        t[MEAN_RANK] = ranks.mean(axis=1).where(ranks.notna().all(axis=1))
    else:
        t[MEAN_RANK] = float("nan")
    t["ranked by"] = ", ".join(c.key for c in chosen)
    sort_by = sort_by or MEAN_RANK
    by_key = {c.key: c for c in cols}
    if sort_by in by_key:
        asc = by_key[sort_by].direction == "lower"
        t = t.sort_values([sort_by, "method"], ascending=[asc, True], na_position="last")
    elif sort_by in t.columns:
        t = t.sort_values([sort_by, "method"], ascending=[True, True], na_position="last")
    else:
        raise KeyError(f"cannot sort by {sort_by!r}: not a shown column")
    t = pd.concat([t[t["status"] == "ok"], t[t["status"] != "ok"]])  # failed runs last
    return t.reset_index(drop=True), cols


def display_frame(t: pd.DataFrame, cols: list[MetricColumn], board: Board,
                  show_ci: bool = False) -> pd.DataFrame:
    """The table as shown and exported: headers with direction arrows, optional CI columns."""
    out = t[META].copy()
    for c in cols:
        out[c.header] = t[c.key]
        if show_ci:
            out[f"{c.key} 95% CI"] = [_fmt_ci(board.ci.get((m, c.key))) for m in t["method"]]
    for c in COST:
        out[c] = t[c]
    out[MEAN_RANK] = t[MEAN_RANK]
    return out


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def fmt(v: object, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "n/a"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def to_html(t: pd.DataFrame, cols: list[MetricColumn], board: Board, show_ci: bool = False
            ) -> str:
    """An HTML table (DOM text, unlike a canvas grid): best in bold, second underlined, the
    95% CI in each cell's hover title (and inline when ``show_ci``)."""
    import html

    head = ["#", "method", "label"] + [c.header for c in cols] + COST + [MEAN_RANK]
    rows = []
    for i, r in enumerate(t.itertuples(index=False), start=1):
        d = dict(zip(t.columns, r))
        label = html.escape(str(d["label"]))  # one line, cut with an ellipsis; all on hover
        name = html.escape(d["method"])
        marks = (" (floor)" if d["floor"] else "") + (
            "" if d["source"] == "measured" else f' <span class="badge">{html.escape(str(d["source"]))}</span>')
        cells = [str(i), f'<td class="method" title="{name}"><b>{name}</b>{marks}</td>',
                 f'<td class="label" title="{label}"><span class="badge">{label}</span></td>']
        for c in cols:
            rank = d.get(f"rank:{c.key}")
            ci = board.ci.get((d["method"], c.key))
            title = f"95% CI {_fmt_ci(ci)}; rank {fmt(rank, 0)}"
            text = fmt(d[c.key])
            if show_ci:
                text += f"<br><small>{_fmt_ci(ci)}</small>"
            cls = "best" if rank == 1 else "second" if rank == 2 else ""
            cells.append(f'<td class="{cls}" title="{html.escape(title)}">{text}</td>')
        cells += [f"<td>{fmt(d[c], 2)}</td>" for c in COST]
        cells.append(f"<td>{fmt(d[MEAN_RANK], 2)}</td>")
        tds = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
        status = "" if d["status"] == "ok" else f' class="failed" title="{html.escape(str(d["status"]))}"'
        rows.append(f'<tr data-method="{html.escape(d["method"])}"{status}>{tds}</tr>')
    # a long header may break after an underscore or slash (pba_blur_score, GFLOPs/MP)
    ths = "".join(f"<th>{html.escape(h).replace('_', '_<wbr>').replace('/', '/<wbr>')}</th>"
                  for h in head)
    style = ("<style>#leaderboard-table td.best{font-weight:700;background:#e6f4ea}"
             "#leaderboard-table td.second{text-decoration:underline}"
             "#leaderboard-table tr.failed{color:#999}"
             "#leaderboard-table{font-size:85%}"
             "#leaderboard-table td,#leaderboard-table th{padding:2px 4px;text-align:right}"
             "#leaderboard-table td{white-space:nowrap}"  # one line a row; headers may wrap
             "#leaderboard-table th{max-width:6.5em;overflow-wrap:break-word}"
             "#leaderboard-table td.label,#leaderboard-table td.method{max-width:10em;"
             "overflow:hidden;text-overflow:ellipsis;text-align:left}"
             "#leaderboard-table td.label .badge{background:#eef;border-radius:4px;"
             "padding:0 4px;font-size:85%}"
             "</style>")
    return (f'{style}<table id="leaderboard-table"><thead><tr>{ths}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def export(frame: pd.DataFrame, fmt_name: str, caption: str = "") -> str:
    """CSV, markdown or LaTeX text of a displayed frame (numbers with 4 decimals)."""
    if fmt_name == "csv":
        return frame.to_csv(index=False)
    shown = frame.map(lambda v: fmt(v) if isinstance(v, float) else v)
    if fmt_name == "markdown":
        return shown.to_markdown(index=False)
    if fmt_name == "latex":
        return shown.to_latex(index=False, caption=caption or None, escape=True)
    raise ValueError(f"unknown export format {fmt_name!r} (csv, markdown, latex)")
