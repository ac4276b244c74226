"""Charts as Altair (Vega-Lite) specifications, one function per chart; pages compose them and
``--figures`` writes the same specifications as PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, cast

import altair as alt
import numpy as np
import pandas as pd

from stockpile.enums import CostKind
from stockpile.jsontypes import JSON
from stockpile.report.page import field_name, fmt_value, slug
from stockpile.results.check import curve

MAX_SCENARIOS_SHOWN = 30


WIDTH = 640


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
            color=participant_color(parts),
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
    return cast(
        alt.TopLevelMixin,
        (bars + ticks).properties(width=WIDTH, height=180, title="Budget spent each year (tick: appropriation)"),
    )


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
    return cast(
        alt.FacetChart,
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
        .resolve_scale(y="independent"),
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
    return cast(
        alt.Chart,
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
        .properties(width=WIDTH, title="Cost of each disruption by how the response is decided"),
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


def participant_color(parts: list[str], field: str = "participant", title: str | None = "participant") -> alt.Color:
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


# cost parts a run may not have at all (no projects, a risk-neutral objective): shown only when used
OPTIONAL_COSTS = tuple(k.summary_key for k in CostKind if k.optional)


def cost_chart(s: JSON, parts: list[str]) -> alt.Chart:
    names = {k: k.removesuffix("_usd").replace("_", " ") for k, v in s["costs"].items() if v or k not in OPTIONAL_COSTS}
    rows = [
        {"participant": p, "component": names[k], "usd": v}
        for p, c in (s.get("costs_by_participant") or {}).items()
        for k, v in c.items()
        if k in names
    ]
    return cast(
        alt.Chart,
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            y=alt.Y("component:N", sort=list(names.values()), title=None),
            x=alt.X("usd:Q", axis=usd_axis("expected cost"), stack="zero"),
            color=participant_color(parts),
            tooltip=["participant", "component", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=150, title="Expected cost by component and participant"),
    )


def holdings_chart(hold: pd.DataFrame, parts: list[str]) -> alt.FacetChart:
    df = hold.melt(
        id_vars=["participant", "mineral"], value_vars=["initial_t", "acquired_t"], var_name="part", value_name="tonnes"
    )
    df["part"] = df["part"].map({"initial_t": "initial stock", "acquired_t": "acquired"})
    return cast(
        alt.FacetChart,
        alt.Chart(df)
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("participant:N", title=None, sort=parts),
            y=alt.Y("tonnes:Q", title="tonnes", stack="zero"),
            color=participant_color(parts),
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
        .properties(title="Tonnes held: initial stock and acquisitions"),
    )


def damage_curve_frame(cfg: dict[str, Any], parts: list[str]) -> pd.DataFrame:
    """Each participant's damage curve of each mineral as steps: (depth from, depth to, USD/t)."""
    rows = []
    for m, mc in cfg["minerals"].items():
        curves = {p: curve(mc, p) for p in parts}
        shared = len(set(curves.values())) == 1  # one curve for all: drawn once
        for p in parts[:1] if shared else parts:
            lo = 0.0
            for j, (w, b) in enumerate(curves[p]):
                who = "all participants" if shared and len(parts) > 1 else p
                rows.append({"mineral": m, "participant": who, "segment": j + 1, "from": lo, "to": w, "usd_per_t": b})
                lo = w
    return pd.DataFrame(rows)


def damage_curves_chart(cfg: dict[str, Any], parts: list[str]) -> alt.FacetChart:
    """Damage per tonne unmet by the depth of the shortage, one step per segment (log scale)."""
    df = damage_curve_frame(cfg, parts)
    return cast(
        alt.FacetChart,
        alt.Chart(df)
        .mark_rule(strokeWidth=3)
        .encode(
            x=alt.X("from:Q", title="depth", axis=alt.Axis(format="%")),
            x2="to:Q",
            y=alt.Y("usd_per_t:Q", title="USD per tonne unmet", scale=alt.Scale(type="log")),
            color=participant_color([*parts, "all participants"]),
            tooltip=[
                "participant",
                "mineral",
                "segment",
                alt.Tooltip("from:Q", format=".0%"),
                alt.Tooltip("to:Q", format=".0%"),
                alt.Tooltip("usd_per_t:Q", format="$,.0f"),
            ],
        )
        .properties(width=150, height=110)
        .facet(facet=alt.Facet("mineral:N", title=None), columns=4)
        .resolve_scale(y="independent")
        .properties(title="Damage per tonne unmet, by the depth of the shortage"),
    )


def net_cost_chart(hold: pd.DataFrame, parts: list[str]) -> alt.LayerChart:
    """Per holding: what a tonne costs net over the horizon against what it saves in expectation;
    above the diagonal a tonne saves more than it costs."""
    df = hold[(hold.holding_t > 0) & (hold.expected_saving_usd_per_t > 0)].copy()
    values = pd.concat([df.net_cost_usd_per_t, df.expected_saving_usd_per_t])
    values = values[values > 0]
    top = float(values.max()) if len(values) else 10.0
    low = float(values.min()) if len(values) else 1.0
    axis = alt.Scale(type="log", domain=[low / 2, top * 2])
    points = (
        alt.Chart(df)
        .mark_point(filled=True, size=70)
        .encode(
            x=alt.X("net_cost_usd_per_t:Q", title="net cost of a tonne held (USD)", scale=axis),
            y=alt.Y("expected_saving_usd_per_t:Q", title="expected saving of a tonne held (USD)", scale=axis),
            color=participant_color(parts),
            shape=alt.Shape("mineral:N", legend=alt.Legend(orient="right")),
            tooltip=[
                "participant",
                "mineral",
                alt.Tooltip("holding_t:Q", format=",.1f"),
                alt.Tooltip("net_cost_usd_per_t:Q", format="$,.0f"),
                alt.Tooltip("expected_saving_usd_per_t:Q", format="$,.0f"),
            ],
        )
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"v": [low / 2, top * 2]}))
        .mark_line(color="#999", strokeDash=[4, 4])
        .encode(x="v:Q", y="v:Q")
    )
    return cast(
        alt.LayerChart,
        (diagonal + points).properties(
            width=WIDTH, height=320, title="Net cost of a tonne against what it saves (dashed: saving = cost)"
        ),
    )


def days_chart(hold: pd.DataFrame, parts: list[str]) -> alt.Chart:
    legend = alt.selection_point(fields=["participant"], bind="legend")
    return cast(
        alt.Chart,
        alt.Chart(hold.dropna(subset=["days_of_consumption"]))
        .mark_bar()
        .encode(
            x=alt.X("mineral:N", title=None),
            xOffset=alt.XOffset("participant:N", sort=parts),
            y=alt.Y("days_of_consumption:Q", title="days of consumption held"),
            color=participant_color(parts),
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
        .add_params(legend),
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
            color=participant_color(parts, "source", "stock of"),
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


def top_scenarios(cfg: JSON, names: Iterable[str]) -> list[str]:
    prob = {sc["name"]: sc["probability"] for sc in cfg["scenarios"]}
    return sorted(set(names), key=lambda n: (-prob.get(n, 0), n))[:MAX_SCENARIOS_SHOWN]


def coverage_heatmap(cov: pd.DataFrame, cfg: JSON, parts: list[str]) -> alt.FacetChart:
    shown = top_scenarios(cfg, cov.scenario)
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


def trajectory_chart(sched: pd.DataFrame, cfg: JSON) -> alt.FacetChart:
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
    return cast(
        alt.FacetChart,
        alt.layer(line, bars, data=long)
        .properties(width=280, height=130)
        .facet(
            row=alt.Row("panel:N", title=None, sort="descending"),
            column=alt.Column("participant:N", title=None, sort=list(cfg["participants"])),
        )
        .resolve_scale(y="independent")
        .add_params(pick)
        .properties(title=alt.TitleParams(text={"expr": "'Inventory and flows in ' + disruption_pick"})),
    )


SIDES: tuple[tuple[str, Literal["left", "right"], int], ...] = (("lends", "right", -14), ("borrows", "left", 14))


def lending_chart(flows: pd.DataFrame, cfg: JSON, parts: list[str]) -> alt.TopLevelMixin:
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
            color=participant_color(parts, "from", "lender"),
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
    dots = (
        alt.Chart(nodes).mark_circle(size=260).encode(x="x:Q", y=alt.Y("y:Q", scale=y), color=participant_color(parts))
    )
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


def measures_chart(m: JSON) -> alt.Chart:
    rows = [{"measure": k.removesuffix("_usd").upper(), "usd": m.get(k)} for k in MEASURES if m.get(k) is not None]
    return cast(
        alt.Chart,
        alt.Chart(pd.DataFrame(rows))
        .mark_bar(color="#6b6b6b")
        .encode(
            y=alt.Y("measure:N", sort=[k.removesuffix("_usd").upper() for k in MEASURES], title=None),
            x=alt.X("usd:Q", axis=usd_axis("expected cost")),
            tooltip=["measure", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=150, title="Stochastic-programming measures"),
    )


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
            f"{field_name(swept[0])} (shown):N",
            title=label[swept[0]],
            legend=alt.Legend(orient="top", titleLimit=600, labelLimit=300),
            sort=[fmt_value(swept[0], v) for v in sorted(df[swept[0]].dropna().unique())],
        )
        if swept
        else alt.value("#6b6b6b")
    )
    data = df.rename(columns={c: field_name(c) for c in df.columns})
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


def metric_name(col: str) -> str:
    return col.removesuffix("_usd").replace("_", " ") + (" (USD)" if col.endswith("_usd") else "")


def effect_chart(
    ok: pd.DataFrame, key: str, other: str | None, metrics: list[str], label: dict[str, str]
) -> alt.TopLevelMixin:
    """One metric (picked from every metric of study.csv) against a swept key."""
    keep = ok.dropna(subset=[key])
    long = keep.melt(
        id_vars=["case", key, *([other] if other else [])], value_vars=metrics, var_name="metric", value_name="value"
    )
    long["metric"] = long["metric"].map(metric_name)
    long["key_shown"] = [fmt_value(key, v) for v in long[key]]
    if other:
        long["other_shown"] = [fmt_value(other, v) for v in long[other]]
    long = long.rename(columns={key: "x"}).drop(columns=[other] if other else [])
    options = [metric_name(m) for m in metrics]
    pick = alt.param(
        name=f"metric_{slug(key)}", value=options[0], bind=alt.binding_select(options=options, name="metric ")
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
    return cast(
        alt.TopLevelMixin,
        alt.Chart(long)
        .transform_filter(alt.datum.metric == pick)
        .mark_line(point=True)
        .encode(**enc)
        .add_params(pick)
        .properties(
            width=WIDTH, height=240, title=alt.TitleParams(text={"expr": f"{pick.name} + ' against {label[key]}'"})
        ),
    )
