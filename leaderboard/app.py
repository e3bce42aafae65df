"""DeblurBench leaderboard: `streamlit run leaderboard/app.py`.

Reads a read-only snapshot of the results database (``$DEBLURBENCH_DB``, else params.yaml
``score.db``) that follows the live file, so it keeps working while a scoring run writes. It
never computes a metric and never writes the database.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from deblurbench.config import load_params
from deblurbench.leaderboard import plots, reported_view, table, viewer
from deblurbench.leaderboard.review import pba_level_map
from deblurbench.leaderboard.snapshot import NoDatabase, snapshot
from deblurbench.paths import project_root, run_dir
from deblurbench.store import db, queries

st.set_page_config(page_title="DeblurBench leaderboard", layout="wide")
# a narrower sidebar leaves the board the width of a 1500 px window (tests/test_leaderboard_app)
st.markdown("<style>section[data-testid='stSidebar']{width:15rem !important;"
            "min-width:15rem !important}</style>", unsafe_allow_html=True)


def db_path() -> Path:
    env = os.environ.get("DEBLURBENCH_DB")
    if env:
        return Path(env)
    root = project_root()
    return root / load_params(root / "params.yaml").score.db


@st.cache_data(show_spinner=False)
def load(snap: str, stamp: tuple) -> dict:
    """Everything the pages show, read once per snapshot (``stamp`` keys the cache)."""
    con = db.connect(snap, read_only=True)
    try:
        return {"boards": table.load_boards(con), "reported": queries.reported(con),
                "specs": queries.metric_specs(con), "con_path": snap}
    finally:
        con.close()


@st.cache_data(show_spinner=False)
def per_image(snap: str, stamp: tuple, dataset: str, split: str, run_ids: tuple) -> dict:
    """Per-image and per-level scores of one board's runs (``run_ids``) only."""
    con = db.connect(snap, read_only=True)
    try:
        return {"scores": queries.image_scores(con, dataset, split, run_ids),
                "images": queries.images(con, dataset, split),
                "regions": queries.region_means(con, dataset, split, run_ids),
                "subsets": queries.subset_means(con, run_ids)}
    finally:
        con.close()


def paired(snap: str, run_a: str, run_b: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    con = db.connect(snap, read_only=True)
    try:
        return queries.paired_differences(con, run_a, run_b), queries.paired_tests(con, run_a,
                                                                                   run_b)
    finally:
        con.close()


st.title("DeblurBench leaderboard")
path = db_path()
try:
    snap = snapshot(path)
except NoDatabase as exc:
    st.error(str(exc))
    st.stop()
data = load(str(snap.path), snap.stamp)
boards: dict = data["boards"]

with st.sidebar:
    st.caption(f"Database: `{path}` (read-only snapshot, refreshed when the file changes)")
    if st.button("Check for new results"):
        st.rerun()
    if not boards:
        st.warning("No runs in the database yet.")
    keys = list(boards)
    key = st.selectbox("Data set / split / protocol", keys, format_func=lambda k: " / ".join(k),
                       key="board") if keys else None
    board = boards[key] if key else None
    fams = sorted({c.family for c in board.columns}) if board else []
    families = st.multiselect("Metric family", fams, default=fams, key="families")
    kinds_all = sorted(board.table["kind"].unique()) if board else []
    kinds = st.multiselect("Method kind", kinds_all, default=kinds_all, key="kinds")
    src_all = sorted(board.table["source"].unique()) if board else []
    sources = st.multiselect("Source", src_all, default=src_all, key="sources")
    show_ci = st.toggle("Show 95% confidence intervals", value=False, key="show_ci")

tabs = st.tabs(["Leaderboard", "Blur levels", "Plots", "Head-to-head", "Image viewer",
                "Reported in papers"])

# ------------------------------------------------------------------------------ leaderboard
with tabs[0]:
    if board is None:
        st.info("Nothing to show yet: run `deblurbench score`.")
    else:
        shown = [c for c in board.columns if c.family in families]
        keys_shown = [c.key for c in shown]
        c1, c2 = st.columns([1, 2])
        sort_by = c1.selectbox("Sort by", [table.MEAN_RANK] + keys_shown + table.COST,
                               key="sort_by")
        rank_by = c2.multiselect("Mean rank over", keys_shown, default=keys_shown,
                                 key="rank_by")
        t, cols = table.view(board, families=families, kinds=kinds, sources=sources,
                             rank_by=rank_by, sort_by=sort_by)
        st.markdown(table.to_html(t, cols, board, show_ci=show_ci), unsafe_allow_html=True)
        st.caption(
            "Bold: best, underlined: second best, each in its metric's direction (↑ higher, "
            "↓ lower is better). Mean rank = average of the per-metric ranks over the metrics "
            f"chosen above ({', '.join(rank_by) or 'none'}); a method missing one of them gets "
            "n/a. Columns of the same metric under different specs are ranked separately. "
            "Hover a value for its 95% CI (n/a until the scorer stores intervals). The floor "
            "(identity) is always shown.")
        failed = t[t["status"] != "ok"]
        for r in failed.itertuples():
            st.warning(f"{r.method}: {r.status}: {r.error}")
        frame = table.display_frame(t, cols, board, show_ci=show_ci)
        caption = f"{board.dataset} / {board.split} ({board.protocol})"
        d1, d2, d3 = st.columns(3)
        d1.download_button("CSV", table.export(frame, "csv"), "leaderboard.csv", "text/csv")
        d2.download_button("Markdown", table.export(frame, "markdown"), "leaderboard.md")
        d3.download_button("LaTeX", table.export(frame, "latex", caption), "leaderboard.tex")
        with st.expander("Interactive grid (click a header to sort)"):
            st.dataframe(frame, hide_index=True)
        rep = data["reported"]
        rep = rep[rep["dataset"] == board.dataset]
        if len(rep):
            st.subheader("Reported in papers (not measured here)")
            st.dataframe(rep.astype(object).where(rep.notna(), "–"), hide_index=True)

# ------------------------------------------------------------------------------ blur levels
with tabs[1]:
    if board is not None:
        pi = per_image(str(snap.path), snap.stamp, board.dataset, board.split,
                       tuple(board.table["run_id"]))
        reg = table.on_board(pi["regions"], board)
        if reg.empty:
            st.info("n/a: no region-stratified scores for this data set yet (the scorer "
                    "writes per-blur-level scores once PBA annotations exist).")
        else:
            for metric in [m for m in ("psnr", "ssim") if m in set(reg["metric"])]:
                st.altair_chart(plots.region_bars(reg, metric), width="stretch")
            st.dataframe(reg, hide_index=True)
        subsets = table.on_board(pi["subsets"], board)
        if not subsets.empty:  # e.g. DPDD indoor / outdoor, as its papers report
            st.subheader("Per image subset")
            st.dataframe(subsets.pivot_table(index="method", columns=["metric", "region"],
                                             values="mean").reset_index(), hide_index=True)

# ------------------------------------------------------------------------------ plots
with tabs[2]:
    if board is not None:
        t_all, cols_all = table.view(board, kinds=kinds, sources=sources)
        by_key = {c.key: c for c in cols_all}
        keys_all = list(by_key)
        fidelity = [k for k in keys_all if by_key[k].family == "fidelity"]
        other = [k for k in keys_all if by_key[k].family != "fidelity"]
        if fidelity and other:
            x = st.selectbox("Distortion axis", fidelity, key="pd_x")
            y = st.selectbox("Perception axis", other, key="pd_y")
            st.altair_chart(plots.scatter(t_all, x, y, by_key[x], by_key[y],
                                          "Perception-distortion"), width="stretch")
        else:
            st.info("Perception-distortion plot: n/a (needs a fidelity and a perceptual or "
                    "no-reference metric; LPIPS and others need weights, see `deblurbench "
                    "weights status`).")
        costs = [c for c in table.COST if t_all[c].notna().any()]
        if costs and keys_all:
            cx = st.selectbox("Cost", costs, key="cost_x")
            qy = st.selectbox("Quality", keys_all, key="cost_y")
            st.altair_chart(plots.scatter(t_all, cx, qy, None, by_key[qy], "Cost-quality"),
                            width="stretch")
        else:
            st.info("Cost-quality plot: n/a (no cost columns in the database yet).")

# ------------------------------------------------------------------------------ head-to-head
with tabs[3]:
    if board is not None:
        ok = board.table[board.table["status"] == "ok"]
        methods = list(ok["method"])
        if len(methods) >= 2:
            a = st.selectbox("Method A", methods, index=0, key="h2h_a")
            b = st.selectbox("Method B", methods, index=1, key="h2h_b")
            run_of = dict(zip(ok["method"], ok["run_id"]))
            diffs, tests = paired(str(snap.path), run_of[a], run_of[b])
            out = diffs.rename(columns={"diff": "mean A-B", "a_better": "A better on"})
            if tests is not None:
                out = out.merge(tests.drop(columns=["diff"]), on="metric", how="left")
            else:
                out["ci_low"] = "n/a"
                out["ci_high"] = "n/a"
                out["p_value"] = "n/a"
            out = out.rename(columns={"ci_low": "95% CI low", "ci_high": "95% CI high",
                                      "p_value": "p (paired)"})
            st.table(out.drop(columns=["spec_id"]))
            st.caption("Differences over images both methods scored, under the same metric "
                       "spec. CI and p come from the scorer's paired tests (n/a until stored).")
        else:
            st.info("Head-to-head needs two scored methods.")

# ------------------------------------------------------------------------------ image viewer
with tabs[4]:
    if board is not None:
        pi = per_image(str(snap.path), snap.stamp, board.dataset, board.split,
                       tuple(board.table["run_id"]))
        imgs, sc = pi["images"], table.on_board(pi["scores"], board)
        if imgs.empty:
            st.info("No images recorded for this data set.")
        else:
            image_id = st.selectbox("Image", list(imgs["image_id"]), key="image_id")
            row = imgs.set_index("image_id").loc[image_id]
            ok = board.table[board.table["status"] == "ok"]
            methods = [m for m in ok["method"]
                       if (run_dir(m, board.dataset, board.split) / f"{image_id}.png").exists()]
            picked = st.multiselect("Methods", methods, default=methods, key="viewer_methods")
            panels = {"blurry": viewer.load(row["blurry"])}
            for m in picked:
                panels[m] = viewer.load(str(run_dir(m, board.dataset, board.split)
                                            / f"{image_id}.png"))
            if isinstance(row["sharp"], str) and row["sharp"]:
                panels["ground truth"] = viewer.load(row["sharp"])
            h, w = panels["blurry"].shape[:2]
            z1, z2, z3 = st.columns(3)
            zoom = z1.select_slider("Zoom", [1, 2, 4, 8], value=1, key="zoom")
            cx = z2.slider("Crop centre x (%)", 0, 100, 50, key="cx") / 100
            cy = z3.slider("Crop centre y (%)", 0, 100, 50, key="cy") / 100
            box = viewer.crop_box(h, w, cx, cy, zoom)
            st.image([viewer.display(viewer.crop(p, box, upscale=zoom)) for p in panels.values()],
                     caption=list(panels), width=260)
            st.caption(f"Same crop of every image: rows {box[0]}..{box[0] + box[2]}, columns "
                       f"{box[1]}..{box[1] + box[3]} of {w}x{h}; 16-bit data shown as 8-bit.")
            names = list(panels)
            s1, s2, s3 = st.columns(3)
            a = s1.selectbox("A (left)", names, index=0, key="ab_a")
            b = s2.selectbox("B (right)", names, index=len(names) - 1, key="ab_b")
            pos = s3.slider("A/B split (%)", 0, 100, 50, key="ab_pos") / 100
            o1, o2 = st.columns(2)
            o1.image(viewer.display(viewer.ab_split(panels[a], panels[b], pos)),
                     caption=f"A/B: {a} | {b}", width=420)
            levels = pba_level_map(board.dataset, image_id)
            if levels is not None and levels.shape == (h, w):
                o2.image(viewer.pba_overlay(panels["blurry"], levels), width=420,
                         caption="PBA blur levels: blue slight, green mild, yellow moderate, "
                                 "red severe")
            else:
                o2.info("PBA map: n/a (run `deblurbench annotate pba` for this data set)")
            if "ground truth" in panels and picked:
                em = st.selectbox("Error map of", picked, key="err_method")
                vmax = st.select_slider("Error map range (|error| at full colour)",
                                        [0.05, 0.1, 0.2, 0.5, 1.0], value=0.2, key="err_vmax")
                st.image(viewer.error_heatmap(panels[em], panels["ground truth"], vmax),
                         caption=f"|{em} - ground truth|, 0..{vmax}", width=420)
            st.subheader("Scores of this image")
            mine = sc[sc["image_id"] == image_id]
            if mine.empty:
                st.info("No per-image scores for this image.")
            else:
                st.table(mine.pivot_table(index="method", columns="metric", values="value")
                         .reset_index())
            st.subheader("Worst images per method")
            metrics = sorted(sc["metric"].unique())
            if metrics:
                wm = st.selectbox("By metric", metrics, key="worst_metric")
                k = st.number_input("How many", 1, 50, 5, key="worst_k")
                d = sc[sc["metric"] == wm]
                direction = d["direction"].dropna().iloc[0] if d["direction"].notna().any() \
                    else "higher"
                worst = (d.sort_values("value", ascending=direction == "higher")
                         .groupby("method").head(int(k))[["method", "image_id", "value"]])
                st.table(worst.reset_index(drop=True))

# ------------------------------------------------------------------------------ reported
with tabs[5]:
    rep = data["reported"]
    if rep.empty:
        st.info("No reported numbers loaded: run `deblurbench submit reported`.")
    else:
        ds_names = sorted(rep["dataset"].unique())
        d = st.selectbox("Data set (as named in the papers)", ds_names, key="rep_ds")
        sub = rep[rep["dataset"] == d]
        st.caption("Numbers as printed in the papers' tables (source: reported). They were "
                   "computed elsewhere, under the papers' own metric definitions, and are never "
                   "ranked with rows measured here.")
        for (paper, ref, subset), g in sub.groupby(["paper", "table_ref", "subset"]):
            wide = g.pivot_table(index="method", columns="metric", values="value",
                                 aggfunc="first")
            wide.columns = [f"{m} {table.ARROW[queries.reported_direction(m, data['specs'])]}"
                            for m in wide.columns]
            st.markdown(f"**{paper}, {ref}** (subset: {subset})")
            st.markdown(reported_view.reported_html(wide.reset_index(),
                                                    f"not reported in {paper}, {ref}"),
                        unsafe_allow_html=True)
