"""The page of a comparison of allocation rules and arrangements."""

from __future__ import annotations

import html
from pathlib import Path

import altair as alt
import pandas as pd
import yaml

from stockpile.enums import has_plan
from stockpile.fmt import money as _money
from stockpile.report.charts import WIDTH, usd_axis
from stockpile.report.page import Page, df_table, kv_table

COMPARE_RULES = {
    "optimised": "optimised (complementary)",
    "days": "day-count rule",
    "prorata": "pro-rata by consumption",
    "alone": "each alone, no lending",
}


COST_PARTS = {
    "acquisition_usd": "acquisition",
    "fixed_usd": "fixed",
    "holding_usd": "storage",
    "salvage_usd": "resale at the horizon",
    "expected_shortfall_usd": "expected shortfall",
    "expected_release_usd": "release",
    "expected_lending_usd": "lending fees",
}


def compare_page(folder: Path) -> Page:
    """stockpile compare: the optimised arrangement against the rules countries use today."""
    table = pd.read_csv(folder / "compare.csv", keep_default_na=False, na_values=[""])
    cfg = yaml.safe_load((folder / "cases" / "optimised" / "config.resolved.yaml").read_text())
    page = Page(f"stockpile compare · {folder.name}", "compare")
    ok = table[table.status.map(has_plan)]
    rows = [
        (
            COMPARE_RULES.get(r.rule, r.rule),
            _money(r.objective_usd) if r.rule in set(ok.rule) else html.escape(f"{r.status}: {r.reasons}"),
        )
        for r in table.itertuples()
    ]
    page.header = kv_table([("expected cost by rule", "same budgets and limits"), *rows])
    long = ok.melt(id_vars="rule", value_vars=[c for c in COST_PARTS if c in ok], var_name="part", value_name="usd")
    long["component"] = long.part.map(COST_PARTS)
    long["arrangement"] = long.rule.map(COMPARE_RULES)
    order = [COMPARE_RULES[r] for r in COMPARE_RULES if r in set(ok.rule)]
    page.add(
        "What complementarity is worth",
        f"Expected cost of each arrangement for the same budgets and limits, by component. The day-count rule "
        f"holds {cfg.get('allocation_days', 60):g} days of each participant's own consumption of every mineral "
        "(or its min_days if more); pro-rata splits the optimised total of each mineral by consumption; alone "
        "drops lending. The recourse is optimised in each. The value of complementarity is a rule's cost less "
        "the optimised one's; a rule the limits cannot afford is listed above with the limit that breaks.",
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("arrangement:N", sort=order, title=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("usd:Q", axis=usd_axis("expected cost"), stack="zero"),
            color=alt.Color(
                "component:N",
                sort=list(COST_PARTS.values()),
                scale=alt.Scale(
                    domain=list(COST_PARTS.values()),
                    range=["#1f77b4", "#9ecae1", "#bdbdbd", "#31a354", "#000000", "#756bb1", "#f2b701"],
                ),
                legend=alt.Legend(orient="top", title=None),
            ),
            order=alt.Order("part:N"),
            tooltip=["arrangement", "component", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=40 * max(len(order), 1), title="Expected cost by arrangement"),
        df_table(
            table[
                [
                    "rule",
                    "status",
                    "objective_usd",
                    "complementarity_value_usd",
                    *[c for c in table if c.startswith("cost_usd.")],
                    "reasons",
                ]
            ].assign(reasons=table.reasons.astype("string").fillna("").astype(str)),
            money_cols=("objective_usd", "complementarity_value_usd", *[c for c in table if c.startswith("cost_usd.")]),
        ),
    )
    cov = [c for c in ok if c.startswith("coverage_days.")]
    if cov:
        df = ok.melt(id_vars="rule", value_vars=cov, var_name="key", value_name="days")
        df[["participant", "mineral"]] = df.key.str.split(".", expand=True)[[1, 2]]
        df["arrangement"] = df.rule.map(COMPARE_RULES)
        page.add(
            "Coverage under each arrangement",
            "Expected days covered given a disruption of the mineral, per participant, under each arrangement.",
            alt.Chart(df)
            .mark_rect()
            .encode(
                x=alt.X("mineral:N", title=None),
                y=alt.Y("arrangement:N", sort=order, title=None, axis=alt.Axis(labelLimit=300)),
                color=alt.Color("days:Q", scale=alt.Scale(scheme="greens"), title="days covered"),
                tooltip=["arrangement", "participant", "mineral", alt.Tooltip("days:Q", format=",.0f")],
            )
            .properties(width=WIDTH // 2, height=30 * max(len(order), 1))
            .facet(row=alt.Row("participant:N", title=None)),
        )
    return page
