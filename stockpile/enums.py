"""The names the stages hand to each other, each listed once.

The config schema, the CLI's choices, the backends and ``summary.json`` all take
their values from here, so a new solver, method or status is added in one place.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Outcome of a solve, as written to summary.json."""

    OPTIMAL = "optimal"  # proven within the relative gap
    FEASIBLE = "feasible"  # a plan, stopped at the time limit with its gap reported
    INFEASIBLE = "infeasible"  # the limits admit no plan
    NO_SOLUTION = "no_solution"  # no plan within the time limit

    @property
    def has_plan(self) -> bool:
        return self in PLAN_STATUSES


PLAN_STATUSES: tuple[Status, ...] = (Status.OPTIMAL, Status.FEASIBLE)


def has_plan(status: object) -> bool:
    """Whether a status as read back from a summary.json (a string, or None where there is no
    summary) carries a plan."""
    return status in PLAN_STATUSES


class SolverName(StrEnum):
    """MIP backends offered (docs/solvers.md says why these two)."""

    HIGHS = "highs"
    SCIP = "scip"


class Method(StrEnum):
    """How the two-stage model is solved."""

    AUTO = "auto"
    EXTENSIVE = "extensive"
    BENDERS = "benders"


class Allocation(StrEnum):
    """Who holds what (``allocation``): the optimised arrangement or a rule countries use today."""

    OPTIMISED = "optimised"  # the model chooses every holding
    DAYS = "days"  # each holds allocation_days of its own consumption, rounded up to lots
    PRORATA = "prorata"  # the optimised total of each mineral, split by consumption
    ALONE = "alone"  # no lending; each optimises for itself


def values(enum: type[StrEnum]) -> list[str]:
    """The string values of an enum, in declaration order (for CLI choices and messages)."""
    return [e.value for e in enum]
