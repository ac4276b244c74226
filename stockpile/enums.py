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


class CostKind(StrEnum):
    """Kinds of cost a variable block may carry; each is one entry of summary.json's ``costs``."""

    ACQUISITION = "acquisition"
    FIXED = "fixed"
    HOLDING = "holding"  # storage, paid at the start of each year the stock is held
    SALVAGE = "salvage"  # resale of the stock left after the years protected (negative)
    SHORTFALL = "shortfall"
    RELEASE = "release"  # release_cost_usd_per_t of the tonnes leaving a store
    LENDING = "lending"
    OFFTAKE = "offtake"  # price-gap subsidies and agreement costs of offtake from allied projects
    RISK = "risk_premium"  # w (CVaR - E): what risk aversion adds to the expected cost; shared, no payer

    @property
    def head(self) -> str:
        """The terminal cost table's column."""
        return _COST_WORDS[self][0]

    @property
    def caption(self) -> str:
        """What the terminal table's caption says the column is."""
        return _COST_WORDS[self][1]

    @property
    def label(self) -> str:
        """The report's column."""
        return _COST_WORDS[self][2]

    @property
    def recourse(self) -> bool:
        """An expected cost of the scenarios' recourse (second stage), not of the plan itself."""
        return self in (CostKind.SHORTFALL, CostKind.RELEASE, CostKind.LENDING)

    @property
    def optional(self) -> bool:
        """Shown only where a config uses it (zero otherwise)."""
        return self in (CostKind.SALVAGE, CostKind.RELEASE, CostKind.OFFTAKE, CostKind.RISK)

    @property
    def summary_key(self) -> str:
        return f"{'expected_' if self.recourse else ''}{self.value}_usd"

    @property
    def shared(self) -> bool:
        """A cost of the whole arrangement, not of one participant."""
        return self is CostKind.RISK


# summary.json's cost keys, in CostKind's order (the verifier recomputes each from the files)
COST_KEYS = [k.summary_key for k in CostKind]
# what a plan costs whatever happens: buying, programmes, holding, offtake (not recourse, not risk)
FIRST_STAGE_COST_KEYS = [k.summary_key for k in CostKind if not k.recourse and not k.shared]

# (terminal column, its caption, report column) of each cost kind: a new kind is named here once
_COST_WORDS = {
    CostKind.ACQUISITION: ("buy", "buy", "acquisition"),
    CostKind.FIXED: ("fixed", "fixed programme", "fixed"),
    CostKind.HOLDING: ("store", "storage", "storage"),
    CostKind.SALVAGE: ("resale", "resale of the stock left (negative)", "resale"),
    CostKind.SHORTFALL: ("unmet", "expected unmet shortfall", "expected shortfall"),
    CostKind.RELEASE: ("release", "expected release cost", "expected release cost"),
    CostKind.LENDING: ("fees", "lending fees it pays", "lending fees paid"),
    CostKind.OFFTAKE: ("offtake", "offtake", "offtake"),
    CostKind.RISK: ("risk", "risk premium", "risk premium"),
}
