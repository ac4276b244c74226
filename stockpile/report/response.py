"""The page of a response to a shock under way: the orders and what they cover."""

from __future__ import annotations

import html
import json
from pathlib import Path

import altair as alt
import pandas as pd
import yaml

from stockpile.fmt import money as _money
from stockpile.report.charts import USD_LABEL, WIDTH, trajectory_chart
from stockpile.report.page import Page, df_table, kv_table, read_table


def response_page(folder: Path) -> Page:
    """stockpile respond: this period's orders, what they are worth, and how each continuation plays out."""
    s = json.loads((folder / "summary.json").read_text())
    cfg = yaml.safe_load((folder / "config.resolved.yaml").read_text())
    orders = read_table(folder, "orders.csv")
    cont = read_table(folder, "contingency.csv")
    k = s["period"]
    page = Page(f"stockpile respond · {s['config_name']} · period {k}", "response")
    page.header = kv_table(
        [
            ("orders for", f"<b>period {k} of {s['periods']}</b>, the same whatever follows"),
            ("expected cost from here", f"<b>{_money(s['expected_cost_usd'])}</b> (unmet shortfall and lending fees)"),
            (
                "each acting alone",
                f"{_money(s['alone_expected_cost_usd'])}: coordinating saves {_money(s['coordination_value_usd'])}",
            ),
            (
                "knowing the duration",
                f"{_money(s['clairvoyant_expected_cost_usd'])}: worth {_money(s['value_of_knowing_duration_usd'])}",
            ),
            ("config", html.escape(f"{s['config_name']} · hash {s['config_hash']}")),
        ]
    )
    arcs = [c for c in orders.columns if c.startswith("lent_t.")]
    view = orders.rename(
        columns={c: "lent to " + c.split("->")[1] + " by " + c.split(".", 1)[1].split("->")[0] for c in arcs}
    )
    page.add(
        f"Orders for period {k}",
        "Tonnes each participant releases from its stock, borrows and lends this period, the shortfall it faces, "
        "what stays unmet and the stock left after the period. Decided once for every continuation below.",
        df_table(view.drop(columns=["period"])),
    )
    rows = pd.DataFrame(s["continuations"])
    long = rows.melt(
        id_vars=["name", "probability"],
        value_vars=["clairvoyant_cost_usd", "cost_usd", "alone_cost_usd"],
        var_name="kind",
        value_name="usd",
    )
    label = {
        "clairvoyant_cost_usd": "knowing this continuation from the start",
        "cost_usd": "these orders, then the best for it",
        "alone_cost_usd": "each participant alone",
    }
    long["response"] = long.kind.map(label)
    order = list(label.values())
    page.add(
        "How it may go on",
        "Cost from this period on (unmet shortfall and lending fees) in each continuation of the outlook, with "
        "its probability: under these orders, knowing the continuation from the start, and each participant "
        "responding alone.",
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("name:N", sort=list(rows.name), title=None, axis=alt.Axis(labelLimit=300)),
            yOffset=alt.YOffset("response:N", sort=order),
            x=alt.X(
                "usd:Q",
                scale=alt.Scale(type="symlog", constant=1e3),
                axis=alt.Axis(
                    title="cost from this period on (log scale)",
                    labelExpr=USD_LABEL,
                    values=[0.0] + [10.0**e for e in range(3, 13) if 10.0 ** (e - 1) <= max(long.usd.max(), 1e3)],
                ),
            ),
            color=alt.Color(
                "response:N",
                sort=order,
                scale=alt.Scale(domain=order, range=["#bdbdbd", "#1f77b4", "#000000"]),
                legend=alt.Legend(orient="top", title=None, labelLimit=400),
            ),
            tooltip=["name", "probability", "response", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, title="Cost of each continuation"),
        df_table(rows, money_cols=("cost_usd", "alone_cost_usd", "clairvoyant_cost_usd"), pct_cols=("coverage_share",)),
    )
    prob = {c["name"]: c["probability"] for c in s["continuations"]}
    page.add(
        "Stock and flows by continuation",
        "Inventory at each period's end and what left or arrived, one continuation and mineral at a time (pick it "
        "below the chart); period k's flows are the orders above in every continuation.",
        trajectory_chart(
            cont.rename(columns={"continuation": "scenario"}),
            {**cfg, "scenarios": [{"name": n, "probability": p} for n, p in prob.items()]},
        ),
    )
    return page
