"""The commands: each parses its arguments, calls the Python API and hands the answer to the
terminal views; exit codes are in ``app``.

Each command imports what it needs when it runs, so ``stockpile --help`` starts fast.
"""

from __future__ import annotations

import gc
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from stockpile.cli.app import (
    EXIT_INFEASIBLE,
    EXIT_NO_SOLUTION,
    UserError,
    cli,
    err_console,
    interrupted,
    load,
    out_folder,
    overrides_of,
    runner_options,
    solver_options,
    user_errors,
)
from stockpile.cli.views import (
    CaseProgress,
    rich_table,
    show_cases,
    show_explain,
    show_response,
    show_result,
    show_table,
)
from stockpile.enums import has_plan
from stockpile.errors import InfeasibleConfig
from stockpile.fmt import money as _money
from stockpile.jsontypes import JSON

if TYPE_CHECKING:  # the runner imports the API: not at start-up
    from stockpile.analysis.runner import Case, Results


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

    cfg = load(config, overrides_of(sets, **flags))
    if export_model:
        path = export(cfg, export_model)
        click.echo(f"model written to {path} (not solved)")
        return
    out_dir = out_folder(out, cfg.name)
    live = not quiet and sys.stderr.isatty()
    with err_console().status(f"solving {cfg.name}...", spinner="dots") if live else nullcontext() as status:

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
        from stockpile.report import write_report

        click.echo(f"report: {write_report(out_dir)}")
    if not result.has_solution:
        reasons = result.summary.reasons or [result.status]
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

    from stockpile.api import sizes

    cfg = load(config, overrides_of(sets))
    found = sizes(cfg)
    verdict = "valid" if found.has_model else "valid, but its limits admit no plan"
    table = Table(title=f"{cfg.name}: {verdict}", show_header=False, title_justify="left")
    for k, v in found.counts.items():
        table.add_row(k, f"{v:,}")
    Console().print(table)
    if not found.has_model:
        raise InfeasibleConfig(found.reasons)


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

    cases = load_study(study_file, overrides_of(sets))
    out_dir = out_folder(out, Path(study_file).stem)
    if dry_run:
        show_cases(cases, out_dir, finished_summary)
        return
    try:
        with CaseProgress(len(cases), Path(study_file).stem, resolve_workers(workers)) as progress:
            df = run_study(cases, out_dir, workers, scheduler, progress)
    except KeyboardInterrupt:
        raise interrupted(out_dir, len(cases)) from None
    show_table(
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
        raise interrupted(run_dir / EXPLAIN_DIR, total) from None
    show_explain(table, measures)
    click.echo(f"limits.csv and explain.json in {run_dir}/ (re-solves in {run_dir / EXPLAIN_DIR}/)")


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
    with err_console().status("evaluating...", spinner="dots") if live else nullcontext() as status:

        def progress(done: int, total: int) -> None:
            if status is not None:
                status.update(f"evaluating: {done} of {total} chunks")

        _, m = evaluate_run(
            run_dir, scenarios_file, None if sample is None else (sample, seed), workers, scheduler, progress
        )
    t = rich_table(f"{run_dir}: the plan on {m.count:,} scenarios ({m.scenarios})", show_header=False)
    t.add_row("first stage (buy, hold)", _money(m.first_stage_usd))
    t.add_row("expected recourse", f"{_money(m.mean_recourse_usd)} (std {_money(m.std_recourse_usd)})")
    t.add_row(
        "expected total cost",
        f"{_money(m.expected_total_usd)} (95% CI {_money(m.ci95_low_usd)} to {_money(m.ci95_high_usd)})",
    )
    t.add_row(
        f"VaR / CVaR of recourse at {m.cvar_alpha:g}",
        f"{_money(m.var_recourse_usd)} / {_money(m.cvar_recourse_usd)}",
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

    cfg = load(config, overrides_of(sets))
    out_dir = out_folder(out, f"{cfg.name}-saa")
    try:
        with CaseProgress(replications, "replications", resolve_workers(workers)) as progress:
            head = run_saa(cfg, out_dir, count, replications, evaluate_count, seed, workers, scheduler, progress)
    except KeyboardInterrupt:
        raise interrupted(out_dir, replications) from None
    t = rich_table(
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


def run_case_set(
    cases: list[Case], out_dir: Path, label: str, workers: int | None, scheduler: str | None
) -> dict[str, JSON | None]:
    """Solve a set of cases with a progress bar; each case's summary (None if it failed) by name.
    Ctrl-C keeps the finished cases and says how to resume."""
    from stockpile.analysis.runner import resolve_workers, run_cases

    results: Results = {}
    try:
        with CaseProgress(len(cases), label, resolve_workers(workers)) as progress:
            run_cases(cases, out_dir, results, workers, scheduler, progress)
    except KeyboardInterrupt:
        raise interrupted(out_dir, len(cases)) from None
    return {k: v[0] for k, v in results.items()}


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False))
@runner_options("runs/<name>-coalitions")
@user_errors
def coalition(config: str, out: str | None, workers: int | None, scheduler: str | None, sets: tuple[str, ...]) -> None:
    """Solve every coalition of participants; value of cooperation and Shapley cost shares."""
    from stockpile.analysis.coalition import coalition_cases, coalition_tables, write_coalition_tables

    cfg = load(config, overrides_of(sets))
    out_dir = out_folder(out, f"{cfg.name}-coalitions")
    summaries = run_case_set(coalition_cases(cfg), out_dir, "coalitions", workers, scheduler)
    coal, shares, head = coalition_tables(tuple(cfg.participants), summaries)
    write_coalition_tables(out_dir, coal, shares, head)
    show_table(coal, ["coalition", "size", "status", "objective_usd"], "coalitions")
    if not head["complete"]:
        raise UserError("some coalitions have no solution; see coalitions.csv", EXIT_NO_SOLUTION)
    show_table(shares, list(shares.columns), "cost shares")
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

    cfg = load(config, overrides_of(sets))
    out_dir = out_folder(out, f"{cfg.name}-compare")
    table = compare_table(out_dir, run_case_set(compare_cases(cfg), out_dir, "rules", workers, scheduler))
    write_compare(out_dir, table)
    t = rich_table(f"{cfg.name}: who holds what (same budgets and limits)", "rule", "status", "cost", "vs optimised")
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

    cfg = load(config, [*overrides_of(sets), ("scenarios", {"sample": {"count": count, "seed": seed}})])
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
@click.option(
    "--segments",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Segments of every mineral's damage curve (rising, averaging the one-segment figure).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="YAML file to write.")
@user_errors
def generate(
    participants: int,
    minerals: int,
    scenarios: int,
    periods: int,
    seed: int,
    years: int,
    sampled: bool,
    segments: int,
    output: str,
) -> None:
    """Write a realistic synthetic config (for scale studies and benchmarks)."""
    import yaml

    from stockpile.config import validate as check
    from stockpile.results.outputs import atomic_write_text
    from stockpile.tools.generate import generate as make

    data = make(participants, minerals, scenarios, periods, seed, years=years, sampled=sampled, segments=segments)
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
    from stockpile.report import write_report

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
    out_dir = out_folder(out, f"respond-{Path(state).stem}")
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
    with err_console().status("simulating...", spinner="dots") if live else nullcontext() as status:

        def progress(done: int, total: int) -> None:
            if status is not None:
                status.update(f"simulating: {done} of {total} scenarios")

        _, m = simulate_run(run_dir, list(names) or None, workers, scheduler, progress)
    t = rich_table(
        f"{run_dir}: month by month, not knowing the duration",
        "scenario",
        "rolling",
        "clairvoyant",
        "knowing",
        "alone",
        "coordinating",
    )
    rows = [(r["scenario"], r) for r in m.scenarios]
    if m.expected is not None:
        rows.append(("expected", m.expected))
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


@cli.command()
def schema() -> None:
    """Print the config reference (Markdown), generated from the schema."""
    from stockpile.tools.docs import config_reference

    click.echo(config_reference())


# The cyclic collector runs after this many new container objects (Python's default: 700): a large
# config and its results make millions of small objects and almost no cycles, so collecting that
# often rescans them for nothing (10,000 scenarios end to end: 27.3 s at the default, 25.2 s here).
GC_THRESHOLD = (50_000, 20, 20)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    cli(prog_name="stockpile")
