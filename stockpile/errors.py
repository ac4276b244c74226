"""The errors a user can cause, in one light module (the CLI catches them without importing the stack).

* ConfigError: problems in a config, each with where (file, line or override, key path) and what;
* InfeasibleConfig: the config's limits admit no plan, with the limit to move and by how much;
* OptionError: a command-line option is wrong (a scheduler that is not there, ...);
* NoSolution: the solver stopped without a solution (a response at its time limit);
* OutputError: the output cannot be written where asked.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass


@dataclass
class Problem:
    """One thing wrong with a config: where (key path, line) and what."""

    loc: tuple[str | int, ...]
    message: str
    line: int | None = None
    source: str | None = None  # where the value came from when not the config file (an override)

    def render(self, source: str | None) -> str:
        key = format_loc(self.loc) or "(top level)"
        where = self.source or source or "<config>"
        if self.line is not None and self.source is None:
            where = f"{where}:{self.line}"
        if self.source is not None and self.source.endswith(f" {key}"):
            return f"{where}: {self.message}"  # the override names the key already
        return f"{where}: {key}: {self.message}"


class ConfigError(ValueError):
    """A user mistake in a config, with every problem found and where it is."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.render(source) for p in problems))


def format_loc(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


def did_you_mean(word: object, pool: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(pool), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class InfeasibleConfig(ValueError):
    """The limits of the config admit no plan; the message says which and by how much."""

    def __init__(self, reasons: list[str]):
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class NoSolution(RuntimeError):
    """The solver stopped without a solution (its time limit); the message says what to raise."""


class OutputError(OSError):
    """The output cannot be written where asked (not a run folder, disk full, no permission)."""


class OptionError(ValueError):
    """A command-line option is wrong; the message names it and what was expected."""
