"""The page of a solve run: costs, holdings, coverage, lending, limits and the build-up."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from stockpile.enums import has_plan
from stockpile.fmt import money as _money
from stockpile.report.charts import (
    MEASURES,
    budget_chart,
    buildup_chart,
    cost_chart,
    coverage_heatmap,
    coverage_sources_chart,
    damage_curves_chart,
    days_chart,
    holdings_chart,
    lending_chart,
    measures_chart,
    net_cost_chart,
    simulation_chart,
    stock_offtake_chart,
    top_scenarios,
    trajectory_chart,
)
from stockpile.report.page import Page, df_table, kv_table, read_table
from stockpile.results.tables import buildup_table, cost_rows


def solve_page(folder: Path) -> Page:
    s = json.loads((folder / "summary.json").read_text())
    cfg = yaml.safe_load((folder / "config.resolved.yaml").read_text())
    created = datetime.fromtimestamp((folder / "summary.json").stat().st_mtime, tz=UTC)
    page = Page(f"stockpile · {s['config_name']}", "solve")
    gap = s.get("gap")
    parts = list(cfg["participants"])
    page.header = kv_table(
        [
            ("status", f"<b>{html.escape(s['status'])}</b>"),
            ("total expected cost", f"<b>{_money(s.get('objective_usd'))}</b>"),
            ("best bound", _money(s.get("best_bound_usd"))),
            ("gap", "–" if gap is None else f"{gap:.2e}"),
            ("solver", html.escape(f"{s.get('solver')} ({s.get('method', '–')}), {s.get('solver_version', '')}")),
            ("date", created.strftime("%Y-%m-%d %H:%M UTC")),
            ("config", html.escape(f"{s['config_name']} · hash {s['config_hash']}")),
            ("overrides", html.escape(", ".join(f"{k}={v}" for k, v in s.get("overrides", [])) or "none")),
        ]
    )
    if not has_plan(s["status"]):
        page.add("No plan", "; ".join(s.get("reasons", [])) or s["status"])
        return page
    hold = read_table(folder, "holdings.csv")
    cov = read_table(folder, "coverage.csv")
    sched = read_table(folder, "schedule.csv")
    flows = read_table(folder, "lending_flows.csv") if (folder / "lending_flows.csv").exists() else None
    expected = read_table(folder, "expected_coverage.csv") if (folder / "expected_coverage.csv").exists() else None
    page.header += cost_table(s, flows)
    page.add(
        "Cost by component",
        "Expected cost by component and by who pays it (the borrower pays a lending fee); the parts add up "
        "to the total.",
        cost_chart(s, parts),
    )
    page.add(
        "Holdings",
        "Tonnes held per participant and mineral (pale: initial stock, solid: acquired) and the days of the "
        "participant's consumption they cover; 'why' says which limit forces or stops each holding, or its cost.",
        holdings_chart(hold, parts),
        days_chart(hold, parts),
        df_table(
            hold.rename(columns={"holding_t": "tonnes", "days_of_consumption": "days", "note": "why"})[
                ["participant", "mineral", "tonnes", "days", "why"]
            ]
        ),
    )
    page.add(
        "What a holding costs and saves",
        "Per holding, a tonne's net cost over the horizon (price, plus discounted storage in every year it "
        "protects, less the discounted resale after the last: net_cost_usd_per_t in holdings.csv) against "
        "what it saves in expectation (the damage its releases and loans avoid, probability-weighted over "
        "the years it protects, per tonne held: expected_saving_usd_per_t). A holding below the dashed line "
        "is forced by a limit (min_days). Above it, the average tonne saves more than it costs: the first "
        "tonnes cover the deepest, dearest part of a shortage, and the model stops where the last tonne "
        "saves no more than it costs (or a limit stops it: see 'why').",
        net_cost_chart(hold, parts),
    )
    page.add(
        "Damage curves",
        "What a tonne of disrupted supply not covered costs, by the depth of the shortage in a period (unmet "
        "tonnes as a share of the participant's consumption in the period): each step is one segment of minerals.M.shortfall_cost_usd_per_t "
        "or the curve derived from minerals.M.damage (configs/damage.md gives the bundled curves' sources).",
        damage_curves_chart(cfg, parts),
    )
    if (folder / "acquisitions.csv").exists():
        acq = read_table(folder, "acquisitions.csv")
        limits_now = read_table(folder, "limits.csv")
        order = buildup_table(acq)
        page.add(
            "Build-up by fiscal year",
            "Days of consumption held at the end of each year, by mineral, per participant (the dots mark a "
            "year with a purchase); the money spent each year against that year's appropriation (with "
            "budget_carryover, what is spent so far against the budgets so far). The table lists the minerals "
            "in the order they are first bought, the tonnes bought each year and the days held at its end, "
            "and the holding's expected saving per dollar: the shortfall "
            "cost its releases and loans avoid, probability-weighted and discounted, over what it cost. A "
            "saving of 0 marks a holding bought only to meet a min_days target.",
            buildup_chart(acq, parts),
            budget_chart(limits_now, parts),
            df_table(order.rename(columns={"first_year": "first year", "expected_saving_per_usd": "saves per $"})),
        )
    if (folder / "offtake.csv").exists():
        off = read_table(folder, "offtake.csv")
        page.add(
            "Stock and offtake",
            "Per mineral, the tonnes each participant holds and the tonnes a year it commits to take from allied "
            "projects at their floor price (offtake reaches it in every scenario, so no shock cuts it); the table "
            "gives the yearly price-gap subsidy, its cost over the horizon and the shortfall it serves in expectation.",
            stock_offtake_chart(hold, off, parts),
            df_table(off, money_cols=("subsidy_usd_per_year", "agreement_usd", "cost_usd")),
        )
    if expected is not None and len(expected):
        page.add(
            "Coverage given a disruption",
            "Expected days covered when the mineral is disrupted, from own stock (the participant's colour) and "
            "borrowed (the lender's colour), against the days disrupted; the worst scenario's share; where the "
            "coverage comes from.",
            coverage_sources_chart(expected, flows, parts),
            df_table(coverage_summary(expected), pct_cols=("share", "worst share")),
        )
    shown, total = len(top_scenarios(cfg, cov.scenario)), cov.scenario.nunique()
    page.add(
        "Coverage by scenario",
        "Share of each disrupted shortfall covered by own release and borrowing, per scenario and mineral; the "
        "label is coverage-days"
        + (f". Shows the {shown} most probable of {total} disrupting scenarios." if shown < total else "."),
        coverage_heatmap(cov, cfg, parts),
    )
    page.add(
        "Inventory and releases",
        "End-of-period inventory and what left or arrived each period in one disruption (scenario and mineral) "
        "at a time; pick it below the chart. Schedules are canonical: no shortfall is left unmet while stock "
        "that could cover it is released later.",
        trajectory_chart(sched, cfg),
    )
    if flows is not None and len(flows):
        page.add(
            "Lending between partners",
            "Expected tonnes lent per scenario on each arc, by mineral (line width: expected value lent at the "
            "acquisition price); the table gives the fees and the worst scenario.",
            lending_chart(flows, cfg, parts),
            df_table(flows, money_cols=("expected_fees_usd",)),
        )
    limits = read_table(folder, "limits.csv") if (folder / "limits.csv").exists() else None
    if limits is not None:
        explained = "delta_objective_usd" in limits.columns
        page.add(
            "Limits at the optimum",
            "Each limit the config sets: its value, what the plan uses, and whether it binds (the slack is under "
            "one lot's worth)."
            + (
                " Sorted by what relaxing it by 'step' saves (delta < 0 saves, re-solved); 'dual' is the LP "
                "dollars saved per unit with the lots fixed (empty for limits that act only on whole lots)."
                if explained
                else " Run `stockpile explain` on this folder for what relaxing each one is worth."
            ),
            df_table(limits_view(limits), money_cols=("dual", "delta")),
        )
    if (folder / "explain.json").exists():
        m = json.loads((folder / "explain.json").read_text())
        page.add(
            "Value of planning for uncertainty",
            "RP: this plan's expected cost. WS: each scenario foreseen (its own plan). EVPI = RP - WS: what "
            "perfect foresight would be worth. EV: the plan made for the average disruption; EEV: that plan "
            "facing the real scenarios. VSS = EEV - RP: what planning for the spread of disruptions saves. "
            + m.get("note", ""),
            measures_chart(m),
            kv_table([(k.removesuffix("_usd").upper(), _money(m.get(k))) for k in MEASURES]),
        )
    if (folder / "simulation.json").exists():
        sim = json.loads((folder / "simulation.json").read_text())
        rows = pd.DataFrame(
            sim["scenarios"] + ([{"scenario": "expected", **sim["expected"]}] if "expected" in sim else [])
        )
        page.add(
            "Responding month by month",
            "stockpile simulate: each disruption replayed month by month, the orders decided without knowing how "
            "long it lasts (rolling), against this plan's schedule, which knew (clairvoyant), and against each "
            "participant responding alone (no lending). Costs are the disruption's unmet shortfall and lending "
            "fees; 'expected' weighs every scenario by its probability.",
            simulation_chart(rows),
            df_table(
                rows.rename(columns=lambda c: c.removesuffix("_usd").replace("_", " "))[
                    [
                        "scenario",
                        "rolling cost",
                        "clairvoyant cost",
                        "value of knowing duration",
                        "alone cost",
                        "coordination value",
                    ]
                ],
                money_cols=(
                    "rolling cost",
                    "clairvoyant cost",
                    "value of knowing duration",
                    "alone cost",
                    "coordination value",
                ),
            ),
        )
    return page


# the report's heading of each cost kind in the table of who pays what
def cost_table(s: dict[str, object], flows: pd.DataFrame | None) -> str:
    """Cost per participant (the headline): each part, the total, and lending fees received."""
    kinds, rows = cost_rows(s, flows)
    df = pd.DataFrame(
        [
            {
                "participant": r.party,
                **{k.label: r.paid[k] for k in kinds},
                "total": r.total_usd,
                "lending fees received": r.fees_received_usd,
            }
            for r in rows
        ]
    )
    return "<h2>Who pays what</h2>" + df_table(df, money_cols=tuple(c for c in df.columns if c != "participant"))


def coverage_summary(expected: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "participant": expected.participant,
            "mineral": expected.mineral,
            "P(hit)": expected.disruption_probability,
            "days disrupted": expected.expected_disruption_days,
            "own days": expected.own_coverage_days,
            "borrowed days": expected.borrowed_coverage_days,
            "share": expected.expected_coverage_share,
            "worst share": expected.worst_coverage_share,
            "worst scenario": expected.worst_scenario,
            "source": expected.note,
        }
    )


def limits_view(limits: pd.DataFrame) -> pd.DataFrame:
    """limits.csv for people: sorted by what relaxing saves, figures in each limit's unit."""
    df = limits.copy()
    for col in ("participant", "mineral", "arc", "project"):
        if col not in df:  # limits.csv of a run written before projects existed
            df[col] = ""
        df[col] = df[col].astype("string").fillna("").astype(str)
    if "delta_objective_usd" in df.columns:
        df = df.assign(_k=df.delta_objective_usd.fillna(0.0)).sort_values("_k", kind="stable").drop(columns="_k")

    def fig(kind: str, v: float) -> str:
        if v != v:
            return "–"
        if kind.endswith("_usd"):
            return _money(v)
        if kind == "floor_price_usd_per_t":
            return f"${v:,.0f}/t"
        if kind == "capacity_t_per_year":
            return f"{v:,.4g} t/yr"
        if kind in ("release_rate_max", "reserve_floor", "lending_max_share"):
            return f"{v:.1%}"
        unit = " days" if kind == "min_days" else " t"
        return f"{v:,.4g}{unit}"

    out = pd.DataFrame(
        {
            "limit": df.limit,
            "who": [
                (
                    r.arc
                    or (
                        f"{r.project} ({r.mineral})"
                        if r.project
                        else " ".join(x for x in (r.participant, r.mineral) if x)
                    )
                )
                + (f", year {int(r.year)}" if "year" in df and r.year == r.year and str(r.year) != "" else "")
                for r in df.itertuples()
            ],
            "value": [fig(r.limit, r.value) for r in df.itertuples()],
            "used": [
                f"{r.used:,.4g} t/yr taken" if r.limit == "floor_price_usd_per_t" else fig(r.limit, r.used)
                for r in df.itertuples()
            ],
            "slack": [fig(r.limit, r.slack) for r in df.itertuples()],
            "binds": df.binds.map(lambda b: "yes" if str(b) == "True" else ""),
        }
    )
    if "delta_objective_usd" in df.columns:
        out["dual"] = df.dual_usd_per_unit.to_numpy()
        out["step"] = [fig(r.limit, r.step) for r in df.itertuples()]
        out["delta"] = df.delta_objective_usd.to_numpy()
    return out
