"""Altair charts of the leaderboard (perception-distortion, cost-quality, blur levels)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from deblurbench.leaderboard.table import MetricColumn


def _axis(col: MetricColumn | None, name: str) -> alt.X:
    better = {"higher": "higher is better", "lower": "lower is better"}
    title = f"{name} ({better.get(col.direction, '')})" if col else name
    return alt.Scale(zero=False), title


def scatter(t: pd.DataFrame, x: str, y: str, x_col: MetricColumn | None,
            y_col: MetricColumn | None, title: str) -> alt.Chart:
    """One point per method (labelled); reversed axes are not used: the titles say which way
    is better."""
    data = t[["method", "source", x, y]].dropna().rename(columns={x: "x", y: "y"})
    xs, xt = _axis(x_col, x)
    ys, yt = _axis(y_col, y)
    base = alt.Chart(data, title=title).encode(
        x=alt.X("x:Q", title=xt, scale=xs), y=alt.Y("y:Q", title=yt, scale=ys),
        tooltip=["method", "source", alt.Tooltip("x:Q", title=x, format=".4f"),
                 alt.Tooltip("y:Q", title=y, format=".4f")])
    points = base.mark_point(filled=True, size=90).encode(color="source:N", shape="source:N")
    labels = base.mark_text(align="left", dx=7, dy=-6).encode(text="method:N")
    return (points + labels).properties(height=320)


def region_bars(df: pd.DataFrame, metric: str) -> alt.Chart:
    """Grouped bars: per PBA blur level, each method's mean ``metric``."""
    order = ["slight", "mild", "moderate", "severe"]
    d = df[df["metric"] == metric]
    return alt.Chart(d, title=f"{metric} per blur level").mark_bar().encode(
        x=alt.X("region:N", sort=order, title="PBA blur level"),
        xOffset="method:N", y=alt.Y("mean:Q", title=metric, scale=alt.Scale(zero=False)),
        color="method:N", tooltip=["method", "region", alt.Tooltip("mean:Q", format=".4f"),
                                   "n"]).properties(height=280)
