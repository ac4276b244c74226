"""The config schema: pydantic models with ``extra="forbid"``, so an unknown key is an error.

Every field has a description; ``docs/config.md`` is generated from them (``stockpile schema``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from stockpile.config.damage import Segments, curve_problem, derived_segments
from stockpile.enums import Allocation, Method, SolverName
from stockpile.jsontypes import JSON

TINY = 1e-9


def _not_tiny(value: float) -> float:
    """Numbers below 1e-9 in magnitude sit under every solver tolerance: ask for 0 instead."""
    if value != 0 and abs(value) < TINY:
        raise ValueError(f"{value!r} is below {TINY:g} in magnitude, under the solvers' tolerances; write 0")
    return value


# Larger figures (USD, tonnes, days) are typos, and their products would overflow floating point.
MAX_VALUE = 1e15
NonNeg = Annotated[float, Field(ge=0, le=MAX_VALUE, allow_inf_nan=False), AfterValidator(_not_tiny)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), AfterValidator(_not_tiny)]
# names become folder and column names: start with a letter or digit, so '..' or '/' cannot appear
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")]
PerParticipant = NonNeg | dict[Name, NonNeg]
PerParticipantShare = Share | dict[Name, Share]
MAX_YEARS = 50
# a figure that may change by fiscal year: one number for every year, or a list of horizon.years values
Yearly = NonNeg | Annotated[list[NonNeg], Field(min_length=1, max_length=MAX_YEARS)]
PerParticipantYearly = Yearly | dict[Name, Yearly]


class StrictModel(BaseModel):
    """Base of every schema model: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


class Horizon(StrictModel):
    """Release periods of the shock horizon, and how long holdings are paid for."""

    periods: int = Field(ge=1, le=10_000, description="Number of release periods T (required).")
    period_days: float = Field(30.0, gt=0, le=3660, allow_inf_nan=False, description="Days per period (Delta).")
    holding_years: int = Field(
        1,
        ge=1,
        le=100,
        description="H: years the finished stock is held from the last build-up year on; it protects years "
        "1..K with K = years + holding_years - 1, each facing every scenario.",
    )
    years: int = Field(
        1,
        ge=1,
        le=MAX_YEARS,
        description="B: fiscal years of the build-up: lots are bought at the start of each, and each year "
        "draws on the stock bought so far (1: every lot is bought at once).",
    )
    discount_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="r: every cost of year k (purchases, storage, recourse, resale) is discounted by (1 + r)^-(k-1).",
    )

    @property
    def exposure_years(self) -> int:
        """K = B + H - 1: the years the stock protects."""
        return self.years + self.holding_years - 1

    def discounts(self, count: int) -> list[float]:
        """delta_k = (1 + r)^-(k-1) for k = 1..count."""
        return [(1.0 + self.discount_rate) ** -k for k in range(count)]

    def year_weights(self) -> list[float]:
        """W_y per build year: delta_y for y < B, and sum_{k=B..K} delta_k for the finished stock."""
        d = self.discounts(self.exposure_years)
        return d[: self.years - 1] + [sum(d[self.years - 1 :])]

    @property
    def salvage_discount(self) -> float:
        """delta_{K+1}: stock still held after year K is resold at the start of year K + 1."""
        return self.discounts(self.exposure_years + 1)[-1]


class Participant(StrictModel):
    """One country's regulatory limits. Each is optional: absent means no limit."""

    budget_usd: Yearly | None = Field(
        None,
        description="Cap on acquisition plus fixed program cost, USD: the annual appropriation (a list: one per "
        "year; absent: none). Programme costs count against year 1.",
    )
    budget_carryover: bool = Field(
        False, description="Unspent budget carries over to the next year (false: it lapses at the year's end)."
    )
    storage_capacity_t: Yearly | None = Field(
        None, description="Cap on total tonnes held, all minerals, including initial stock (a list: by year)."
    )
    release_rate_max: Share = Field(
        1.0,
        description="Share of the holding that may leave per period (own release plus lending).",
    )
    reserve_floor: Share = Field(0.0, description="Share of the holding that must stay in store in every period.")


class Segment(StrictModel):
    """One segment of a damage curve: unmet tonnes up to this depth of the shortage cost usd_per_t each."""

    up_to_share: float = Field(
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Depth phi up to which this segment applies: unmet tonnes of a period as a share of the "
        "participant's consumption in that period.",
    )
    usd_per_t: NonNeg = Field(description="Loss per tonne unmet in this segment.")


Curve = NonNeg | Annotated[list[Segment], Field(min_length=1, max_length=20)]
PerParticipantCurve = Curve | dict[Name, Curve]


def _check_shares(shares: list[float]) -> list[float]:
    problem = curve_problem(shares, [0.0] * len(shares))
    if problem:
        raise ValueError(problem)
    return shares


class Damage(StrictModel):
    """A damage curve from a constant-elasticity demand curve, capped at a choke price (docs/model.md)."""

    elasticity: float = Field(
        gt=0, le=10, allow_inf_nan=False, description="epsilon: short-run price elasticity of demand (its size)."
    )
    choke_usd_per_t: NonNeg = Field(
        description="Loss of a tonne where users stop buying (production stops): the cap on the marginal damage."
    )
    shares: Annotated[list[float], AfterValidator(_check_shares)] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        max_length=20,
        description="Segment ends (depths of the shortage), increasing to 1.0; each segment costs the average "
        "marginal damage over its depth.",
    )


class Mineral(StrictModel):
    """Market data and per-participant rules for one mineral."""

    price_usd_per_t: Yearly = Field(description="Acquisition price, USD per tonne (required; a list: the price path).")
    holding_cost_usd_per_t_year: NonNeg = Field(
        0.0,
        description="Storage per tonne held per year, paid at the start of each year (the capital cost is the "
        "discounting: horizon.discount_rate).",
    )
    salvage_share: Share = Field(
        0.0,
        description="sigma: share of the last build-up year's price a tonne still held after the last year "
        "protected fetches on resale.",
    )
    release_cost_usd_per_t: NonNeg = Field(
        0.0,
        description="Cost per tonne leaving the store (own release or lending) beyond its replenishment, which "
        "costs what the missing imports would have.",
    )
    lot_t: float = Field(
        1.0, gt=0, le=MAX_VALUE, allow_inf_nan=False, description="Acquisitions come in whole lots of this size."
    )
    shortfall_cost_usd_per_t: PerParticipantCurve | None = Field(
        None,
        description="Economic loss per tonne of disrupted supply not covered: one figure, or a damage curve (a list "
        "of segments, shares increasing to 1.0 and costs never decreasing), or a mapping naming every participant "
        "to either. This or damage is required.",
    )
    damage: Damage | dict[Name, Damage] | None = Field(
        None,
        description="A damage curve derived from a demand curve (docs/model.md, Damage curves), instead of "
        "shortfall_cost_usd_per_t; a mapping names every participant.",
    )
    consumption_t_per_year: PerParticipant = Field(
        default_factory=dict,
        description="Annual consumption per participant (scalar: all; absent participant: 0).",
    )
    initial_t: PerParticipant = Field(default_factory=dict, description="Holdings already in store per participant.")
    fixed_cost_usd: PerParticipant = Field(
        default_factory=dict,
        description="Program cost charged when a participant acquires any lot of this mineral.",
    )
    max_acquisition_t: PerParticipantYearly | None = Field(
        None, description="Acquisition ceiling per participant and year, tonnes (a list: by year; absent: none)."
    )
    min_days: PerParticipantYearly = Field(
        default_factory=dict,
        description="Holding must cover this many days of the participant's consumption (a list: the target to "
        "hold by each year).",
    )

    @model_validator(mode="after")
    def _one_damage(self) -> Mineral:
        """One statement of the damage, and each curve convex: the model splits unmet tonnes between
        segments cheapest first, which is optimal only on a convex curve."""
        if (self.shortfall_cost_usd_per_t is None) == (self.damage is None):
            raise ValueError(
                "give shortfall_cost_usd_per_t (a figure or a curve) or damage (a derived curve), exactly one "
                "(over a base file's damage, write damage: null)"
            )
        curves = self.shortfall_cost_usd_per_t
        for who, curve in curves.items() if isinstance(curves, dict) else [(None, curves)]:
            if isinstance(curve, list):
                problem = curve_problem([g.up_to_share for g in curve], [g.usd_per_t for g in curve])
                if problem:
                    key = "shortfall_cost_usd_per_t" + ("" if who is None else f".{who}")
                    raise ValueError(f"{key}, {problem}")
        return self

    @property
    def first_price(self) -> float:
        """The price of the first build year: the normal price c of a derived damage curve."""
        price = self.price_usd_per_t
        return float(price[0] if isinstance(price, list) else price)

    def curve(self, participant: str) -> Segments:
        """The participant's damage curve as (up_to_share, usd_per_t) segments (one segment: a figure)."""
        given = self.shortfall_cost_usd_per_t
        if given is not None:
            one = given.get(participant, 0.0) if isinstance(given, dict) else given
            if isinstance(one, list):
                return tuple((g.up_to_share, g.usd_per_t) for g in one)
            return ((1.0, float(one)),)
        assert self.damage is not None
        d = self.damage.get(participant) if isinstance(self.damage, dict) else self.damage
        if d is None:
            return ((1.0, 0.0),)
        return derived_segments(self.first_price, d.elasticity, d.choke_usd_per_t, d.shares)


# the Mineral fields given per participant (a scalar, or a mapping by participant name)
PER_PARTICIPANT_KEYS = ("consumption_t_per_year", "initial_t", "fixed_cost_usd", "max_acquisition_t", "min_days")
# the fields that may be given by fiscal year (a list of horizon.years values)
YEARLY_MINERAL_KEYS = ("price_usd_per_t", "max_acquisition_t", "min_days")
YEARLY_PARTICIPANT_KEYS = ("budget_usd", "storage_capacity_t")


class Lending(StrictModel):
    """A lending arc: who may lend to whom during a shock, and on what terms."""

    from_: Name = Field(alias="from", description="Lending participant.")
    to: Name = Field(description="Borrowing participant.")
    minerals: list[Name] | None = Field(None, description="Minerals that may be lent (absent: all).")
    max_share: Share = Field(1.0, description="Share of the lender's holding that may be lent over a scenario.")
    cost_usd_per_t: NonNeg = Field(0.0, description="Cost per tonne lent (transport, fees).")


class Shock(StrictModel):
    """A supply cut on one mineral: a share of each participant's consumption is lost."""

    mineral: Name = Field(description="Mineral cut off.")
    start: int = Field(ge=1, description="First period of the shock, 1-based.")
    periods: int = Field(ge=1, description="Length in periods (cut at the horizon).")
    loss: PerParticipantShare = Field(description="Share of consumption lost per period (scalar: all participants).")


class Scenario(StrictModel):
    """One supply-shock scenario with its probability."""

    name: Name = Field(description="Unique scenario name.")
    probability: Share = Field(description="Probability; all scenarios sum to 1 within 1e-6.")
    shocks: list[Shock] = Field(default_factory=list, description="Shocks in this scenario.")

    @model_validator(mode="before")
    @classmethod
    def _no_year(cls, data: Any) -> Any:
        return refuse_year(data)


NO_YEAR = (
    "'year' is no longer a key: every year the stock protects (horizon.years + horizon.holding_years - 1) "
    "faces every scenario; the probabilities are those of one year. Remove it"
)


def refuse_year(data: Any) -> Any:
    """Scenarios and samples used to strike in one build-up year; say why the key is gone."""
    if isinstance(data, dict) and "year" in data:
        raise ValueError(NO_YEAR)
    return data


class Triangular(StrictModel):
    """A duration in periods drawn from a triangular distribution (rounded to whole periods, at least 1)."""

    min: float = Field(ge=1, le=10_000, allow_inf_nan=False, description="Shortest duration, periods.")
    mode: float = Field(ge=1, le=10_000, allow_inf_nan=False, description="Most likely duration, periods.")
    max: float = Field(ge=1, le=10_000, allow_inf_nan=False, description="Longest duration, periods.")

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not self.min <= self.mode <= self.max:
            raise ValueError(f"expected min <= mode <= max, got {self.min:g}, {self.mode:g}, {self.max:g}")
        return self


class Uniform(StrictModel):
    """A share drawn uniformly between min and max."""

    min: Share = Field(description="Smallest share.")
    max: Share = Field(description="Largest share.")

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.min > self.max:
            raise ValueError(f"expected min <= max, got {self.min:g} > {self.max:g}")
        return self


class Correlation(StrictModel):
    """Another event that happens in the same year with this conditional probability, given this one."""

    event: Name = Field(description="Name of the other event.")
    probability: Share = Field(description="P(the other event | this event), within the year.")


class Event(StrictModel):
    """A possible supply restriction by one supplier country, sampled into scenarios."""

    name: Name = Field(description="Unique event name.")
    supplier: Name = Field(description="Supplier country, a key of `suppliers`.")
    minerals: list[Name] = Field(min_length=1, description="Minerals restricted together.")
    annual_probability: Share = Field(description="Probability that the event starts within a year.")
    duration_periods: Triangular = Field(description="Duration in periods, triangular {min, mode, max}.")
    severity: Uniform = Field(description="Share of the supplier's flow cut, uniform {min, max}.")
    correlated_with: Correlation | None = Field(
        None, description="{event, probability}: the conditional probability that another event happens too."
    )


class Project(StrictModel):
    """An allied mine or refinery whose output participants may commit to buy at a floor price (offtake)."""

    name: Name = Field(description="Unique project name.")
    host: Name = Field(description="Host country: a participant or a third country.")
    mineral: Name = Field(description="Mineral it produces.")
    capacity_t_per_year: NonNeg = Field(description="Tonnes a year it can sell under offtake, all buyers together.")
    floor_price_usd_per_t: NonNeg = Field(
        description="Price guaranteed to the project; the buyer's yearly subsidy is (floor - market price) per "
        "tonne taken, 0 when the market price is higher."
    )
    fixed_cost_usd: NonNeg = Field(
        0.0, description="Cost of an offtake agreement, paid by each participant that signs one."
    )
    available_from_year: int = Field(
        1,
        ge=1,
        le=100,
        description="First year of output; only projects producing in year 1 are offered (one-year horizon).",
    )
    offtake_lot_t: float | None = Field(
        None,
        gt=0,
        le=MAX_VALUE,
        allow_inf_nan=False,
        description="Offtake in whole lots of this many tonnes a year (absent: any amount).",
    )


class Sample(StrictModel):
    """How many equally likely one-year scenarios to draw from `events`, and the seed."""

    count: int = Field(ge=1, le=1_000_000, description="Number of scenarios N (each of probability 1/N).")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of the random generator (PCG64).")

    @model_validator(mode="before")
    @classmethod
    def _no_year(cls, data: Any) -> Any:
        return refuse_year(data)


class ScenarioSample(StrictModel):
    """`scenarios: {sample: {count, seed}}`: scenarios drawn from `suppliers` and `events`."""

    sample: Sample = Field(description="Count and seed.")


class Risk(StrictModel):
    """Risk aversion: weight w on the CVaR of the recourse cost (w = 0: the expected cost alone)."""

    cvar_alpha: float = Field(
        0.9, ge=0, lt=1, allow_inf_nan=False, description="CVaR level alpha: the mean of the worst 1 - alpha tail."
    )
    cvar_weight: Share = Field(
        0.0, description="w: objective = first stage + (1 - w) E[recourse] + w CVaR_alpha(recourse)."
    )


class Solver(StrictModel):
    """How the model is solved."""

    name: SolverName = Field(
        SolverName.HIGHS,
        description="MIP solver of the extensive form: highs (through MathOpt) or scip "
        "(single-threaded). The decomposition's master always uses SCIP.",
    )
    time_limit_s: float = Field(
        300.0, gt=0, le=MAX_VALUE, allow_inf_nan=False, description="Wall-clock limit of the solve, seconds."
    )
    relative_gap: float = Field(
        1e-4,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Stop when (objective - bound) / |objective| is at most this.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Threads for the decomposition's recourse batches (absent: every core); MIP solves are serial.",
    )
    method: Method = Field(
        Method.AUTO,
        description="extensive: one MIP over all scenarios; benders: L-shaped decomposition; "
        "auto: picked by instance size (docs/performance.md).",
    )


def for_participant(value: Any, participant: str, default: float | None) -> Any:
    """One participant's value of a scalar-or-mapping field (a scalar applies to all; absent: default);
    a yearly field's list stays a list of floats."""
    if isinstance(value, dict):
        value = value.get(participant, default)
    if value is None:
        return default
    return [float(v) for v in value] if isinstance(value, list) else float(value)


class Config(StrictModel):
    """A stockpile study: participants, minerals, lending arcs, scenarios and solver."""

    name: Name = Field(description="Config name; the default output folder is runs/<name>.")
    horizon: Horizon = Field(description="Release periods and holding years.")
    participants: dict[Name, Participant] = Field(
        min_length=1, description="Participants and their limits (a list of names also works)."
    )
    minerals: dict[Name, Mineral] = Field(min_length=1, description="Minerals modelled.")
    lending: list[Lending] = Field(default_factory=list, description="Allowed lending arcs during a shock.")
    suppliers: dict[Name, dict[Name, PerParticipantShare]] = Field(
        default_factory=dict,
        description="Supplier country -> mineral -> share of each participant's supply from it (scalar: all); "
        "each participant-mineral's shares sum to at most 1.",
    )
    events: list[Event] = Field(default_factory=list, description="Possible supply restrictions, for sampling.")
    scenarios: Annotated[list[Scenario], Field(min_length=1)] | ScenarioSample | Literal["enumerate"] = Field(
        description="Supply-shock scenarios: a list; {sample: {count, seed}} to draw them from `events`; or "
        "`enumerate`: every combination of `events` occurring or not in a year, with its exact probability, each "
        "event at its modal duration and mean severity from the year's first period."
    )
    risk: Risk = Field(default_factory=lambda: Risk(), description="Risk-aware objective (CVaR of the recourse cost).")
    projects: list[Project] = Field(
        default_factory=list, description="Allied producers offering offtake at a floor price (price-gap subsidy)."
    )
    allocation: Allocation = Field(
        Allocation.OPTIMISED,
        description="Who holds what: optimised (the model chooses); days (each participant holds allocation_days "
        "of its own consumption of every mineral, rounded up to lots); prorata (the optimised total of each "
        "mineral split in proportion to consumption, rounded up to lots); alone (no lending, each optimises for "
        "itself). The recourse, lending included where allowed, is optimised under every rule.",
    )
    allocation_days: float = Field(
        60.0,
        ge=0,
        le=3650,
        allow_inf_nan=False,
        description="Days of consumption each participant holds under allocation: days (JOGMEC's standard "
        "target is 60).",
    )
    solver: Solver = Field(default_factory=lambda: Solver(), description="Solver settings.")
    _provenance: JSON = PrivateAttr(default_factory=dict)

    @property
    def provenance(self) -> JSON:
        """Where the config came from: source file and the overrides applied, in order."""
        return self._provenance

    @field_validator("scenarios", mode="before")
    @classmethod
    def _scenario_forms(cls, value: Any) -> Any:
        """A word other than enumerate: name the three forms (pydantic would report the list's alone)."""
        if isinstance(value, str) and value != "enumerate":
            raise ValueError(f"expected a list of scenarios, {{sample: {{count, seed}}}} or enumerate, got {value!r}")
        return value

    @field_validator("participants", mode="before")
    @classmethod
    def _names_or_mapping(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return {v: {} for v in value}
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @property
    def scenario_list(self) -> list[Scenario]:
        """The scenarios, drawn or enumerated already when the config asked for it (``validate`` does it)."""
        assert isinstance(self.scenarios, list), "scenarios are sampled or enumerated when the config is validated"
        return self.scenarios

    def per_participant(self, value: Any, default: float) -> list[Any]:
        """Expand a scalar-or-mapping field to one value per participant, in order."""
        return [for_participant(value, p, default) for p in self.participants]

    def resolved_dict(self) -> dict[str, Any]:
        """The config with every default filled in, as plain JSON types."""
        return self.model_dump(mode="json", by_alias=True)

    def hash(self) -> str:
        """Stable digest of the resolved config: identical inputs, identical hash."""
        text = json.dumps(self.resolved_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
