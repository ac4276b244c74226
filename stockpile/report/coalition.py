"""The page of a coalition study: each coalition's cost, the core and the Shapley shares."""

from __future__ import annotations

import html
import json
from pathlib import Path

import altair as alt
import pandas as pd

from stockpile.fmt import money as _money
from stockpile.report.charts import WIDTH, usd_axis
from stockpile.report.page import Page, df_table, kv_table


def coalition_page(folder: Path) -> Page:
    coal = pd.read_csv(folder / "coalitions.csv")
    shares = pd.read_csv(folder / "shares.csv")
    head = json.loads((folder / "coalition.json").read_text())
    page = Page(f"stockpile coalitions · {folder.name}", "coalition")
    page.header = kv_table(
        [
            ("value of cooperation", f"<b>{_money(head.get('value_of_cooperation_usd'))}</b>"),
            ("standalone costs, summed", _money(head.get("standalone_sum_usd"))),
            ("grand coalition", _money(head.get("grand_usd"))),
            ("Shapley split in the core", "yes" if head.get("in_core") else "no"),
            ("transfers", html.escape(head.get("transfers", "–"))),
        ]
    )
    page.add(
        "Cost per coalition",
        "Optimal expected cost of each coalition solving on its own.",
        alt.Chart(coal)
        .mark_bar()
        .encode(
            x=alt.X("coalition:N", sort=None, title=None),
            y=alt.Y("objective_usd:Q", axis=usd_axis("expected cost")),
            color=alt.Color(
                "size:O",
                title="members",
                scale=alt.Scale(range=["#bdbdbd", "#8c8c8c", "#5a5a5a", "#2b2b2b"]),
                legend=alt.Legend(orient="top"),
            ),
            tooltip=["coalition", "status", alt.Tooltip("objective_usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=220, title="Optimal expected cost of each coalition"),
    )
    if len(shares):
        df = shares.melt(
            id_vars=["participant"],
            value_vars=["standalone_usd", "shapley_usd", "spending_usd", "transfer_usd"],
            var_name="measure",
            value_name="usd",
        )
        df["measure"] = df["measure"].map(
            {
                "standalone_usd": "alone",
                "shapley_usd": "Shapley share",
                "spending_usd": "actual spending together",
                "transfer_usd": "transfer received (+) or paid (-)",
            }
        )
        legend = alt.selection_point(fields=["measure"], bind="legend")
        page.add(
            "Cost shares",
            "What each partner would pay alone, its Shapley share of the joint cost, what it actually spends "
            "in the joint plan, and the transfer that brings its net cost to its Shapley share: "
            + head.get("transfers", "")
            + ".",
            alt.Chart(df)
            .mark_bar()
            .encode(
                x=alt.X("participant:N", title=None, sort=list(shares.participant)),
                xOffset=alt.XOffset("measure:N", sort=None),
                y=alt.Y("usd:Q", axis=usd_axis()),
                color=alt.Color(
                    "measure:N",
                    title=None,
                    scale=alt.Scale(
                        domain=[
                            "alone",
                            "Shapley share",
                            "actual spending together",
                            "transfer received (+) or paid (-)",
                        ],
                        range=["#bdbdbd", "#6b6b6b", "#2b2b2b", "#f2b701"],
                    ),
                    legend=alt.Legend(orient="top", labelLimit=300),
                ),
                opacity=alt.condition(legend, alt.value(1.0), alt.value(0.2)),
                tooltip=["participant", "measure", alt.Tooltip("usd:Q", format="$,.0f")],
            )
            .properties(width=WIDTH, height=240, title="Cost shares and transfers per participant")
            .add_params(legend),
            df_table(shares, money_cols=("standalone_usd", "shapley_usd", "spending_usd", "transfer_usd")),
        )
    return page
