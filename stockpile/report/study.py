"""The page of a study: each case's cost against its coverage, the trade-off and effect charts."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from stockpile.enums import COST_KEYS, has_plan
from stockpile.fmt import money as _money
from stockpile.report.charts import RISK_METRICS, effect_chart, risk_frontier_chart, tradeoff_chart
from stockpile.report.page import Page, df_table, fmt_value, kv_table, short_labels


def study_page(folder: Path) -> Page:
    raw = pd.read_csv(folder / "study.csv")
    page = Page(f"stockpile study · {folder.name}", "study")
    metrics = [
        c
        for c in raw.columns
        if c in ("objective_usd", "expected_coverage_share", *COST_KEYS, *RISK_METRICS)
        or c.startswith(("holding_t.", "coverage_days."))
    ]
    swept = [c for c in raw.columns if "." in c and c not in metrics]
    label = short_labels(swept)
    ok = raw[raw.status.map(has_plan)].copy()
    named = ok.case.where(~ok.case.str.startswith("sweep_"), "")
    ok["label"] = [
        n or ", ".join(f"{label[k]}={fmt_value(k, r[k])}" for k in swept) for n, (_, r) in zip(named, ok.iterrows())
    ]
    for k in swept:
        ok[f"{k} (shown)"] = [fmt_value(k, v) for v in ok[k]]
    page.header = kv_table(
        [
            ("cases", f"{len(raw)}"),
            ("solved", f"{len(ok)}"),
            ("swept keys", html.escape(", ".join(swept) or "none")),
            ("lowest expected cost", _money(ok.objective_usd.min() if len(ok) else None)),
        ]
    )
    if len(ok) and "expected_coverage_share" in ok.columns and ok.expected_coverage_share.notna().any():
        page.add(
            "Cost against coverage",
            "Each case's expected total cost against its probability-weighted coverage (the share of disrupted "
            "supply covered, weighted by each participant-mineral's disruption probability). Ringed: the "
            "non-dominated cases (no other case is cheaper and covers more); the base config is the large "
            "point; named cases carry their names.",
            tradeoff_chart(ok, swept, label),
        )
    if len(ok) and "risk.cvar_weight" in swept and "cvar_recourse_usd" in ok.columns:
        page.add(
            "Expected cost against tail risk",
            "Each case's expected cost (first stage plus expected recourse) against the CVaR of its recourse "
            "cost at the config's risk.cvar_alpha: raising risk.cvar_weight buys a thinner tail with a higher "
            "expected cost.",
            risk_frontier_chart(ok),
        )
    if len(ok) and swept:
        for k in swept:
            others = [o for o in swept if o != k]
            page.add(
                f"Effect of {label[k]}",
                f"Pick any metric below the chart; one line per value of {label[others[0]]}."
                if others
                else "Pick any metric below the chart.",
                effect_chart(ok, k, others[0] if others else None, metrics, label),
            )
    cols = ["case", *swept, "status", "objective_usd", "expected_coverage_share", "gap", "solve_seconds"]
    table = raw[[c for c in cols if c in raw.columns]].copy()
    for k in swept:
        table[k] = [fmt_value(k, v) for v in table[k]]
    page.add(
        "Cases",
        "Click a column header to sort.",
        df_table(
            table.rename(columns=label),
            sortable=True,
            money_cols=("objective_usd",),
            pct_cols=("expected_coverage_share",),
        ),
    )
    return page
