"""The command group and what every command shares: the user-error boundary (one line and an exit
code, never a traceback), the options of solving and of running cases, and config loading.

Exit codes: 0 a plan was found (optimal or feasible at a limit); 2 the config or
an option is wrong; 3 the config's limits admit no plan; 4 no plan within the
solver's time limit; 5 the output cannot be written; 1 an internal error (a bug:
``--debug`` shows its traceback); 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from stockpile.enums import Method, SolverName, values
from stockpile.errors import ConfigError, InfeasibleConfig, NoSolution, OptionError
from stockpile.version import __version__

Command = Callable[..., Any]  # a click command function, before and after a decorator

EXIT_INTERNAL, EXIT_CONFIG, EXIT_INFEASIBLE, EXIT_NO_SOLUTION, EXIT_OUTPUT, EXIT_INTERRUPTED = 1, 2, 3, 4, 5, 130

log = logging.getLogger(__name__)


_debug = False  # --debug: tracebacks instead of one-line messages


def err_console() -> Any:
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

        err_console().print(f"[bold red]error:[/] {escape(self.message)}", markup=True, soft_wrap=True)


def user_errors(fn: Command) -> Command:
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


def overrides_of(sets: tuple[str, ...], **flags: Any) -> list[tuple[str, Any]]:
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


def out_folder(out: str | None, name: str) -> Path:
    """--out, or runs/NAME: every command's default output folder, in the working directory."""
    return Path(out) if out else Path("runs") / name


def load(config: str, overrides: list[tuple[str, Any]]) -> Any:
    from stockpile.config import load_config

    return load_config(config, overrides)


def solver_options(fn: Command) -> Command:
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


def interrupted(out_dir: Path, total: int) -> UserError:
    done = sum(1 for p in (out_dir / "cases").glob("*/summary.json"))
    return UserError(
        f"interrupted: {done} of {total} cases are finished and kept in {out_dir}; "
        "run the same command again to complete the rest",
        130,
    )


def runner_options(default_out: str) -> Callable[[Command], Command]:
    """Options shared by the commands that solve many cases."""

    def wrap(fn: Command) -> Command:
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
