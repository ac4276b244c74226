"""The page of a sample average approximation: the bounds, their intervals and the replications."""

from __future__ import annotations

import html
import json
from pathlib import Path

import altair as alt
import pandas as pd

from stockpile.fmt import money as _money
from stockpile.report.charts import WIDTH, usd_axis
from stockpile.report.page import Page, df_table, kv_table


def saa_page(folder: Path) -> Page:
    head = json.loads((folder / "saa.json").read_text())
    reps = pd.read_csv(folder / "saa.csv")
    page = Page(f"stockpile SAA · {folder.name}", "saa")

    def ci(low: str, high: str) -> str:
        return f"{_money(head[low])} to {_money(head[high])}"

    page.header = kv_table(
        [
            ("replications x scenarios", f"{head['replications']} x {head['sample_count']:,}"),
            ("plans evaluated on", f"{head['evaluate_count']:,} fresh scenarios"),
            (
                "lower bound",
                f"<b>{_money(head['lower_bound_usd'])}</b> (95% CI {ci('lower_ci95_low_usd', 'lower_ci95_high_usd')})",
            ),
            (
                "upper bound",
                f"<b>{_money(head['upper_bound_usd'])}</b> ({html.escape(head['best_replication'])}'s plan; "
                f"95% CI {ci('upper_ci95_low_usd', 'upper_ci95_high_usd')})",
            ),
            (
                "optimality gap",
                f"{_money(head['gap_usd'])} ({head['gap_relative']:.2%}); 95% bound {_money(head['gap_ci95_high_usd'])}",
            ),
        ]
    )
    long = pd.concat(
        [
            reps.assign(
                measure="optimum of its sample (lower)",
                usd=reps.objective_usd,
                low=reps.objective_usd,
                high=reps.objective_usd,
            ),
            reps.assign(
                measure="its plan on the fresh scenarios (upper)",
                usd=reps.upper_usd,
                low=reps.upper_ci95_low_usd,
                high=reps.upper_ci95_high_usd,
            ),
        ]
    )
    colors = alt.Scale(domain=list(long.measure.unique()), range=["#6b6b6b", "#f2b701"])
    y = alt.Y("usd:Q", axis=usd_axis("expected total cost"), scale=alt.Scale(zero=False))
    points = (
        alt.Chart(long)
        .mark_point(filled=True, size=70)
        .encode(
            x=alt.X("replication:N", title=None),
            xOffset="measure:N",
            y=y,
            color=alt.Color("measure:N", scale=colors, title=None, legend=alt.Legend(orient="top", labelLimit=400)),
            tooltip=["replication", "measure", alt.Tooltip("usd:Q", format="$,.0f")],
        )
    )
    bars = (
        alt.Chart(long)
        .mark_rule()
        .encode(
            x="replication:N", xOffset="measure:N", y="low:Q", y2="high:Q", color=alt.Color("measure:N", scale=colors)
        )
    )
    lower = alt.Chart(pd.DataFrame({"usd": [head["lower_bound_usd"]]})).mark_rule(strokeDash=[4, 3]).encode(y=y)
    page.add(
        "Bounds per replication",
        "Each replication's optimum (the mean is the lower bound, dashed) and its plan's cost on the fresh "
        "scenarios with a 95% interval (the lowest is the upper bound).",
        alt.layer(bars, points, lower).properties(width=WIDTH, height=260, title="SAA replications"),
        df_table(reps, money_cols=tuple(c for c in reps.columns if c.endswith("_usd"))),
    )
    return page
