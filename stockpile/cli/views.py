"""What the terminal shows: rich tables of a result, a response, explain's steps and case sets,
and the progress line of a case runner.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from stockpile.cli.app import err_console
from stockpile.fmt import money as _money
from stockpile.jsontypes import JSON

if TYPE_CHECKING:  # the runner imports the API, the tables pandas: not at start-up
    from stockpile.analysis.explain import Measures
    from stockpile.analysis.runner import Case
    from stockpile.results.tables import Result


class CaseProgress:
    """Cases done, failed, running and ETA: a live bar on a terminal, log lines otherwise."""

    def __init__(self, total: int, label: str, workers: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total, self.done, self.failed, self.running = total, 0, 0, 0
        self.workers = workers  # cases queued beyond this wait: not running
        self.live = sys.stderr.isatty()
        self.console = err_console()
        self.bar = (
            Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]} · running {task.fields[running]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            if self.live
            else None
        )
        self.task = self.bar.add_task(label, total=total, failed=0, running=0) if self.bar else None

    @property
    def shown_running(self) -> int:
        """Cases a worker is solving: those submitted beyond the workers wait in the queue."""
        return min(self.running, self.workers)

    def __enter__(self) -> CaseProgress:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar:
            self.bar.stop()

    def __call__(self, event: str, name: str, summary: JSON | None) -> None:
        if event == "restart":
            self.console.print(f"a worker process died; restarting the pool for the {name} left")
            self.running = 0
            return
        if event == "submitted":
            self.running += 1
        elif event in ("done", "failed", "cached"):
            self.done += 1
            self.failed += event == "failed"
            self.running -= event != "cached"
        if self.bar and self.task is not None:
            self.bar.update(self.task, completed=self.done, failed=self.failed, running=self.shown_running)
        elif event != "submitted":
            status = (summary or {}).get("status", "error")
            objective = (summary or {}).get("objective_usd")
            extra = f" {_money(objective)}" if objective is not None else ""
            click.echo(
                f"[{self.done}/{self.total}] {name}: {'cached ' if event == 'cached' else ''}{status}{extra}", err=True
            )


def number(v: float) -> str:
    """3 significant figures, thousands separated, no exponent."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def show_explain(table: Any, measures: Measures) -> None:
    """Limits by what relaxing them saves, then the value of information and of the stochastic solution."""
    import pandas as pd
    from rich.console import Console

    console = Console()
    t = rich_table(
        "limits by what relaxing each by its step saves (* binds; delta < 0 saves; dual: $ per unit)",
        "limit",
        "who",
        "used/value",
        "dual",
        "step",
        "delta",
    )
    t.pad_edge = False

    def fig(kind: str, v: float) -> str:
        if v != v:
            return "-"
        if kind.endswith("_usd"):
            return _money(v, short=True)
        return f"{v:.0%}" if kind in ("release_rate_max", "reserve_floor", "lending_max_share") else number(v)

    order = table.assign(_d=table.delta_objective_usd.fillna(0.0)).sort_values("_d", kind="stable")
    for r in order.itertuples():
        t.add_row(
            r.limit,
            (r.arc or " ".join(x for x in (r.participant, r.mineral) if x))
            + ("" if "year" not in table or pd.isna(r.year) else f" y{int(r.year)}"),
            f"{fig(r.limit, r.used)}/{fig(r.limit, r.value)}{'*' if r.binds else ''}",
            "-" if r.dual_usd_per_unit != r.dual_usd_per_unit else _money(r.dual_usd_per_unit, short=True),
            fig(r.limit, r.step) if r.limit.endswith("_usd") or r.step != r.step else f"{r.step:+,.3g}",
            "-" if r.delta_objective_usd != r.delta_objective_usd else _money(r.delta_objective_usd, short=True),
        )
    console.print(t)
    m = measures
    console.print(
        f"RP {_money(m.rp_usd)} (this plan) · WS {_money(m.ws_usd)} (each scenario foreseen) · "
        f"EVPI {_money(m.evpi_usd)}",
        highlight=False,
    )
    if m.vss_usd is not None:
        console.print(
            f"EV {_money(m.ev_usd)} (planning for the average disruption) · EEV {_money(m.eev_usd)} "
            f"(that plan facing the real scenarios) · VSS {_money(m.vss_usd)}",
            highlight=False,
        )
    else:
        console.print(f"EV: {m.ev_status} ({'; '.join(m.ev_reasons or [])}); no VSS", highlight=False)


def show_cases(cases: list[Case], out_dir: Path, finished: Callable[[Path, Case], JSON | None]) -> None:
    from rich.console import Console
    from rich.table import Table

    from stockpile.api import sizes

    t = Table(title=f"{len(cases)} cases", title_justify="left")
    for col in ("case", "overrides", "scenarios", "variables", "constraints", "state"):
        t.add_column(col)
    for case in cases:
        found = sizes(case.config)
        t.add_row(
            case.name,
            ", ".join(f"{'.'.join(k.split('.')[-2:])}={v}" for k, v in case.overrides.items()) or "-",
            f"{found.counts['scenarios']:,}",
            f"{found.counts['variables']:,}" if found.has_model else "infeasible",
            f"{found.counts['constraints']:,}" if found.has_model else "-",
            "finished" if finished(out_dir, case) else "to solve",
        )
    Console().print(t)


def show_table(df: Any, cols: list[str], title: str, limit: int = 40) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in cols:
        t.add_column(
            ".".join(c.split(".")[-2:]),
            justify="right" if c not in ("case", "coalition", "participant", "status") else "left",
        )
    for _, row in df.head(limit).iterrows():
        cells = []
        for c in cols:
            v = row.get(c)
            if isinstance(v, float) and c.endswith("_usd"):
                cells.append(_money(v))
            elif isinstance(v, float) and c == "gap":
                cells.append(f"{v:.1e}")
            else:
                cells.append("-" if v is None or (isinstance(v, float) and v != v) else str(v))
        t.add_row(*cells)
    Console().print(t)
    if len(df) > limit:
        click.echo(f"... {len(df) - limit} more rows")


def show_response(s: JSON, orders: Any) -> None:
    """The period's orders as a minister would read them, then what they are worth."""
    from rich.console import Console

    console = Console()
    k = s["period"]
    t = rich_table(
        f"{s['config_name']}: orders for period {k} of {s['periods']}, tonnes (the same whatever follows)",
        "who",
        "mineral",
        "short",
        "release",
        "borrow",
        "lend",
        "unmet",
        "left",
    )
    arcs = [c for c in orders.columns if c.startswith("lent_t.")]

    def num(v: float) -> str:
        return f"{v:,.3g}" if v else "0"

    for row in orders.to_dict("records"):
        r = SimpleNamespace(**{k: v for k, v in row.items() if "." not in k})
        mine = [c for c in arcs if row[c] > 0 and c.split(".", 1)[1].startswith(f"{r.participant}->")]
        lends = ", ".join(f"{num(row[c])}→{c.split('->')[1]}" for c in mine)
        t.add_row(
            r.participant,
            r.mineral,
            num(r.shortfall_t),
            num(r.release_t),
            num(r.borrowed_t),
            lends or "0",
            num(r.unmet_t),
            num(r.inventory_after_t),
        )
    console.print(t)
    console.print(
        f"expected cost from period {k} on (unmet shortfall and lending fees): {_money(s['expected_cost_usd'])}; "
        f"each acting alone {_money(s['alone_expected_cost_usd'])}: coordinating saves "
        f"{_money(s['coordination_value_usd'])}. Knowing how long it lasts would save "
        f"{_money(s['value_of_knowing_duration_usd'])}.",
        highlight=False,
    )
    c = rich_table("how it may go on", "continuation", "probability", "cost", "unmet", "covered")
    for x in s["continuations"]:
        c.add_row(
            x["name"],
            f"{x['probability']:.2f}",
            _money(x["cost_usd"]),
            f"{x['unmet_t']:,.4g} t",
            f"{x['coverage_share']:.1%}",
        )
    console.print(c)


def show_result(result: Result, out_dir: Path) -> None:
    """Compact terminal view: status, cost per participant, holdings and coverage, each with its why."""
    from rich.console import Console

    console = Console()
    s = result.summary
    head = rich_table(f"{s.config_name}: {s.status}", show_header=False)
    if result.has_solution:
        head.add_row("total cost", _money(s.objective_usd))
        head.add_row("best bound", _money(s.best_bound_usd))
        head.add_row("gap", "-" if s.gap is None else f"{s.gap:.2e}")
    head.add_row(
        "solver",
        f"{s.solver} ({s.method or '-'}), build {s.build_seconds or 0:.2f} s, solve {s.solve_seconds or 0:.2f} s",
    )
    console.print(head)
    if not result.has_solution:
        console.print(f"results in {out_dir}/")
        return
    console.print(cost_table(s.to_dict(), result.lending_flows))
    h = result.holdings
    t = rich_table("holdings", "participant", "mineral", "tonnes", "acquired", "days", "why")
    for row in h[h.holding_t > 0].itertuples():
        days = "-" if row.days_of_consumption != row.days_of_consumption else f"{row.days_of_consumption:,.0f}"
        t.add_row(
            row.participant,
            row.mineral,
            f"{row.holding_t:,.1f}",
            f"{row.acquired_t:,.1f}",
            days,
            row.note.split(":")[0],
        )
    console.print(t)
    for row in h[h.holding_t <= 0].itertuples():
        console.print(f"  {row.participant} {row.mineral}: {row.note}", highlight=False)
    if "acquisitions.csv" in result.tables():
        show_buildup(console, result.acquisitions, result.limits)
    for row in result.offtake[result.offtake.offtake_t_per_year > 0].itertuples():
        console.print(
            f"  {row.participant} takes {row.offtake_t_per_year:,.0f} t/yr of {row.mineral} from {row.project} at its "
            f"floor price: subsidy {_money(row.subsidy_usd_per_year)} a year, {_money(row.cost_usd)} over the "
            f"horizon; it serves {row.expected_served_t:,.1f} t of shortfall in expectation",
            highlight=False,
        )
    ec = result.expected_coverage
    offtake = bool((result.offtake.offtake_t_per_year > 0).any())
    if not ec.empty:
        t = rich_table(
            "coverage given a disruption: expected days from own stock, borrowed"
            + (" and offtake" if offtake else "")
            + "; worst scenario's share",
            "participant",
            "mineral",
            "P(hit)",
            "disrupted",
            "own",
            "borrowed",
            *(["offtake"] if offtake else []),
            "share",
            "worst",
        )
        for row in ec.itertuples():
            t.add_row(
                row.participant,
                row.mineral,
                f"{row.disruption_probability:.2f}",
                f"{row.expected_disruption_days:,.1f}",
                f"{row.own_coverage_days:,.1f}",
                f"{row.borrowed_coverage_days:,.1f}",
                *([f"{row.offtake_coverage_days:,.1f}"] if offtake else []),
                f"{row.expected_coverage_share:.0%}",
                f"{row.worst_coverage_share:.0%}",
            )
        console.print(t)
        for row in ec[ec.borrowed_coverage_days > 0].itertuples():
            console.print(f"  {row.participant} {row.mineral}: {row.note}", highlight=False)
    console.print(f"results in {out_dir}/")


def show_buildup(console: Any, acq: Any, limits: Any) -> None:
    """A build-up over fiscal years: tonnes bought each year (days held at its end), in the order
    the minerals are first bought, with the expected saving per dollar that orders them; and each
    year's budget used against its appropriation."""
    from stockpile.results.tables import buildup_table

    table = buildup_table(acq)
    years = [c for c in table.columns if c.startswith("y") and c[1:].isdigit()]
    t = rich_table(
        "build-up: tonnes bought in each year/days held at its end, first bought first; saves/$: the "
        "holding's expected saving per dollar it cost",
        "participant",
        "mineral",
        *years,
        "saves/$",
    )
    for row in table.itertuples(index=False):
        r = row._asdict()
        t.add_row(r["participant"], r["mineral"], *(r[y] for y in years), f"{r['expected_saving_per_usd']:.2f}")
    console.print(t)
    budget = limits[limits.limit == "budget_usd"]
    if not budget.empty:
        t = rich_table(
            "budget used/appropriation each year (budget_carryover: spent so far/budgets so far)",
            "participant",
            *years,
        )
        for p, g in budget.groupby("participant", sort=False):
            used = {f"y{y}": (u, v) for y, u, v in zip(g.year, g.used, g.value)}
            t.add_row(p, *(f"{_money(used[y][0], short=True)}/{_money(used[y][1], short=True)}" for y in years))
        console.print(t)


def rich_table(title: str, *columns: str, show_header: bool = True) -> Any:
    """A compact rich table: text columns left, figures right."""
    from rich import box
    from rich.table import Table

    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,  # one space between columns: figures fit 80 characters uncut
        pad_edge=False,
        show_header=show_header,
    )
    for col in columns:
        left = col in ("participant", "mineral", "why", "limit", "who", "continuation", "scenario", "rule", "status")
        t.add_column(
            col, justify="left" if left else "right", no_wrap=col in ("limit", "who", "used/value", "dual", "delta")
        )
    return t


def cost_table(s: dict[str, Any], lending_flows: Any) -> Any:
    """Cost per participant: what each pays (its parts sum to the total) and the fees it receives."""
    from stockpile.results.tables import cost_rows

    kinds, rows = cost_rows(s, lending_flows)
    t = rich_table(
        f"cost per participant: {', '.join(k.caption for k in kinds)}; fees in: lending fees it receives",
        "party",
        *(k.head for k in kinds),
        "total",
        "fees in",
    )
    cells = [
        [_money(v, short=True) for v in (*(r.paid[k] for k in kinds), r.total_usd, r.fees_received_usd)] for r in rows
    ]
    for col, width in zip(t.columns[1:], (max(map(len, c), default=1) for c in zip(*cells, strict=True)), strict=False):
        col.min_width = width  # a figure is never cut short: the captions wrap instead
    for r, values in zip(rows, cells, strict=True):
        t.add_row(r.party, *values)
    return t
