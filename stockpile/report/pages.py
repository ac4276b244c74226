"""Reports people look at: one self-contained HTML page per run, study or coalition folder.

Reads only the files a run wrote (CSV, JSON, the resolved config), never the
optimizer. Charts are Vega-Lite specifications built with Altair; the page
inlines the Vega bundle once (from vl-convert, no network) and embeds every
chart, with tooltips and clickable legends. The same specifications are written
as PNG and SVG by vl-convert for slides (``--figures DIR``).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import altair as alt
import numpy as np
import pandas as pd
import yaml

from stockpile.enums import has_plan
from stockpile.fmt import money as _money
from stockpile.model.core import COST_KEYS, CostKind
from stockpile.results.outputs import atomic_write_text
from stockpile.results.runs import folder_kind
from stockpile.results.tables import buildup_table, cost_rows

MAX_SCENARIOS_SHOWN = 30
WIDTH = 640


@dataclass
class Page:
    """A report page: title, header HTML, and named sections of charts and tables."""

    title: str
    kind: str
    header: str = ""
    sections: list[tuple[str, str, list]] = field(default_factory=list)  # (title, note, [chart | html])
    charts: dict[str, alt.TopLevelMixin] = field(default_factory=dict)

    def add(self, title: str, note: str, *items) -> None:
        for item in items:
            if not isinstance(item, str):
                self.charts[f"{self.kind}_{len(self.charts) + 1:02d}_{_slug(title)}"] = item
        self.sections.append((title, note, list(items)))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_")[:40]


def build_report(folder: str | Path) -> Page:
    folder = Path(folder)
    kind = folder_kind(folder)
    pages = {"solve": solve_page, "study": study_page, "coalition": coalition_page, "saa": saa_page}
    return (pages | {"compare": compare_page, "response": response_page})[kind](folder)


def write_report(folder: str | Path, figures: str | Path | None = None) -> Path:
    """Write report.html into the folder (and each chart as PNG and SVG into figures)."""
    folder = Path(folder)
    page = build_report(folder)
    out = folder / "report.html"
    atomic_write_text(out, render(page))
    if figures:
        fig_dir = Path(figures)
        fig_dir.mkdir(parents=True, exist_ok=True)
        for name, chart in page.charts.items():
            chart.save(str(fig_dir / f"{name}.svg"))
            chart.save(str(fig_dir / f"{name}.png"), scale_factor=2)
    return out


# ----------------------------------------------------------------------------
# Solve runs


def _kv_table(rows: list[tuple[str, str]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


def _df_table(df: pd.DataFrame, sortable: bool = False, money_cols: tuple = (), pct_cols: tuple = ()) -> str:
    """An HTML table: dollars as $m/$bn, shares as %, text left-aligned, figures right."""
    # long keys may break after a dot or an underscore, never inside a word
    head = "".join(f"<th>{html.escape(str(c)).replace('.', '.<wbr>').replace('_', '_<wbr>')}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            cls = ""
            if c in money_cols:
                text, key = _money(v), v
            elif c in pct_cols and isinstance(v, float):
                text, key = ("–" if v != v else f"{v:.1%}"), v
            elif isinstance(v, float):
                text, key = ("–" if v != v else f"{v:,.4g}"), v
            elif isinstance(v, (int, bool)) or hasattr(v, "dtype"):
                text, key = html.escape(str(v)), str(v)
            else:
                text, key, cls = html.escape(str(v)), str(v), ' class="text"'
            cells.append(f'<td{cls} data-key="{html.escape(str(key))}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cls = "data sortable" if sortable else "data"
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, keep_default_na=False, na_values=[""])


def solve_page(folder: Path) -> Page:
    s = json.loads((folder / "summary.json").read_text())
    cfg = yaml.safe_load((folder / "config.resolved.yaml").read_text())
    created = datetime.fromtimestamp((folder / "summary.json").stat().st_mtime, tz=UTC)
    page = Page(f"stockpile · {s['config_name']}", "solve")
    gap = s.get("gap")
    parts = list(cfg["participants"])
    page.header = _kv_table(
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
    hold = _read(folder, "holdings.csv")
    cov = _read(folder, "coverage.csv")
    sched = _read(folder, "schedule.csv")
    flows = _read(folder, "lending_flows.csv") if (folder / "lending_flows.csv").exists() else None
    expected = _read(folder, "expected_coverage.csv") if (folder / "expected_coverage.csv").exists() else None
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
        _df_table(
            hold.rename(columns={"holding_t": "tonnes", "days_of_consumption": "days", "note": "why"})[
                ["participant", "mineral", "tonnes", "days", "why"]
            ]
        ),
    )
    if (folder / "acquisitions.csv").exists():
        acq = _read(folder, "acquisitions.csv")
        limits_now = _read(folder, "limits.csv")
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
            _df_table(order.rename(columns={"first_year": "first year", "expected_saving_per_usd": "saves per $"})),
        )
    if (folder / "offtake.csv").exists():
        off = _read(folder, "offtake.csv")
        page.add(
            "Stock and offtake",
            "Per mineral, the tonnes each participant holds and the tonnes a year it commits to take from allied "
            "projects at their floor price (offtake reaches it in every scenario, so no shock cuts it); the table "
            "gives the yearly price-gap subsidy, its cost over the horizon and the shortfall it serves in expectation.",
            stock_offtake_chart(hold, off, parts),
            _df_table(off, money_cols=("subsidy_usd_per_year", "agreement_usd", "cost_usd")),
        )
    if expected is not None and len(expected):
        page.add(
            "Coverage given a disruption",
            "Expected days covered when the mineral is disrupted, from own stock (the participant's colour) and "
            "borrowed (the lender's colour), against the days disrupted; the worst scenario's share; where the "
            "coverage comes from.",
            coverage_sources_chart(expected, flows, parts),
            _df_table(coverage_summary(expected), pct_cols=("share", "worst share")),
        )
    shown, total = len(_top_scenarios(cfg, cov.scenario)), cov.scenario.nunique()
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
            _df_table(flows, money_cols=("expected_fees_usd",)),
        )
    limits = _read(folder, "limits.csv") if (folder / "limits.csv").exists() else None
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
            _df_table(limits_view(limits), money_cols=("dual", "delta")),
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
            _kv_table([(k.removesuffix("_usd").upper(), _money(m.get(k))) for k in MEASURES]),
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
            _df_table(
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


def buildup_chart(acq: pd.DataFrame, parts: list[str]) -> alt.FacetChart:
    """Days of consumption held at each year's end, a line per mineral, a panel per participant."""
    df = acq.dropna(subset=["days_of_consumption"]).assign(bought=lambda d: d.lots > 0)
    df = df[df.groupby(["participant", "mineral"]).holding_t.transform("max") > 0]
    base = alt.Chart(df).encode(
        x=alt.X("year:O", title="fiscal year of the build-up", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("days_of_consumption:Q", title="days of consumption held"),
        color=alt.Color("mineral:N", legend=alt.Legend(orient="top")),
        tooltip=[
            "participant",
            "mineral",
            "year",
            alt.Tooltip("acquired_t:Q", format=",.1f", title="bought (t)"),
            alt.Tooltip("holding_t:Q", format=",.1f", title="held (t)"),
            alt.Tooltip("days_of_consumption:Q", format=",.0f", title="days"),
            alt.Tooltip("cost_usd:Q", format="$,.0f", title="cost"),
        ],
    )
    lines = base.mark_line() + base.transform_filter("datum.bought").mark_point(filled=True, size=50)
    return (
        alt.layer(lines, data=df)
        .properties(width=300, height=200)
        .facet(column=alt.Column("participant:N", title=None, sort=parts))
        .properties(title="Days held at the end of each year")
    )


def budget_chart(limits: pd.DataFrame, parts: list[str]) -> alt.TopLevelMixin:
    """Money spent each year (bars) against the appropriation (ticks), per participant."""
    df = limits[limits.limit == "budget_usd"].astype({"year": int})
    bars = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("year:O", title="fiscal year", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("participant:N", sort=parts),
            y=alt.Y("used:Q", axis=usd_axis("spent")),
            color=_pcolor(parts),
            tooltip=[
                "participant",
                "year",
                alt.Tooltip("used:Q", format="$,.0f", title="spent"),
                alt.Tooltip("value:Q", format="$,.0f", title="appropriation"),
            ],
        )
    )
    ticks = (
        alt.Chart(df)
        .mark_tick(color="black", thickness=2)
        .encode(x="year:O", xOffset=alt.XOffset("participant:N", sort=parts), y="value:Q")
    )
    return (bars + ticks).properties(width=WIDTH, height=180, title="Budget spent each year (tick: appropriation)")


def stock_offtake_chart(hold: pd.DataFrame, off: pd.DataFrame, parts: list[str]) -> alt.FacetChart:
    """Tonnes held against tonnes a year of offtake, per participant, for the minerals with offtake."""
    minerals = sorted(set(off.mineral))
    stock = hold[hold.mineral.isin(minerals)].assign(source="stock held (t)", tonnes=lambda d: d.holding_t)
    taken = off.groupby(["participant", "mineral"], as_index=False).offtake_t_per_year.sum()
    taken = taken.assign(source="offtake (t a year)", tonnes=taken.offtake_t_per_year)
    df = pd.concat(
        [stock[["participant", "mineral", "source", "tonnes"]], taken[["participant", "mineral", "source", "tonnes"]]]
    )
    order = ["stock held (t)", "offtake (t a year)"]
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("participant:N", sort=parts, title=None),
            xOffset=alt.XOffset("source:N", sort=order),
            y=alt.Y("tonnes:Q", title="tonnes"),
            color=alt.Color(
                "source:N",
                sort=order,
                scale=alt.Scale(domain=order, range=["#6b6b6b", "#f2b701"]),
                legend=alt.Legend(orient="top", title=None),
            ),
            tooltip=["participant", "mineral", "source", alt.Tooltip("tonnes:Q", format=",.1f")],
        )
        .properties(width=160, height=200)
        .facet(column=alt.Column("mineral:N", title=None))
        .resolve_scale(y="independent")
    )


SIMULATION_SERIES = {
    "clairvoyant_cost_usd": "knew the duration (the plan's schedule)",
    "rolling_cost_usd": "month by month, not knowing it",
    "alone_cost_usd": "month by month, each alone",
}


def simulation_chart(rows: pd.DataFrame) -> alt.Chart:
    """Per scenario: the three response costs side by side."""
    long = rows.melt(id_vars="scenario", value_vars=list(SIMULATION_SERIES), var_name="kind", value_name="usd")
    long["response"] = long.kind.map(SIMULATION_SERIES)
    order = list(SIMULATION_SERIES.values())
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("scenario:N", sort=list(rows.scenario), title=None, axis=alt.Axis(labelLimit=300)),
            yOffset=alt.YOffset("response:N", sort=order),
            x=alt.X("usd:Q", axis=usd_axis("cost of the disruption (unmet shortfall and lending fees)")),
            color=alt.Color(
                "response:N",
                sort=order,
                scale=alt.Scale(domain=order, range=["#bdbdbd", "#1f77b4", "#000000"]),
                legend=alt.Legend(orient="top", title=None, labelLimit=400),
            ),
            tooltip=["scenario", "response", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, title="Cost of each disruption by how the response is decided")
    )


MEASURES = ("rp_usd", "ws_usd", "evpi_usd", "ev_usd", "eev_usd", "vss_usd")
# one colour per participant, in config order; other categories use colours outside this list
PARTICIPANT_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
SERIES_COLORS = {
    "own release": "#6b6b6b",
    "lent out": "#bdbdbd",
    "borrowed": "#f2b701",
    "offtake": "#2ca02c",
    "unmet": "#000000",
}


def _pcolor(parts: list[str], field: str = "participant", title: str | None = "participant") -> alt.Color:
    scale = alt.Scale(domain=parts, range=PARTICIPANT_COLORS[: len(parts)])
    return alt.Color(
        f"{field}:N", scale=scale, title=title, legend=alt.Legend(orient="top", titleLimit=600, labelLimit=300)
    )


USD_LABEL = (
    "abs(datum.value) >= 1e9 ? format(datum.value / 1e9, '$,.3~f') + 'bn' : "
    "abs(datum.value) >= 1e6 ? format(datum.value / 1e6, '$,.3~f') + 'm' : "
    "abs(datum.value) >= 1e3 ? format(datum.value / 1e3, '$,.3~f') + 'k' : format(datum.value, '$,.0f')"
)


def usd_axis(title: str | None = "USD") -> alt.Axis:
    """Dollars as $k/$m/$bn rather than SI prefixes (G would read as giga-dollars)."""
    return alt.Axis(title=title, labelExpr=USD_LABEL)


# the report's heading of each cost kind in the table of who pays what
COST_LABELS = {
    CostKind.ACQUISITION: "acquisition",
    CostKind.FIXED: "fixed",
    CostKind.HOLDING: "holding",
    CostKind.SHORTFALL: "expected shortfall",
    CostKind.LENDING: "lending fees paid",
    CostKind.OFFTAKE: "offtake",
}


def cost_table(s: dict[str, object], flows: pd.DataFrame | None) -> str:
    """Cost per participant (the headline): each part, the total, and lending fees received."""
    kinds, rows = cost_rows(s, flows)
    df = pd.DataFrame(
        [
            {
                "participant": r.party,
                **{COST_LABELS[k]: r.paid[k] for k in kinds},
                "total": r.total_usd,
                "lending fees received": r.fees_received_usd,
            }
            for r in rows
        ]
    )
    return "<h2>Who pays what</h2>" + _df_table(df, money_cols=tuple(c for c in df.columns if c != "participant"))


# cost parts a run may not have at all (no projects, a risk-neutral objective): shown only when used
OPTIONAL_COSTS = ("offtake_usd", "risk_premium_usd")


def cost_chart(s: dict, parts: list[str]) -> alt.Chart:
    names = {k: k.removesuffix("_usd").replace("_", " ") for k, v in s["costs"].items() if v or k not in OPTIONAL_COSTS}
    rows = [
        {"participant": p, "component": names[k], "usd": v}
        for p, c in (s.get("costs_by_participant") or {}).items()
        for k, v in c.items()
        if k in names
    ]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            y=alt.Y("component:N", sort=list(names.values()), title=None),
            x=alt.X("usd:Q", axis=usd_axis("expected cost"), stack="zero"),
            color=_pcolor(parts),
            tooltip=["participant", "component", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=150, title="Expected cost by component and participant")
    )


def holdings_chart(hold: pd.DataFrame, parts: list[str]) -> alt.FacetChart:
    df = hold.melt(
        id_vars=["participant", "mineral"], value_vars=["initial_t", "acquired_t"], var_name="part", value_name="tonnes"
    )
    df["part"] = df["part"].map({"initial_t": "initial stock", "acquired_t": "acquired"})
    return (
        alt.Chart(df)
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("participant:N", title=None, sort=parts),
            y=alt.Y("tonnes:Q", title="tonnes", stack="zero"),
            color=_pcolor(parts),
            opacity=alt.Opacity(
                "part:N",
                scale=alt.Scale(domain=["initial stock", "acquired"], range=[0.35, 1.0]),
                title=None,
                legend=alt.Legend(orient="top", titleLimit=600, labelLimit=300),
            ),
            order=alt.Order("part:N", sort="descending"),
            tooltip=["participant", "mineral", "part", alt.Tooltip("tonnes:Q", format=",.1f")],
        )
        .properties(width=90, height=140)
        .facet(facet=alt.Facet("mineral:N", title=None), columns=4)
        .resolve_scale(y="independent")
        .properties(title="Tonnes held: initial stock and acquisitions")
    )


def days_chart(hold: pd.DataFrame, parts: list[str]) -> alt.Chart:
    legend = alt.selection_point(fields=["participant"], bind="legend")
    return (
        alt.Chart(hold.dropna(subset=["days_of_consumption"]))
        .mark_bar()
        .encode(
            x=alt.X("mineral:N", title=None),
            xOffset=alt.XOffset("participant:N", sort=parts),
            y=alt.Y("days_of_consumption:Q", title="days of consumption held"),
            color=_pcolor(parts),
            opacity=alt.condition(legend, alt.value(1.0), alt.value(0.2)),
            tooltip=[
                "participant",
                "mineral",
                alt.Tooltip("holding_t:Q", format=",.1f", title="tonnes"),
                alt.Tooltip("days_of_consumption:Q", format=",.0f", title="days"),
                alt.Tooltip("note:N", title="why"),
            ],
        )
        .properties(width=WIDTH, height=200, title="Days of consumption held")
        .add_params(legend)
    )


def coverage_sources_chart(expected: pd.DataFrame, flows: pd.DataFrame | None, parts: list[str]) -> alt.TopLevelMixin:
    """Stacked expected coverage-days: own stock in the holder's colour, borrowed in each lender's colour
    (split between lenders by their expected tonnes), with a tick at the disrupted days."""
    rows = []
    for r in expected.itertuples():
        who = f"{r.participant} · {r.mineral}"
        rows.append({"who": who, "source": r.participant, "how": "own stock", "days": r.own_coverage_days})
        lenders = (
            flows[(flows.to == r.participant) & (flows.mineral == r.mineral)] if flows is not None else pd.DataFrame()
        )
        total = lenders.expected_lent_t.sum() if len(lenders) else 0.0
        for lend in lenders.itertuples():
            share = lend.expected_lent_t / total if total > 0 else 0.0
            rows.append(
                {
                    "who": who,
                    "source": lend[1],
                    "how": f"borrowed from {lend[1]}",
                    "days": r.borrowed_coverage_days * share,
                }
            )
    df = pd.DataFrame(rows)
    order = [f"{r.participant} · {r.mineral}" for r in expected.itertuples()]
    bars = (
        alt.Chart(df)
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            y=alt.Y("who:N", sort=order, title=None),
            x=alt.X("sum(days):Q", title="expected coverage-days given a disruption"),
            color=_pcolor(parts, "source", "stock of"),
            opacity=alt.condition(alt.datum.how == "own stock", alt.value(1.0), alt.value(0.55)),
            tooltip=["who", "how", alt.Tooltip("days:Q", format=",.1f")],
        )
    )
    ticks = (
        alt.Chart(expected.assign(who=order))
        .mark_tick(color="black", thickness=2, size=14)
        .encode(
            y=alt.Y("who:N", sort=order),
            x="expected_disruption_days:Q",
            tooltip=["who", alt.Tooltip("expected_disruption_days:Q", format=",.1f", title="days disrupted")],
        )
    )
    return alt.layer(bars, ticks).properties(
        width=WIDTH, height=18 * len(order), title="Where coverage comes from (tick: days disrupted)"
    )


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


def _top_scenarios(cfg: dict, names) -> list[str]:
    prob = {sc["name"]: sc["probability"] for sc in cfg["scenarios"]}
    return sorted(set(names), key=lambda n: (-prob.get(n, 0), n))[:MAX_SCENARIOS_SHOWN]


def coverage_heatmap(cov: pd.DataFrame, cfg: dict, parts: list[str]) -> alt.FacetChart:
    shown = _top_scenarios(cfg, cov.scenario)
    df = cov[cov.scenario.isin(shown)]
    base = alt.Chart(df).encode(
        x=alt.X("scenario:N", title=None, sort=shown, axis=alt.Axis(labelAngle=-35, labelLimit=160)),
        y=alt.Y("mineral:N", title=None),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "coverage_share:Q", title="share covered", scale=alt.Scale(domain=[0, 1], scheme="redyellowgreen")
        ),
        tooltip=[
            "participant",
            "scenario",
            "mineral",
            alt.Tooltip("coverage_share:Q", format=".0%"),
            alt.Tooltip("coverage_days:Q", format=",.0f"),
            alt.Tooltip("own_coverage_days:Q", format=",.0f", title="own days"),
            alt.Tooltip("borrowed_coverage_days:Q", format=",.0f", title="borrowed days"),
            alt.Tooltip("disruption_days:Q", format=",.0f"),
            alt.Tooltip("unmet_t:Q", format=",.1f"),
        ],
    )
    text = base.mark_text(fontSize=10).encode(text=alt.Text("coverage_days:Q", format=".0f"))
    total = cov.scenario.nunique()
    title = f"Coverage-days by scenario ({len(shown)} of {total} scenarios)"
    return (
        alt.layer(cells, text, data=df)
        .properties(width=min(WIDTH, max(160, 44 * len(shown))), height=16 * max(1, df.mineral.nunique()))
        .facet(row=alt.Row("participant:N", title=None, sort=parts))
        .properties(title=title)
    )


def trajectory_chart(sched: pd.DataFrame, cfg: dict) -> alt.FacetChart:
    """Inventory (line) and flows (bars) per period for one disruption (scenario and mineral) at a time."""
    prob = {sc["name"]: sc["probability"] for sc in cfg["scenarios"]}
    df = sched.assign(disruption=sched.scenario + " · " + sched.mineral)
    pairs = df.drop_duplicates("disruption").assign(p=lambda d: d.scenario.map(prob))
    keep = pairs.sort_values(["p", "disruption"], ascending=[False, True]).disruption.head(MAX_SCENARIOS_SHOWN * 2)
    df = df[df.disruption.isin(set(keep))]
    options = list(keep)
    pick = alt.param(
        name="disruption_pick",
        value=options[0] if options else None,
        bind=alt.binding_select(options=options, name="disruption "),
    )
    names = {
        "inventory_t": "inventory",
        "release_t": "own release",
        "lent_t": "lent out",
        "borrowed_t": "borrowed",
        "unmet_t": "unmet",
    }
    if "offtake_t" in df:  # what allied offtake served (runs written before projects have no column)
        names["offtake_t"] = "offtake"
    long = df.melt(
        id_vars=["disruption", "scenario", "participant", "mineral", "period"],
        value_vars=list(names),
        var_name="series",
        value_name="tonnes",
    )
    long["series"] = long["series"].map(names)
    long["panel"] = (long["series"] == "inventory").map(
        {True: "inventory at period end (t)", False: "flows in the period (t)"}
    )
    tooltip = ["scenario", "participant", "mineral", "period", "series", alt.Tooltip("tonnes:Q", format=",.1f")]
    base = alt.Chart().transform_filter(alt.datum.disruption == pick)
    bars = (
        base.transform_filter(alt.datum.series != "inventory")
        .mark_bar()
        .encode(
            x=alt.X("period:O"),
            y=alt.Y("tonnes:Q", title=None),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=list(SERIES_COLORS), range=list(SERIES_COLORS.values())),
                legend=alt.Legend(orient="top", titleLimit=600, labelLimit=300),
            ),
            tooltip=tooltip,
        )
    )
    line = (
        base.transform_filter(alt.datum.series == "inventory")
        .mark_line(point=True, color="#1b1f24")
        .encode(x=alt.X("period:O"), y=alt.Y("tonnes:Q", title=None), tooltip=tooltip)
    )
    return (
        alt.layer(line, bars, data=long)
        .properties(width=280, height=130)
        .facet(
            row=alt.Row("panel:N", title=None, sort="descending"),
            column=alt.Column("participant:N", title=None, sort=list(cfg["participants"])),
        )
        .resolve_scale(y="independent")
        .add_params(pick)
        .properties(title=alt.TitleParams(text={"expr": "'Inventory and flows in ' + disruption_pick"}))
    )


SIDES: tuple[tuple[str, Literal["left", "right"], int], ...] = (("lends", "right", -14), ("borrows", "left", 14))


def lending_chart(flows: pd.DataFrame, cfg: dict, parts: list[str]) -> alt.TopLevelMixin:
    """Lenders on the left, borrowers on the right, one line per (arc, mineral) in the lender's colour."""
    # a price path (horizon.years > 1): the last year's, that of the finished stock
    price = {m: np.atleast_1d(v["price_usd_per_t"])[-1] for m, v in cfg["minerals"].items()}
    df = flows.assign(
        y_from=flows["from"].map({p: i for i, p in enumerate(parts)}),
        y_to=flows["to"].map({p: i for i, p in enumerate(parts)}),
        value_usd=flows.expected_lent_t * flows.mineral.map(price),
    )
    df["y_from"] = df.y_from + (df.groupby("from").cumcount() - df.groupby("from").mineral.transform("size") / 2) * 0.2
    df["y_to"] = df.y_to + (df.groupby("to").cumcount() - df.groupby("to").mineral.transform("size") / 2) * 0.2
    df["label"] = df.mineral + ": " + df.expected_lent_t.map(lambda v: f"{v:,.3g}") + " t"
    df["x0"], df["x1"] = 0.0, 1.0
    y = alt.Scale(domain=[-0.8, len(parts) - 0.2])
    links = (
        alt.Chart(df)
        .mark_rule()
        .encode(
            x=alt.X("x0:Q", axis=None, scale=alt.Scale(domain=[-0.35, 1.35])),
            x2="x1",
            y=alt.Y("y_from:Q", axis=None, scale=y),
            y2="y_to",
            color=_pcolor(parts, "from", "lender"),
            strokeWidth=alt.StrokeWidth("value_usd:Q", scale=alt.Scale(range=[1, 12]), legend=None),
            tooltip=[
                "from",
                "to",
                "mineral",
                alt.Tooltip("expected_lent_t:Q", format=",.3f", title="expected t"),
                alt.Tooltip("worst_lent_t:Q", format=",.1f", title="worst-scenario t"),
                "worst_scenario",
                alt.Tooltip("expected_fees_usd:Q", format="$,.0f", title="expected fees"),
            ],
        )
    )
    labels = (
        alt.Chart(df)
        .transform_calculate(xm="0.22", ym="datum.y_from + 0.22 * (datum.y_to - datum.y_from)")
        .mark_text(dy=-7, fontSize=11)
        .encode(x="xm:Q", y=alt.Y("ym:Q", scale=y), text="label:N")
    )
    nodes = pd.DataFrame(
        [
            {"x": x, "y": i, "participant": p, "side": side}
            for i, p in enumerate(parts)
            for x, side in ((0.0, "lends"), (1.0, "borrows"))
        ]
    )
    dots = alt.Chart(nodes).mark_circle(size=260).encode(x="x:Q", y=alt.Y("y:Q", scale=y), color=_pcolor(parts))
    names = [
        alt.Chart(nodes[nodes.side == side])
        .mark_text(fontSize=12, fontWeight="bold", align=align, dx=dx)
        .encode(x="x:Q", y=alt.Y("y:Q", scale=y), text="text:N")
        .transform_calculate(text=f"datum.participant + ' {side}'")
        for side, align, dx in SIDES
    ]
    return alt.layer(links, labels, dots, *names).properties(
        width=WIDTH, height=max(160, 90 * len(parts)), title="Expected lending per scenario, lender to borrower"
    )


def measures_chart(m: dict) -> alt.Chart:
    rows = [{"measure": k.removesuffix("_usd").upper(), "usd": m.get(k)} for k in MEASURES if m.get(k) is not None]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar(color="#6b6b6b")
        .encode(
            y=alt.Y("measure:N", sort=[k.removesuffix("_usd").upper() for k in MEASURES], title=None),
            x=alt.X("usd:Q", axis=usd_axis("expected cost")),
            tooltip=["measure", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=150, title="Stochastic-programming measures")
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


# ----------------------------------------------------------------------------
# Studies


def _field(column: str) -> str:
    """Vega-Lite reads dots in a field name as nested access: chart columns use '/' instead."""
    return column.replace(".", "/")


def short_labels(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix (two segments at least) that tells each key apart from the others:
    two 'shocks.0.periods' keys keep their scenario names."""
    out = {}
    for k in keys:
        parts = k.split(".")
        for n in range(min(2, len(parts)), len(parts) + 1):
            tail = ".".join(parts[-n:])
            if sum(1 for other in keys if other == tail or other.endswith("." + tail)) == 1:
                break
        out[k] = tail
    return out


def fmt_value(key: str, v) -> str:
    """A swept value for people: dollars as $600m, other numbers as they read; a yearly list (as
    study.csv writes it) value by value."""
    if isinstance(v, str) and v.startswith("["):
        try:
            v = json.loads(v)
        except ValueError:
            return v
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(key, float(x) if isinstance(x, (int, float)) else x) for x in v) + "]"
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v
    if isinstance(v, float) and v != v:
        return "–"
    if key.endswith("_usd") and isinstance(v, (int, float)):
        return _money(float(v))
    if isinstance(v, float) and v.is_integer():
        return f"{int(v):,}"
    return str(v)


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
    page.header = _kv_table(
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
        _df_table(
            table.rename(columns=label),
            sortable=True,
            money_cols=("objective_usd",),
            pct_cols=("expected_coverage_share",),
        ),
    )
    return page


RISK_METRICS = ("expected_recourse_usd", "var_recourse_usd", "cvar_recourse_usd")


def non_dominated(cost: pd.Series, cover: pd.Series) -> pd.Series:
    """True where no other case costs no more and covers no less, one of them strictly."""
    c, v = cost.to_numpy(), cover.to_numpy()
    better = (
        (c[None, :] <= c[:, None])
        & (v[None, :] >= v[:, None])
        & ((c[None, :] < c[:, None]) | (v[None, :] > v[:, None]))
    )
    return pd.Series(~better.any(axis=1), index=cost.index)


def tradeoff_chart(ok: pd.DataFrame, swept: list[str], label: dict[str, str]) -> alt.TopLevelMixin:
    df = ok.dropna(subset=["expected_coverage_share", "objective_usd"]).copy()
    df["frontier"] = non_dominated(df.objective_usd, df.expected_coverage_share)
    df["base"] = df["base"].astype(bool) if "base" in df.columns else False
    df["name"] = [f"base config ({c})" if b else c for b, c in zip(df.base, df.case)]
    df["kind"] = [
        "base config" if b else ("named case" if not c.startswith("sweep_") else "sweep")
        for b, c in zip(df.base, df.case)
    ]
    tooltip = [
        "case",
        "label",
        alt.Tooltip("objective_usd:Q", format="$,.0f"),
        alt.Tooltip("expected_coverage_share:Q", format=".1%"),
    ]
    x = alt.X(
        "expected_coverage_share:Q",
        title="probability-weighted coverage",
        axis=alt.Axis(format=".1%"),
        scale=alt.Scale(zero=False),
    )
    y = alt.Y("objective_usd:Q", axis=usd_axis("expected total cost"), scale=alt.Scale(zero=False))
    color = (
        alt.Color(
            f"{_field(swept[0])} (shown):N",
            title=label[swept[0]],
            legend=alt.Legend(orient="top", titleLimit=600, labelLimit=300),
            sort=[fmt_value(swept[0], v) for v in sorted(df[swept[0]].dropna().unique())],
        )
        if swept
        else alt.value("#6b6b6b")
    )
    data = df.rename(columns={c: _field(c) for c in df.columns})
    points = (
        alt.Chart(data)
        .mark_point(filled=True, opacity=0.85)
        .encode(
            x=x,
            y=y,
            color=color,
            shape=alt.Shape(
                "kind:N",
                title=None,
                scale=alt.Scale(domain=["sweep", "named case", "base config"], range=["circle", "diamond", "square"]),
            ),
            size=alt.condition(alt.datum.base, alt.value(260), alt.value(70)),
            tooltip=tooltip,
        )
    )
    front = data[data.frontier]
    line = (
        alt.Chart(front)
        .mark_line(color="#1b1f24", strokeDash=[4, 3])
        .encode(x=x, y=y, order="expected_coverage_share:Q")
    )
    rings = alt.Chart(front).mark_point(size=200, color="#1b1f24", strokeWidth=1.2).encode(x=x, y=y, tooltip=tooltip)
    names = (
        alt.Chart(data[(data.kind != "sweep")])
        .mark_text(align="left", dx=9, dy=-6, fontSize=11)
        .encode(x=x, y=y, text=alt.Text("name:N"))
    )
    return alt.layer(line, points, rings, names).properties(
        width=WIDTH, height=320, title="Expected cost against probability-weighted coverage"
    )


def risk_frontier_chart(ok: pd.DataFrame) -> alt.TopLevelMixin:
    df = ok.assign(
        expected_cost=ok.objective_usd - ok.risk_premium_usd.fillna(0.0),
        w=ok["risk.cvar_weight"],
    ).sort_values("w")
    x = alt.X("expected_cost:Q", axis=usd_axis("expected total cost"), scale=alt.Scale(zero=False))
    y = alt.Y("cvar_recourse_usd:Q", axis=usd_axis("CVaR of the recourse cost"), scale=alt.Scale(zero=False))
    tip = [
        "case",
        "w",
        alt.Tooltip("expected_cost:Q", format="$,.0f"),
        alt.Tooltip("cvar_recourse_usd:Q", format="$,.0f"),
    ]
    line = alt.Chart(df).mark_line(point=True, color="#6b6b6b").encode(x=x, y=y, order="w:Q", tooltip=tip)
    text = alt.Chart(df).mark_text(align="left", dx=8, dy=-6).encode(x=x, y=y, text=alt.Text("w:Q", format=".2f"))
    return alt.layer(line, text).properties(width=WIDTH, height=260, title="Expected cost against CVaR (label: w)")


def _metric_name(col: str) -> str:
    return col.removesuffix("_usd").replace("_", " ") + (" (USD)" if col.endswith("_usd") else "")


def effect_chart(
    ok: pd.DataFrame, key: str, other: str | None, metrics: list[str], label: dict[str, str]
) -> alt.TopLevelMixin:
    """One metric (picked from every metric of study.csv) against a swept key."""
    keep = ok.dropna(subset=[key])
    long = keep.melt(
        id_vars=["case", key, *([other] if other else [])], value_vars=metrics, var_name="metric", value_name="value"
    )
    long["metric"] = long["metric"].map(_metric_name)
    long["key_shown"] = [fmt_value(key, v) for v in long[key]]
    if other:
        long["other_shown"] = [fmt_value(other, v) for v in long[other]]
    long = long.rename(columns={key: "x"}).drop(columns=[other] if other else [])
    options = [_metric_name(m) for m in metrics]
    pick = alt.param(
        name=f"metric_{_slug(key)}", value=options[0], bind=alt.binding_select(options=options, name="metric ")
    )
    usd = key.endswith("_usd")
    numeric = bool(pd.to_numeric(keep[key], errors="coerce").notna().all())  # not when a case sweeps a list
    enc = {
        "x": (
            alt.X("x:Q", title=label[key], axis=usd_axis(label[key]) if usd else alt.Axis(title=label[key]))
            if numeric
            else alt.X(
                "key_shown:N",
                title=label[key],
                sort=list(dict.fromkeys(long.key_shown)),
                axis=alt.Axis(labelAngle=0, labelLimit=300),
            )
        ),
        "y": alt.Y(
            "value:Q",
            title=None,
            scale=alt.Scale(zero=False),
            axis=alt.Axis(
                labelExpr=f"indexof({pick.name}, 'USD') >= 0 ? ({USD_LABEL}) : "
                f"indexof({pick.name}, 'share') >= 0 ? format(datum.value, '.0%') : format(datum.value, ',.4~g')"
            ),
        ),
        "tooltip": [
            "case",
            alt.Tooltip("key_shown:N", title=label[key]),
            "metric",
            alt.Tooltip("value:Q", format=",.4~g"),
        ],
    }
    if other:
        enc["color"] = alt.Color(
            "other_shown:N",
            title=label[other],
            legend=alt.Legend(orient="top", titleLimit=600, labelLimit=300),
            sort=[fmt_value(other, v) for v in sorted(ok[other].dropna().unique())],
        )
    return (
        alt.Chart(long)
        .transform_filter(alt.datum.metric == pick)
        .mark_line(point=True)
        .encode(**enc)
        .add_params(pick)
        .properties(
            width=WIDTH, height=240, title=alt.TitleParams(text={"expr": f"{pick.name} + ' against {label[key]}'"})
        )
    )


# ----------------------------------------------------------------------------
# Coalitions


def response_page(folder: Path) -> Page:
    """stockpile respond: this period's orders, what they are worth, and how each continuation plays out."""
    s = json.loads((folder / "summary.json").read_text())
    cfg = yaml.safe_load((folder / "config.resolved.yaml").read_text())
    orders = _read(folder, "orders.csv")
    cont = _read(folder, "contingency.csv")
    k = s["period"]
    page = Page(f"stockpile respond · {s['config_name']} · period {k}", "response")
    page.header = _kv_table(
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
        _df_table(view.drop(columns=["period"])),
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
        _df_table(
            rows, money_cols=("cost_usd", "alone_cost_usd", "clairvoyant_cost_usd"), pct_cols=("coverage_share",)
        ),
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


COMPARE_RULES = {
    "optimised": "optimised (complementary)",
    "days": "day-count rule",
    "prorata": "pro-rata by consumption",
    "alone": "each alone, no lending",
}
COST_PARTS = {
    "acquisition_usd": "acquisition",
    "fixed_usd": "fixed",
    "holding_usd": "holding",
    "expected_shortfall_usd": "expected shortfall",
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
    page.header = _kv_table([("expected cost by rule", "same budgets and limits"), *rows])
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
                    domain=list(COST_PARTS.values()), range=["#1f77b4", "#9ecae1", "#bdbdbd", "#000000", "#f2b701"]
                ),
                legend=alt.Legend(orient="top", title=None),
            ),
            order=alt.Order("part:N"),
            tooltip=["arrangement", "component", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=40 * max(len(order), 1), title="Expected cost by arrangement"),
        _df_table(
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


def coalition_page(folder: Path) -> Page:
    coal = pd.read_csv(folder / "coalitions.csv")
    shares = pd.read_csv(folder / "shares.csv")
    head = json.loads((folder / "coalition.json").read_text())
    page = Page(f"stockpile coalitions · {folder.name}", "coalition")
    page.header = _kv_table(
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
            _df_table(shares, money_cols=("standalone_usd", "shapley_usd", "spending_usd", "transfer_usd")),
        )
    return page


# ----------------------------------------------------------------------------
# Sample-average approximation


def saa_page(folder: Path) -> Page:
    head = json.loads((folder / "saa.json").read_text())
    reps = pd.read_csv(folder / "saa.csv")
    page = Page(f"stockpile SAA · {folder.name}", "saa")

    def ci(low: str, high: str) -> str:
        return f"{_money(head[low])} to {_money(head[high])}"

    page.header = _kv_table(
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
        _df_table(reps, money_cols=tuple(c for c in reps.columns if c.endswith("_usd"))),
    )
    return page


# ----------------------------------------------------------------------------
# HTML


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:24px;color:#1b1f24}
h1{font-size:1.5rem;margin:0 0 12px} h2{font-size:1.15rem;margin:28px 0 4px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
p.note{color:#57606a;margin:4px 0 10px;font-size:.9rem}
table{border-collapse:collapse;font-size:.85rem;margin:6px 0}
table.kv th{text-align:left;padding:2px 16px 2px 0;color:#57606a;font-weight:500} table.kv td{padding:2px 0}
table.data th,table.data td{border:1px solid #d0d7de;padding:3px 8px;text-align:right}
table.data th{background:#f6f8fa;max-width:14em} table.sortable th{cursor:pointer} table.data td.text{text-align:left}
.chart{margin:8px 0 16px;overflow-x:auto}
footer{margin-top:32px;color:#57606a;font-size:.8rem}
@media print{.chart{break-inside:avoid} body{max-width:none}}
"""

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const dir = th.dataset.dir === 'asc' ? -1 : 1; th.dataset.dir = dir === 1 ? 'asc' : 'desc';
  const key = r => { const v = r.cells[i].dataset.key; const n = parseFloat(v); return isNaN(n) ? v : n; };
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * dir).forEach(r => body.appendChild(r));
}));
"""


def render(page: Page) -> str:
    """The page as one HTML document: styles, the Vega bundle and every chart spec inlined."""
    import vl_convert as vlc

    alt.data_transformers.disable_max_rows()
    parts: list[str] = []
    specs: list[tuple[str, dict]] = []
    for title, note, items in page.sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if note:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        for item in items:
            if isinstance(item, str):
                parts.append(item)
            else:
                div = f"chart{len(specs) + 1}"
                specs.append((div, item.to_dict()))
                parts.append(f'<div class="chart" id="{div}"></div>')
    embeds = ",\n".join(f"vegaEmbed('#{d}', {json.dumps(s)}, {{renderer: 'svg', actions: false}})" for d, s in specs)
    bundle = vlc.javascript_bundle(vl_version=alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0])  # type: ignore[call-arg]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(page.title)}</title><style>{CSS}</style>
<script type="text/javascript">{bundle}</script></head>
<body data-charts="{len(specs)}">
<h1>{html.escape(page.title)}</h1>
{page.header}
{"".join(parts)}
<footer>Written by stockpile from the files in this folder; opens offline.</footer>
<script type="text/javascript">
{SORT_JS}
Promise.all([{embeds}]).then(() => {{ document.body.dataset.rendered = String({len(specs)}); }})
  .catch(err => {{ document.body.dataset.error = String(err); console.error(err); }});
</script>
</body></html>
"""
