"""The papers' own numbers as the board shows them: one table per paper table, as printed."""

from __future__ import annotations

import html
import math

import pandas as pd


def reported_html(wide: pd.DataFrame, missing: str) -> str:
    """A paper's table (methods x metrics, as printed) as HTML: a cell the paper left out is a
    dash whose hover says ``missing``, never ``None`` or ``nan``."""

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return f'<td class="missing" title="{html.escape(missing)}">–</td>'
        return f"<td>{html.escape(str(v))}</td>"

    ths = "".join(f"<th>{html.escape(str(c))}</th>" for c in wide.columns)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>"
                   for r in wide.itertuples(index=False))
    style = ("<style>table.reported td,table.reported th{padding:2px 8px;text-align:right}"
             "table.reported td.missing{color:#999;text-align:center}</style>")
    return f'{style}<table class="reported"><thead><tr>{ths}</tr></thead><tbody>{body}</tbody></table>'
