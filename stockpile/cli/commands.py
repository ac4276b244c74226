"""The command line: a thin layer over the Python API.

Exit codes: 0 a plan was found (optimal or feasible at a limit); 2 the config or
an option is wrong; 3 the config's limits admit no plan; 4 no plan within the
solver's time limit; 5 the output cannot be written; 1 an internal error (a bug:
``--debug`` shows its traceback); 130 interrupted.

Each command imports what it needs when it runs, so ``stockpile --help`` starts fast.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from contextlib import nullcontext
from functools import wraps
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from stockpile.enums import Method, SolverName, has_plan, values
from stockpile.errors import ConfigError, InfeasibleConfig, NoSolution, OptionError
from stockpile.fmt import money as _money
from stockpile.version import __version__

EXIT_INTERNAL, EXIT_CONFIG, EXIT_INFEASIBLE, EXIT_NO_SOLUTION, EXIT_OUTPUT, EXIT_INTERRUPTED = 1, 2, 3, 4, 5, 130

log = logging.getLogger(__name__)
_debug = False  # --debug: tracebacks instead of one-line messages


def _err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


class UserError(click.ClickException):
    """A mistake the user can fix: one clear message, a non-zero exit, no traceback."""

    def __init__(self, message: str, code: int = EXIT_CONFIG):
        super().__init__(message)
        # click 8.5 types exit_code as a class variable; this instance's code shadows it
        object.__setattr__(self, "exit_code", code)

    def show(self, file: Any = None) -> None:
        from rich.markup import escape

        _err_console().print(f"[bold red]error:[/] {escape(self.message)}", markup=True, soft_wrap=True)


def user_errors(fn: Callable) -> Callable:
    """Turn the API's user-facing exceptions into clean messages and exit codes; anything else is a
    bug, reported in one line (with the traceback under --debug)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UserError, click.exceptions.Exit, click.exceptions.Abort, click.UsageError):
            raise
        except ConfigError as exc:
            lines = str(exc).splitlines()
            if len(lines) > 1:
                lines = [f"{len(lines)} problems in the config:"] + [f"  {line}" for line in lines]
            raise UserError("\n".join(lines)) from None
        except OptionError as exc:
            raise UserError(str(exc)) from None
        except NoSolution as exc:
            raise UserError(str(exc), EXIT_NO_SOLUTION) from None
        except InfeasibleConfig as exc:
            raise UserError(
                "the config's limits admit no plan:\n  " + "\n  ".join(exc.reasons), EXIT_INFEASIBLE
            ) from None
        except OSError as exc:
            if _debug:
                raise
            what = exc.strerror or str(exc)
            where = f" {exc.filename}" if exc.filename else ""
            raise UserError(f"cannot write the output{where}: {what}", EXIT_OUTPUT) from None
        except KeyboardInterrupt:
            raise UserError("interrupted", EXIT_INTERRUPTED) from None
        except Exception as exc:
            if _debug:
                raise
            log.debug("internal error", exc_info=True)
            raise UserError(
                f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", EXIT_INTERNAL
            ) from None

    return wrapper


def _overrides(sets: tuple[str, ...], **flags: Any) -> list[tuple[str, Any]]:
    """--set overrides in order, then the dedicated flags (highest precedence)."""
    from stockpile.config import parse_set_option

    out = [parse_set_option(s) for s in sets]
    keys = {
        "solver": "solver.name",
        "method": "solver.method",
        "time_limit": "solver.time_limit_s",
        "gap": "solver.relative_gap",
        "threads": "solver.threads",
    }
    out += [(keys[k], v) for k, v in flags.items() if v is not None]
    return out


def _load(config: str, overrides: list[tuple[str, Any]]) -> Any:
    from stockpile.config import load_config

    return load_config(config, overrides)


def solver_options(fn: Callable) -> Callable:
    for opt in reversed(
        [
            click.option("--solver", type=click.Choice(values(SolverName)), help="MIP solver (solver.name)."),
            click.option("--method", type=click.Choice(values(Method)), help="Solution method (solver.method)."),
            click.option(
                "--time-limit", type=click.FloatRange(min=0, min_open=True), help="Seconds (solver.time_limit_s)."
            ),
            click.option("--gap", type=click.FloatRange(0, 1), help="Relative gap (solver.relative_gap)."),
            click.option("--threads", type=click.IntRange(1, 256), help="Threads (solver.threads)."),
            click.option(
                "--set",
                "sets",
                multiple=True,
                metavar="KEY=VALUE",
                help="Dotted override, repeatable: --set participants.US.budget_usd=2e9",
            ),
        ]
    ):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stockpile")
@click.option("-v", "--verbose", is_flag=True, help="Log each stage (sizes, method, iterations) to stderr.")
@click.option("--debug", is_flag=True, help="Log everything, and show the traceback of any error.")
def cli(verbose: bool, debug: bool) -> None:
    """stockpile: how much of each critical mineral allies should hold, release and lend."""
    global _debug
    _debug = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default runs/<name>).")
@solver_options
@click.option(
    "--export-model",
    type=click.Path(dir_okay=False),
    help="Write the model as MPS (or LP for *.lp) and stop without solving.",
)
@click.option("--quiet", is_flag=True, help="Print only the output folder.")
@click.option("--report", "with_report", is_flag=True, help="Also write report.html into the output folder.")
@click.option(
    "--explain",
    "with_explain",
    is_flag=True,
    help="Also run `stockpile explain` on the run (limits.csv, explain.json).",
)
@user_errors
def solve(
    config: str,
    out: str | None,
    sets: tuple[str, ...],
    export_model: str | None,
    quiet: bool,
    with_report: bool,
    with_explain: bool,
    **flags: Any,
) -> None:
    """Solve CONFIG and write summary.json, holdings, schedule and coverage CSVs."""
    from stockpile.api import export_model as export
    from stockpile.api import solve as run

    cfg = _load(config, _overrides(sets, **flags))
    if export_model:
        path = export(cfg, export_model)
        click.echo(f"model written to {path} (not solved)")
        return
    out_dir = Path(out) if out else Path("runs") / cfg.name
    live = not quiet and sys.stderr.isatty()
    with _err_console().status(f"solving {cfg.name}...", spinner="dots") if live else nullcontext() as status:

        def progress(phase: str, best: float, bound: float) -> None:
            gap = (best - bound) / max(abs(best), 1.0) if bound > -float("inf") else None
            text = f"solving {cfg.name}: {phase}, best plan {_money(best)}" + (
                f", bound {_money(bound)}, gap {gap:.1e}" if gap is not None else ""
            )
            if status is not None:
                status.update(text)

        result = run(cfg, progress if live else None)
    result.write(out_dir)
    if quiet:
        click.echo(str(out_dir))
    elif result.has_solution:
        show_result(result, out_dir)
    if with_explain and result.has_solution:
        _explain(out_dir, (), None, None, quiet)
    if with_report:
        from stockpile.report.pages import write_report

        click.echo(f"report: {write_report(out_dir)}")
    if not result.has_solution:
        reasons = result.summary.get("reasons") or [result.status]
        code = EXIT_INFEASIBLE if result.status == "infeasible" else EXIT_NO_SOLUTION
        lead = "the config's limits admit no plan" if result.status == "infeasible" else "no plan found"
        raise UserError(f"{lead}:\n  " + "\n  ".join(reasons), code)


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Dotted override, repeatable.")
@user_errors
def validate(config: str, sets: tuple[str, ...]) -> None:
    """Check CONFIG and print its size without solving."""
    from rich.console import Console
    from rich.table import Table

    from stockpile.model.core import build_model
    from stockpile.model.instance import build_instance, check_feasible

    cfg = _load(config, _overrides(sets))
    inst = build_instance(cfg)
    reasons = check_feasible(inst)
    sizes = dict(inst.sizes)
    if not reasons:
        sizes.update(build_model(inst).sizes)
    verdict = "valid" if not reasons else "valid, but its limits admit no plan"
    table = Table(title=f"{cfg.name}: {verdict}", show_header=False, title_justify="left")
    for k, v in sizes.items():
        table.add_row(k, f"{v:,}")
    Console().print(table)
    if reasons:
        raise InfeasibleConfig(reasons)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@user_errors
def check(run_dir: str) -> None:
    """Verify a run (or respond) folder's outputs against every rule of the model, independently."""
    from stockpile.analysis.respond import RESPONSE_FILES
    from stockpile.results.check import check_response, check_run
    from stockpile.results.outputs import OPTIONAL_FILES, RUN_FILES
    from stockpile.results.runs import STATE_FILE

    path = Path(run_dir)
    response = (path / STATE_FILE).is_file()
    needed = RESPONSE_FILES if response else [f for f in RUN_FILES if f not in OPTIONAL_FILES]
    missing = [f for f in needed if not (path / f).is_file()]
    if missing:
        raise UserError(f"{run_dir}: not a finished run folder (missing {', '.join(missing)})")
    problems = check_response(path) if response else check_run(path)
    for v in problems[:200]:
        click.echo(str(v))
    if problems:
        raise UserError(f"{len(problems)} violated rule(s) in {run_dir}", 1)
    click.echo(f"{run_dir}: every rule holds")


class CaseProgress:
    """Cases done, failed, running and ETA: a live bar on a terminal, log lines otherwise."""

    def __init__(self, total: int, label: str, workers: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total, self.done, self.failed, self.running = total, 0, 0, 0
        self.workers = workers  # cases queued beyond this wait: not running
        self.live = sys.stderr.isatty()
        self.console = _err_console()
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

    def __call__(self, event: str, name: str, summary: dict | None) -> None:
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


def _interrupted(out_dir: Path, total: int) -> UserError:
    done = sum(1 for p in (out_dir / "cases").glob("*/summary.json"))
    return UserError(
        f"interrupted: {done} of {total} cases are finished and kept in {out_dir}; "
        "run the same command again to complete the rest",
        130,
    )


def runner_options(default_out: str) -> Callable:
    """Options shared by the commands that solve many cases."""

    def wrap(fn: Callable) -> Callable:
        for opt in reversed(
            [
                click.option("--out", type=click.Path(file_okay=False), help=f"Output folder (default {default_out})."),
                click.option("--workers", type=click.IntRange(1, 4096), help="Parallel solves (default: every core)."),
                click.option("--scheduler", metavar="ADDRESS", help="Run on Dask: 'local' or tcp://host:8786."),
                click.option(
                    "--set",
                    "sets",
                    multiple=True,
                    metavar="KEY=VALUE",
                    help="Dotted override applied to every case, repeatable.",
                ),
            ]
        ):
            fn = opt(fn)
        return fn

    return wrap


@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False))
@runner_options("runs/<study name>")
@click.option("--dry-run", is_flag=True, help="List the cases and their sizes; solve nothing.")
@user_errors
def study(
    study_file: str, out: str | None, workers: int | None, scheduler: str | None, sets: tuple[str, ...], dry_run: bool
) -> None:
    """Solve every case of a what-if study in parallel; resumable."""
    from stockpile.analysis.runner import finished_summary, resolve_workers
    from stockpile.analysis.study import load_study, run_study

    cases = load_study(study_file, _overrides(sets))
    out_dir = Path(out) if out else Path("runs") / Path(study_file).stem
    if dry_run:
        _show_cases(cases, out_dir, finished_summary)
        return
    try:
        with CaseProgress(len(cases), Path(study_file).stem, resolve_workers(workers)) as progress:
            df = run_study(cases, out_dir, workers, scheduler, progress)
    except KeyboardInterrupt:
        raise _interrupted(out_dir, len(cases)) from None
    _show_table(
        df,
        [
            "case",
            *[c for c in df.columns if "." in c and not c.startswith(("holding_t.", "coverage_days."))],
            "status",
            "objective_usd",
            "gap",
        ],
        "study",
    )
    click.echo(f"study.csv and {len(cases)} case folders in {out_dir}/")
    failed = df[df.status == "error"]
    if len(failed):
        raise UserError(f"{len(failed)} case(s) failed: {', '.join(failed.case)}", 1)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--workers", type=click.IntRange(1, 4096), help="Parallel solves (default: every core).")
@click.option("--scheduler", metavar="ADDRESS", help="Run on Dask: 'local' or tcp://host:8786.")
@click.option(
    "--step",
    "steps",
    multiple=True,
    metavar="KIND=VALUE",
    help="Relaxing step of a limit kind, in its unit or as a share with %% (budget_usd=20%%); repeatable.",
)
@user_errors
def explain(run_dir: str, workers: int | None, scheduler: str | None, steps: tuple[str, ...]) -> None:
    """What each limit of a run is worth and what planning for uncertainty is worth: limits.csv, explain.json."""
    _explain(Path(run_dir), steps, workers, scheduler)


def _explain(
    run_dir: Path, steps: tuple[str, ...], workers: int | None, scheduler: str | None, quiet: bool = False
) -> None:
    from stockpile.analysis.explain import EXPLAIN_DIR, explain_cases_count, explain_run, parse_steps
    from stockpile.analysis.runner import resolve_workers

    parsed = parse_steps(steps)
    if quiet:
        explain_run(run_dir, parsed, workers, scheduler)
        return
    total = explain_cases_count(run_dir, parsed)
    try:
        with CaseProgress(total, "explain", resolve_workers(workers)) as progress:
            table, measures = explain_run(run_dir, parsed, workers, scheduler, progress)
    except KeyboardInterrupt:
        raise _interrupted(run_dir / EXPLAIN_DIR, total) from None
    show_explain(table, measures)
    click.echo(f"limits.csv and explain.json in {run_dir}/ (re-solves in {run_dir / EXPLAIN_DIR}/)")


def _num(v: float) -> str:
    """3 significant figures, thousands separated, no exponent."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def show_explain(table: Any, measures: dict) -> None:
    """Limits by what relaxing them saves, then the value of information and of the stochastic solution."""
    import pandas as pd
    from rich.console import Console

    console = Console()
    t = _table(
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
        return f"{v:.0%}" if kind in ("release_rate_max", "reserve_floor", "lending_max_share") else _num(v)

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
        f"RP {_money(m['rp_usd'])} (this plan) · WS {_money(m['ws_usd'])} (each scenario foreseen) · "
        f"EVPI {_money(m['evpi_usd'])}",
        highlight=False,
    )
    if m.get("vss_usd") is not None:
        console.print(
            f"EV {_money(m['ev_usd'])} (planning for the average disruption) · EEV {_money(m['eev_usd'])} "
            f"(that plan facing the real scenarios) · VSS {_money(m['vss_usd'])}",
            highlight=False,
        )
    else:
        console.print(f"EV: {m.get('ev_status')} ({'; '.join(m.get('ev_reasons', []))}); no VSS", highlight=False)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("scenarios_file", required=False, type=click.Path(dir_okay=False))
@click.option("--sample", type=click.IntRange(1, 10_000_000), help="Draw N scenarios from the run's events instead.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of --sample.")
@click.option("--workers", type=click.IntRange(1, 4096), help="Parallel chunks (default: every core).")
@click.option("--scheduler", metavar="ADDRESS", help="Run on Dask: 'local' or tcp://host:8786.")
@user_errors
def evaluate(
    run_dir: str, scenarios_file: str | None, sample: int | None, seed: int, workers: int | None, scheduler: str | None
) -> None:
    """Hold a run's holdings fixed and re-optimise the recourse of other scenarios: evaluation.csv, .json."""
    from stockpile.analysis.evaluate import evaluate_run

    live = sys.stderr.isatty()
    with _err_console().status("evaluating...", spinner="dots") if live else nullcontext() as status:

        def progress(done: int, total: int) -> None:
            if status is not None:
                status.update(f"evaluating: {done} of {total} chunks")

        _, m = evaluate_run(
            run_dir, scenarios_file, None if sample is None else (sample, seed), workers, scheduler, progress
        )
    t = _table(f"{run_dir}: the plan on {m['count']:,} scenarios ({m['scenarios']})", show_header=False)
    t.add_row("first stage (buy, hold)", _money(m["first_stage_usd"]))
    t.add_row("expected recourse", f"{_money(m['mean_recourse_usd'])} (std {_money(m['std_recourse_usd'])})")
    t.add_row(
        "expected total cost",
        f"{_money(m['expected_total_usd'])} (95% CI {_money(m['ci95_low_usd'])} to {_money(m['ci95_high_usd'])})",
    )
    t.add_row(
        f"VaR / CVaR of recourse at {m['cvar_alpha']:g}",
        f"{_money(m['var_recourse_usd'])} / {_money(m['cvar_recourse_usd'])}",
    )
    from rich.console import Console

    Console().print(t)
    click.echo(f"evaluation.csv and evaluation.json in {run_dir}/")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--sample", "count", type=click.IntRange(1, 1_000_000), required=True, help="Scenarios per replication N."
)
@click.option("--replications", type=click.IntRange(2, 10_000), required=True, help="Independent samples R.")
@click.option(
    "--evaluate",
    "evaluate_count",
    type=click.IntRange(1, 10_000_000),
    required=True,
    help="Fresh scenarios M to evaluate each candidate plan on.",
)
@click.option("--seed", type=click.IntRange(0, 2**62), default=0, show_default=True)
@runner_options("runs/<name>-saa")
@user_errors
def saa(
    config: str,
    count: int,
    replications: int,
    evaluate_count: int,
    seed: int,
    out: str | None,
    workers: int | None,
    scheduler: str | None,
    sets: tuple[str, ...],
) -> None:
    """Sample-average approximation: statistical lower and upper bounds and the gap of the best plan."""
    from stockpile.analysis.runner import resolve_workers
    from stockpile.analysis.saa import run_saa

    cfg = _load(config, _overrides(sets))
    out_dir = Path(out) if out else Path("runs") / f"{cfg.name}-saa"
    try:
        with CaseProgress(replications, "replications", resolve_workers(workers)) as progress:
            head = run_saa(cfg, out_dir, count, replications, evaluate_count, seed, workers, scheduler, progress)
    except KeyboardInterrupt:
        raise _interrupted(out_dir, replications) from None
    t = _table(
        f"{cfg.name}: SAA, {replications} x {count} scenarios, plans evaluated on {evaluate_count:,}", show_header=False
    )
    t.add_row(
        "lower bound (mean of optima)",
        f"{_money(head['lower_bound_usd'])} (95% CI {_money(head['lower_ci95_low_usd'])} to {_money(head['lower_ci95_high_usd'])})",
    )
    t.add_row(
        f"upper bound ({head['best_replication']}'s plan)",
        f"{_money(head['upper_bound_usd'])} (95% CI {_money(head['upper_ci95_low_usd'])} to {_money(head['upper_ci95_high_usd'])})",
    )
    t.add_row(
        "optimality gap of that plan",
        f"{_money(head['gap_usd'])} ({head['gap_relative']:.2%}); 95% bound {_money(head['gap_ci95_high_usd'])}",
    )
    from rich.console import Console

    Console().print(t)
    click.echo(f"saa.json, saa.csv, the best plan in best/ and every replication in cases/ under {out_dir}/")


def _run_case_set(cases: list, out_dir: Path, label: str, workers: int | None, scheduler: str | None) -> dict:
    """Solve a set of cases with a progress bar; each case's summary (None if it failed) by name.
    Ctrl-C keeps the finished cases and says how to resume."""
    from stockpile.analysis.runner import resolve_workers, run_cases

    results: dict = {}
    try:
        with CaseProgress(len(cases), label, resolve_workers(workers)) as progress:
            run_cases(cases, out_dir, results, workers, scheduler, progress)
    except KeyboardInterrupt:
        raise _interrupted(out_dir, len(cases)) from None
    return {k: v[0] for k, v in results.items()}


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@runner_options("runs/<name>-coalitions")
@user_errors
def coalition(config: str, out: str | None, workers: int | None, scheduler: str | None, sets: tuple[str, ...]) -> None:
    """Solve every coalition of participants; value of cooperation and Shapley cost shares."""
    from stockpile.analysis.coalition import coalition_cases, coalition_tables, write_coalition_tables

    cfg = _load(config, _overrides(sets))
    out_dir = Path(out) if out else Path("runs") / f"{cfg.name}-coalitions"
    summaries = _run_case_set(coalition_cases(cfg), out_dir, "coalitions", workers, scheduler)
    coal, shares, head = coalition_tables(tuple(cfg.participants), summaries)
    write_coalition_tables(out_dir, coal, shares, head)
    _show_table(coal, ["coalition", "size", "status", "objective_usd"], "coalitions")
    if not head["complete"]:
        raise UserError("some coalitions have no solution; see coalitions.csv", EXIT_NO_SOLUTION)
    _show_table(shares, list(shares.columns), "cost shares")
    click.echo(
        f"value of cooperation: {_money(head['value_of_cooperation_usd'])} "
        f"(standalone {_money(head['standalone_sum_usd'])}, together {_money(head['grand_usd'])}); "
        f"Shapley split {'is' if head['in_core'] else 'is NOT'} in the core; {head['transfers']}"
    )
    click.echo(f"coalitions.csv, shares.csv and one folder per coalition in {out_dir}/")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@runner_options("runs/<name>-compare")
@user_errors
def compare(config: str, out: str | None, workers: int | None, scheduler: str | None, sets: tuple[str, ...]) -> None:
    """The optimised arrangement against the day-count rule, pro-rata and each alone: compare.csv."""
    from stockpile.analysis.compare import compare_cases, compare_table, write_compare

    cfg = _load(config, _overrides(sets))
    out_dir = Path(out) if out else Path("runs") / f"{cfg.name}-compare"
    table = compare_table(out_dir, _run_case_set(compare_cases(cfg), out_dir, "rules", workers, scheduler))
    write_compare(out_dir, table)
    t = _table(f"{cfg.name}: who holds what (same budgets and limits)", "rule", "status", "cost", "vs optimised")
    for r in table.itertuples():
        ok = has_plan(r.status)
        t.add_row(
            r.rule,
            r.status,
            _money(r.objective_usd) if ok else "-",
            _money(r.complementarity_value_usd) if ok else "-",
        )
    from rich.console import Console

    console = Console()
    console.print(t)
    for r in table[table.reasons.fillna("") != ""].itertuples():
        console.print(f"  {r.rule}: {r.reasons}", highlight=False)
    click.echo(f"compare.csv and one folder per rule in {out_dir}/")


def _show_cases(cases: list, out_dir: Path, finished: Callable) -> None:
    from rich.console import Console
    from rich.table import Table

    from stockpile.model.core import build_model
    from stockpile.model.instance import build_instance, check_feasible

    t = Table(title=f"{len(cases)} cases", title_justify="left")
    for col in ("case", "overrides", "scenarios", "variables", "constraints", "state"):
        t.add_column(col)
    for case in cases:
        inst = build_instance(case.config)
        sizes = build_model(inst).sizes if not check_feasible(inst) else {}
        t.add_row(
            case.name,
            ", ".join(f"{'.'.join(k.split('.')[-2:])}={v}" for k, v in case.overrides.items()) or "-",
            f"{len(inst.scenarios):,}",
            f"{sizes.get('variables', 0):,}" if sizes else "infeasible",
            f"{sizes.get('constraints', 0):,}" if sizes else "-",
            "finished" if finished(out_dir, case) else "to solve",
        )
    Console().print(t)


def _show_table(df: Any, cols: list[str], title: str, limit: int = 40) -> None:
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


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--count", type=click.IntRange(1, 1_000_000), required=True, help="Scenarios to draw.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="YAML file to write.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Dotted override, repeatable.")
@user_errors
def scenarios(config: str, count: int, seed: int, output: str, sets: tuple[str, ...]) -> None:
    """Draw scenarios from CONFIG's suppliers and events; write them as an explicit `scenarios:` list."""
    import yaml

    from stockpile.results.outputs import atomic_write_text

    cfg = _load(config, [*_overrides(sets), ("scenarios", {"sample": {"count": count, "seed": seed}})])
    listed = [sc.model_dump(mode="json", by_alias=True, exclude_none=True) for sc in cfg.scenario_list]
    calm = sum(1 for sc in listed if not sc["shocks"])
    head = (
        f"# {count} scenarios drawn from the events of {config} with seed {seed} (stockpile scenarios);\n"
        f"# each has probability 1/{count}; {calm} are calm (no event).\n"
    )
    atomic_write_text(Path(output), head + yaml.safe_dump({"scenarios": listed}, sort_keys=False, width=120))
    click.echo(f"wrote {output}: {count} scenarios ({calm} calm), seed {seed}")


@cli.command()
@click.option("--participants", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--minerals", type=click.IntRange(1, 500), default=5, show_default=True)
@click.option("--scenarios", type=click.IntRange(1, 100_000), default=10, show_default=True)
@click.option("--periods", type=click.IntRange(1, 520), default=12, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--years", type=click.IntRange(1, 50), default=1, show_default=True, help="Fiscal years of the build-up.")
@click.option("--sampled", is_flag=True, help="Draw the scenarios from generated suppliers and events.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="YAML file to write.")
@user_errors
def generate(
    participants: int, minerals: int, scenarios: int, periods: int, seed: int, years: int, sampled: bool, output: str
) -> None:
    """Write a realistic synthetic config (for scale studies and benchmarks)."""
    import yaml

    from stockpile.config import validate as check
    from stockpile.results.outputs import atomic_write_text
    from stockpile.tools.generate import generate as make

    data = make(participants, minerals, scenarios, periods, seed, years=years, sampled=sampled)
    check(data, "generated config")
    atomic_write_text(Path(output), yaml.safe_dump(data, sort_keys=False, width=120))
    click.echo(
        f"wrote {output}: {participants} participants, {minerals} minerals, {scenarios} scenarios, {periods} periods"
        + (f", {years} years" if years > 1 else "")
    )


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--figures", type=click.Path(file_okay=False), help="Also write every chart as PNG and SVG here.")
@user_errors
def report(folder: str, figures: str | None) -> None:
    """Write report.html for a solve, study, coalition, compare, SAA or respond output folder."""
    from stockpile.report.pages import write_report

    try:
        path = write_report(folder, figures)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    click.echo(str(path))
    if figures:
        click.echo(f"figures in {figures}/")


@cli.command()
@click.argument("state", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default runs/respond-<state name>).")
@user_errors
def respond(state: str, out: str | None) -> None:
    """Orders for this period of a disruption under way, for every way it may go on: orders.csv,
    contingency.csv, summary.json."""
    from stockpile.analysis.respond import resolve_state, write_response
    from stockpile.analysis.respond import respond as run

    sit = resolve_state(state)
    resp = run(sit)
    out_dir = Path(out) if out else Path("runs") / f"respond-{Path(state).stem}"
    write_response(resp, sit, out_dir)
    show_response(resp.summary, resp.orders)
    click.echo(f"orders.csv, contingency.csv and summary.json in {out_dir}/")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--scenario", "names", multiple=True, metavar="NAME", help="Replay this scenario (repeatable).")
@click.option("--all", "every", is_flag=True, help="Replay every disrupted scenario (the default).")
@click.option("--workers", type=click.IntRange(1, 4096), help="Parallel scenarios (default: every core).")
@click.option("--scheduler", metavar="ADDRESS", help="Run on Dask: 'local' or tcp://host:8786.")
@user_errors
def simulate(run_dir: str, names: tuple[str, ...], every: bool, workers: int | None, scheduler: str | None) -> None:
    """Replay a run's scenarios month by month with `respond` (not knowing the duration):
    simulation.csv, simulation.json."""
    from stockpile.analysis.simulate import simulate_run
    from stockpile.results.runs import read_run_config

    if names and every:
        raise UserError("give --scenario NAME or --all, not both")
    read_run_config(Path(run_dir))  # a finished run with a plan, else a clear message
    live = sys.stderr.isatty()
    with _err_console().status("simulating...", spinner="dots") if live else nullcontext() as status:

        def progress(done: int, total: int) -> None:
            if status is not None:
                status.update(f"simulating: {done} of {total} scenarios")

        _, m = simulate_run(run_dir, list(names) or None, workers, scheduler, progress)
    t = _table(
        f"{run_dir}: month by month, not knowing the duration",
        "scenario",
        "rolling",
        "clairvoyant",
        "knowing",
        "alone",
        "coordinating",
    )
    rows = [(r["scenario"], r) for r in m["scenarios"]]
    if "expected" in m:
        rows.append(("expected", m["expected"]))
    for name, r in rows:
        t.add_row(
            name,
            *(
                _money(r[k], short=True)
                for k in (
                    "rolling_cost_usd",
                    "clairvoyant_cost_usd",
                    "value_of_knowing_duration_usd",
                    "alone_cost_usd",
                    "coordination_value_usd",
                )
            ),
        )
    from rich.console import Console

    Console().print(t)
    click.echo(
        "rolling: the response month by month; clairvoyant: the run's schedule, which knew the duration; "
        "knowing: their difference; alone: each participant responds alone (no lending); coordinating: what "
        "lending saves"
    )
    click.echo(f"simulation.csv and simulation.json in {run_dir}/")


def show_response(s: dict, orders: Any) -> None:
    """The period's orders as a minister would read them, then what they are worth."""
    from rich.console import Console

    console = Console()
    k = s["period"]
    t = _table(
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
    num = lambda v: f"{v:,.3g}" if v else "0"
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
    c = _table("how it may go on", "continuation", "probability", "cost", "unmet", "covered")
    for x in s["continuations"]:
        c.add_row(
            x["name"],
            f"{x['probability']:.2f}",
            _money(x["cost_usd"]),
            f"{x['unmet_t']:,.4g} t",
            f"{x['coverage_share']:.1%}",
        )
    console.print(c)


@cli.command()
def schema() -> None:
    """Print the config reference (Markdown), generated from the schema."""
    from stockpile.tools.docs import config_reference

    click.echo(config_reference())


def show_result(result: Any, out_dir: Path) -> None:
    """Compact terminal view: status, cost per participant, holdings and coverage, each with its why."""
    from rich.console import Console

    console = Console()
    s = result.summary
    head = _table(f"{s['config_name']}: {s['status']}", show_header=False)
    if result.has_solution:
        gap = s.get("gap")
        head.add_row("total cost", _money(s["objective_usd"]))
        head.add_row("best bound", _money(s.get("best_bound_usd")))
        head.add_row("gap", "-" if gap is None else f"{gap:.2e}")
    head.add_row(
        "solver",
        f"{s.get('solver')} ({s.get('method', '-')}), "
        f"build {s.get('build_seconds', 0):.2f} s, solve {s.get('solve_seconds', 0):.2f} s",
    )
    console.print(head)
    if not result.has_solution:
        console.print(f"results in {out_dir}/")
        return
    console.print(_cost_table(s, result.lending_flows))
    h = result.holdings
    t = _table("holdings", "participant", "mineral", "tonnes", "acquired", "days", "why")
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
        t = _table(
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
    t = _table(
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
        t = _table(
            "budget used/appropriation each year (budget_carryover: spent so far/budgets so far)",
            "participant",
            *years,
        )
        for p, g in budget.groupby("participant", sort=False):
            used = {f"y{y}": (u, v) for y, u, v in zip(g.year, g.used, g.value)}
            t.add_row(p, *(f"{_money(used[y][0], short=True)}/{_money(used[y][1], short=True)}" for y in years))
        console.print(t)


def _table(title: str, *columns: str, show_header: bool = True) -> Any:
    """A compact rich table: text columns left, figures right."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), show_header=show_header)
    for col in columns:
        left = col in ("participant", "mineral", "why", "limit", "who", "continuation", "scenario", "rule", "status")
        t.add_column(
            col, justify="left" if left else "right", no_wrap=col in ("limit", "who", "used/value", "dual", "delta")
        )
    return t


# the terminal's short heading of each cost kind, by CostKind value (the report's are in
# report.COST_LABELS); by value so that `stockpile --help` does not import the model and numpy
COST_HEADS = {
    "acquisition": "buy",
    "fixed": "fixed",
    "holding": "hold",
    "shortfall": "unmet",
    "lending": "fees",
    "offtake": "offtake",
}


def _cost_table(s: dict[str, Any], lending_flows: Any) -> Any:
    """Cost per participant: what each pays (its parts sum to the total) and the fees it receives."""
    from stockpile.model.core import CostKind
    from stockpile.results.tables import cost_rows

    kinds, rows = cost_rows(s, lending_flows)
    offtake = CostKind.OFFTAKE in kinds
    t = _table(
        "cost per participant: buy, fixed programme, hold, expected unmet shortfall, lending fees it pays"
        + (", offtake" if offtake else "")
        + "; fees in: lending fees it receives",
        "party",
        *(COST_HEADS[k] for k in kinds),
        "total",
        "fees in",
    )
    for r in rows:
        values = [*(r.paid[k] for k in kinds), r.total_usd, r.fees_received_usd]
        t.add_row(r.party, *(_money(v, short=True) for v in values))
    return t


# The cyclic collector runs after this many new container objects (Python's default: 700): a large
# config and its results make millions of small objects and almost no cycles, so collecting that
# often rescans them for nothing (10,000 scenarios end to end: 27.3 s at the default, 25.2 s here).
GC_THRESHOLD = (50_000, 20, 20)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    cli(prog_name="stockpile")
