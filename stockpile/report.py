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

import altair as alt
import pandas as pd
import yaml

from .config import for_participant
from .fmt import money as _money
from .outputs import atomic_write_text

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


def detect(folder: Path) -> str:
    """Which kind of output folder this is: solve, study or coalition."""
    if (folder / "coalitions.csv").exists():
        return "coalition"
    if (folder / "study.csv").exists():
        return "study"
    if (folder / "summary.json").exists() and (folder / "holdings.csv").exists():
        return "solve"
    raise FileNotFoundError(
        f"{folder} is not a solve, study or coalition output folder "
        "(no summary.json with holdings.csv, study.csv or coalitions.csv)"
    )


def build_report(folder: str | Path) -> Page:
    folder = Path(folder)
    kind = detect(folder)
    return {"solve": solve_page, "study": study_page, "coalition": coalition_page}[kind](folder)


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


def _df_table(df: pd.DataFrame, sortable: bool = False, money_cols: tuple = ()) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            if c in money_cols:
                text, key = _money(v), v
            elif isinstance(v, float):
                text, key = ("–" if v != v else f"{v:,.4g}"), v
            else:
                text, key = html.escape(str(v)), str(v)
            cells.append(f'<td data-key="{html.escape(str(key))}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cls = "data sortable" if sortable else "data"
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def solve_page(folder: Path) -> Page:
    s = json.loads((folder / "summary.json").read_text())
    cfg = yaml.safe_load((folder / "config.resolved.yaml").read_text())
    hold = pd.read_csv(folder / "holdings.csv")
    cov = pd.read_csv(folder / "coverage.csv")
    sched = pd.read_csv(folder / "schedule.csv")
    created = datetime.fromtimestamp((folder / "summary.json").stat().st_mtime, tz=UTC)
    page = Page(f"stockpile · {s['config_name']}", "solve")
    costs = s.get("costs") or {}
    gap = s.get("gap")
    page.header = _kv_table(
        [
            ("status", f"<b>{html.escape(s['status'])}</b>"),
            ("total expected cost", f"<b>{_money(s.get('objective_usd'))}</b>"),
            *[(k.removesuffix("_usd").replace("_", " "), _money(v)) for k, v in costs.items()],
            ("best bound", _money(s.get("best_bound_usd"))),
            ("gap", "–" if gap is None else f"{gap:.2e}"),
            ("solver", html.escape(f"{s.get('solver')} ({s.get('method', '–')}), {s.get('solver_version', '')}")),
            ("date", created.strftime("%Y-%m-%d %H:%M UTC")),
            ("config", html.escape(f"{s['config_name']} · hash {s['config_hash']}")),
            ("overrides", html.escape(", ".join(f"{k}={v}" for k, v in s.get("overrides", [])) or "none")),
        ]
    )
    if s["status"] not in ("optimal", "feasible"):
        page.add("No plan", "; ".join(s.get("reasons", [])) or s["status"])
        return page
    page.add(
        "Holdings",
        "Tonnes held per participant and mineral (initial stock and acquisitions), "
        "and how many days of each participant's consumption they cover.",
        holdings_chart(hold),
        days_chart(hold),
    )
    page.add(
        "Coverage of disruptions",
        "Share of each disrupted shortfall covered by own release and "
        "borrowing, per scenario and mineral; the label is coverage-days.",
        coverage_heatmap(cov, cfg),
    )
    page.add(
        "Inventory and releases",
        "End-of-period inventory and what left or arrived each period in the "
        "disruptive scenarios; pick a disruption (scenario and mineral).",
        trajectory_chart(sched, cfg),
    )
    page.add("Cost breakdown", "Expected total cost by component.", cost_chart(costs))
    page.add(
        "Limits at the optimum",
        "Each limit of the config and whether it binds (within 1e-6).",
        _df_table(binding_limits(cfg, hold, sched, s)),
    )
    return page


def holdings_chart(hold: pd.DataFrame) -> alt.Chart:
    df = hold.melt(
        id_vars=["participant", "mineral"], value_vars=["initial_t", "acquired_t"], var_name="part", value_name="tonnes"
    )
    df["part"] = df["part"].map({"initial_t": "initial stock", "acquired_t": "acquired"})
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("participant:N", title=None),
            y=alt.Y("tonnes:Q", title="tonnes", stack="zero"),
            color=alt.Color("part:N", title=None, legend=alt.Legend(orient="top")),
            tooltip=["participant", "mineral", "part", alt.Tooltip("tonnes:Q", format=",.1f")],
        )
        .properties(width=90, height=160)
        .facet(
            facet=alt.Facet("mineral:N", title=None),
            columns=4,
        )
        .resolve_scale(y="independent")
        .add_params(alt.selection_point(fields=["part"], bind="legend"))
    )


def days_chart(hold: pd.DataFrame) -> alt.Chart:
    legend = alt.selection_point(fields=["participant"], bind="legend")
    return (
        alt.Chart(hold.dropna(subset=["days_of_consumption"]))
        .mark_bar()
        .encode(
            x=alt.X("mineral:N", title=None),
            xOffset="participant:N",
            y=alt.Y("days_of_consumption:Q", title="days of consumption held"),
            color=alt.Color("participant:N", legend=alt.Legend(orient="top")),
            opacity=alt.condition(legend, alt.value(1.0), alt.value(0.2)),
            tooltip=[
                "participant",
                "mineral",
                alt.Tooltip("holding_t:Q", format=",.1f", title="tonnes"),
                alt.Tooltip("days_of_consumption:Q", format=",.0f", title="days"),
            ],
        )
        .properties(width=WIDTH, height=220)
        .add_params(legend)
    )


def _top_scenarios(cfg: dict, names) -> list[str]:
    prob = {sc["name"]: sc["probability"] for sc in cfg["scenarios"]}
    return sorted(set(names), key=lambda n: -prob.get(n, 0))[:MAX_SCENARIOS_SHOWN]


def coverage_heatmap(cov: pd.DataFrame, cfg: dict) -> alt.FacetChart:
    df = cov[cov.scenario.isin(_top_scenarios(cfg, cov.scenario))]
    base = alt.Chart(df).encode(
        x=alt.X("scenario:N", title=None, axis=alt.Axis(labelAngle=-35, labelLimit=160)),
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
            alt.Tooltip("disruption_days:Q", format=",.0f"),
            alt.Tooltip("unmet_t:Q", format=",.1f"),
        ],
    )
    text = base.mark_text(fontSize=10).encode(text=alt.Text("coverage_days:Q", format=".0f"))
    return (
        alt.layer(cells, text, data=df)
        .properties(width=max(160, 60 * df.scenario.nunique()), height=180)
        .facet(row=alt.Row("participant:N", title=None))
    )


def trajectory_chart(sched: pd.DataFrame, cfg: dict) -> alt.Chart:
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
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top")),
            tooltip=tooltip,
        )
    )
    line = (
        base.transform_filter(alt.datum.series == "inventory")
        .mark_line(point=True, color="black")
        .encode(x=alt.X("period:O"), y=alt.Y("tonnes:Q", title=None), tooltip=tooltip)
    )
    return (
        alt.layer(line, bars, data=long)
        .properties(width=280, height=140)
        .facet(
            row=alt.Row("panel:N", title=None, sort="descending"),
            column=alt.Column("participant:N", title=None),
        )
        .resolve_scale(y="independent")
        .add_params(pick)
    )


def cost_chart(costs: dict) -> alt.Chart:
    df = pd.DataFrame(
        {"component": [k.removesuffix("_usd").replace("_", " ") for k in costs], "usd": list(costs.values())}
    )
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("component:N", sort="-x", title=None),
            x=alt.X("usd:Q", title="USD", axis=alt.Axis(format="~s")),
            color=alt.Color("component:N", legend=None),
            tooltip=["component", alt.Tooltip("usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=150)
    )


def binding_limits(cfg: dict, hold: pd.DataFrame, sched: pd.DataFrame, summary: dict) -> pd.DataFrame:
    """Every limit the config sets, its value at the optimum, and whether it binds."""
    rows = []
    tol = 1e-6

    def add(who, limit, value, at, binds):
        rows.append(
            {
                "participant": who,
                "limit": limit,
                "limit value": value,
                "at optimum": at,
                "binds": "yes" if binds else "",
            }
        )

    by_p = summary.get("costs_by_participant", {})
    for p, lim in cfg["participants"].items():
        h = hold[hold.participant == p]
        spend = by_p.get(p, {}).get("acquisition_usd", 0.0) + by_p.get(p, {}).get("fixed_usd", 0.0)
        if lim.get("budget_usd") is not None:
            b = lim["budget_usd"]
            add(p, "budget_usd", _money(b), _money(spend), spend >= b * (1 - tol) - 1)
        if lim.get("storage_capacity_t") is not None:
            cap = lim["storage_capacity_t"]
            add(
                p,
                "storage_capacity_t",
                f"{cap:,.0f} t",
                f"{h.holding_t.sum():,.0f} t",
                h.holding_t.sum() >= cap * (1 - tol),
            )
        for r in h.itertuples():
            mc = cfg["minerals"][r.mineral]
            days = for_participant(mc["min_days"], p, 0.0)
            need = days * for_participant(mc["consumption_t_per_year"], p, 0.0) / 365
            if need > 0:
                add(
                    p,
                    f"min_days {r.mineral}",
                    f"{days:g} days",
                    f"{r.days_of_consumption:,.0f} days",
                    r.holding_t - mc["lot_t"] < need,
                )
            cap = for_participant(mc.get("max_acquisition_t"), p, None)
            if cap is not None:
                add(
                    p,
                    f"max_acquisition_t {r.mineral}",
                    f"{cap:,.0f} t",
                    f"{r.acquired_t:,.0f} t",
                    r.acquired_t + mc["lot_t"] > cap,
                )
        s = sched[sched.participant == p].merge(h[["mineral", "holding_t"]], on="mineral")
        out = s.release_t + s.lent_t
        if lim["release_rate_max"] < 1 and len(s):
            hit = (out >= lim["release_rate_max"] * s.holding_t * (1 - tol)) & (out > 0)
            add(
                p,
                "release_rate_max",
                f"{lim['release_rate_max']:.0%} per period",
                f"at the cap in {int(hit.sum())} scenario-periods",
                bool(hit.any()),
            )
        if lim["reserve_floor"] > 0 and len(s):
            hit = (s.inventory_t <= lim["reserve_floor"] * s.holding_t * (1 + tol)) & (s.holding_t > 0)
            add(
                p,
                "reserve_floor",
                f"{lim['reserve_floor']:.0%} of holding",
                f"reached in {int(hit.sum())} scenario-periods",
                bool(hit.any()),
            )
    return pd.DataFrame(rows, columns=["participant", "limit", "limit value", "at optimum", "binds"])


# ----------------------------------------------------------------------------
# Studies


def _field(column: str) -> str:
    """Vega-Lite reads dots in a field name as nested access: chart columns use '/' instead."""
    return column.replace(".", "/")


def study_page(folder: Path) -> Page:
    df = pd.read_csv(folder / "study.csv")
    df.columns = [_field(c) for c in df.columns]
    page = Page(f"stockpile study · {folder.name}", "study")
    swept = [c for c in df.columns if "/" in c and not c.startswith(("holding_t/", "coverage_days/"))]
    ok = df[df.status.isin(["optimal", "feasible"])]
    page.header = _kv_table(
        [
            ("cases", f"{len(df)}"),
            ("solved", f"{len(ok)}"),
            ("swept keys", html.escape(", ".join(swept) or "none")),
            ("lowest expected cost", _money(ok.objective_usd.min() if len(ok) else None)),
        ]
    )
    cov_cols = [c for c in df.columns if c.startswith("coverage_days/")]
    if swept and len(ok):
        key = swept[0]
        frame = ok.dropna(subset=[key]).copy()
        frame["mean coverage-days"] = frame[cov_cols].mean(axis=1) if cov_cols else 0.0
        other = swept[1] if len(swept) > 1 else None
        page.add(
            "Frontier",
            f"Expected total cost and mean coverage-days against {key}"
            + (f", one line per {other}" if other else "")
            + ".",
            frontier_chart(frame, key, other, "objective_usd", "expected total cost (USD)"),
            frontier_chart(frame, key, other, "mean coverage-days", "mean coverage-days given a disruption"),
        )
        for k in swept:
            page.add(
                f"Effect of {k}",
                "Each point is a case; the line joins the mean over the other keys.",
                small_multiples(ok.dropna(subset=[k]), k, cov_cols),
            )
    cols = ["case", *swept, "status", "objective_usd", "gap", "solve_seconds"]
    page.add(
        "Cases",
        "Click a column header to sort.",
        _df_table(df[[c for c in cols if c in df.columns]], sortable=True, money_cols=("objective_usd",)),
    )
    return page


def frontier_chart(df: pd.DataFrame, key: str, other: str | None, value: str, title: str) -> alt.Chart:
    enc = {
        "x": alt.X(f"{key}:Q", title=key, axis=alt.Axis(format="~s")),
        "y": alt.Y(f"{value}:Q", title=title, axis=alt.Axis(format="~s"), scale=alt.Scale(zero=False)),
        "tooltip": ["case", alt.Tooltip(f"{key}:Q", format=",.4~g"), alt.Tooltip(f"{value}:Q", format=",.4~g")],
    }
    chart = alt.Chart(df).mark_line(point=True)
    if other:
        legend = alt.selection_point(fields=[other], bind="legend")
        enc["color"] = alt.Color(f"{other}:N", title=other, legend=alt.Legend(orient="top"))
        enc["opacity"] = alt.condition(legend, alt.value(1.0), alt.value(0.15))
        return chart.encode(**enc).properties(width=WIDTH, height=220).add_params(legend)
    return chart.encode(**enc).properties(width=WIDTH, height=220)


def small_multiples(df: pd.DataFrame, key: str, cov_cols: list[str]) -> alt.Chart:
    long = df.melt(
        id_vars=["case", key], value_vars=["objective_usd", *cov_cols[:8]], var_name="measure", value_name="value"
    )
    base = alt.Chart(long).encode(x=alt.X(f"{key}:Q", title=key, axis=alt.Axis(format="~s")))
    pts = base.mark_point().encode(
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format="~s"), scale=alt.Scale(zero=False)),
        tooltip=["case", "measure", alt.Tooltip("value:Q", format=",.4~g")],
    )
    line = base.mark_line().encode(y="mean(value):Q")
    return (
        alt.layer(pts, line)
        .properties(width=180, height=120)
        .facet(facet=alt.Facet("measure:N", title=None), columns=4)
        .resolve_scale(y="independent")
    )


# ----------------------------------------------------------------------------
# Coalitions


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
        ]
    )
    page.add(
        "Cost per coalition",
        "Optimal expected cost of each coalition solving on its own.",
        alt.Chart(coal)
        .mark_bar()
        .encode(
            x=alt.X("coalition:N", sort=None, title=None),
            y=alt.Y("objective_usd:Q", title="USD", axis=alt.Axis(format="~s")),
            color=alt.Color("size:O", title="members", legend=alt.Legend(orient="top")),
            tooltip=["coalition", "status", alt.Tooltip("objective_usd:Q", format="$,.0f")],
        )
        .properties(width=WIDTH, height=220),
    )
    if len(shares):
        df = shares.melt(
            id_vars=["participant"],
            value_vars=["standalone_usd", "shapley_usd", "spending_usd"],
            var_name="measure",
            value_name="usd",
        )
        df["measure"] = df["measure"].map(
            {"standalone_usd": "alone", "shapley_usd": "Shapley share", "spending_usd": "actual spending together"}
        )
        legend = alt.selection_point(fields=["measure"], bind="legend")
        page.add(
            "Cost shares",
            "What each partner would pay alone, its Shapley share of the joint cost, "
            "and what it actually spends in the joint plan.",
            alt.Chart(df)
            .mark_bar()
            .encode(
                x=alt.X("participant:N", title=None),
                xOffset="measure:N",
                y=alt.Y("usd:Q", title="USD", axis=alt.Axis(format="~s")),
                color=alt.Color("measure:N", title=None, legend=alt.Legend(orient="top")),
                opacity=alt.condition(legend, alt.value(1.0), alt.value(0.2)),
                tooltip=["participant", "measure", alt.Tooltip("usd:Q", format="$,.0f")],
            )
            .properties(width=WIDTH, height=240)
            .add_params(legend),
            _df_table(shares, money_cols=("standalone_usd", "shapley_usd", "spending_usd")),
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
table.data th{background:#f6f8fa} table.sortable th{cursor:pointer}
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
