"""The state of a disruption under way (``stockpile respond STATE.yaml``): YAML -> validated State.

The schema is checked here, with lines; the references to the config (names, periods, arcs)
are checked by ``respond.resolve_state`` against the config the state names, before any
model is built, and reported the same way: file, line, key path and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError

from stockpile.config.loader import Document, read_yaml
from stockpile.config.schema import Name, NonNeg, Scenario, StrictModel
from stockpile.config.validate import problems_from
from stockpile.errors import ConfigError, Problem

Tonnes = dict[Name, dict[Name, NonNeg]]  # participant -> mineral -> t


class FromRun(StrictModel):
    """Take the holdings of a solved run folder."""

    from_run: str = Field(description="A run folder (stockpile solve --out); relative to the state file.")


class State(StrictModel):
    """Where a disruption stands when the Rapid Response Group meets: stocks, what happened, what may follow."""

    config: str = Field(description="The config whose participants, limits, lending arcs and costs apply.")
    inventory: Tonnes | FromRun = Field(
        description="Tonnes in store at the start of the current period, participant -> mineral "
        "(a pair not given holds 0 t); or {from_run: RUN_DIR}: the run's holdings, nothing drawn yet."
    )
    holding: Tonnes | None = Field(
        None,
        description="The stock before the disruption, which sets the release-rate cap and the reserve "
        "floor (absent: the inventory; pairs not given: their inventory).",
    )
    period: int = Field(ge=1, description="The current period k of the disruption, 1-based.")
    year: int | None = Field(
        None,
        ge=1,
        description="Over a build-up (horizon.years > 1): the year the disruption struck in; the continuations "
        "are the config's scenarios of that year and {from_run} takes that year's holdings (absent: the last).",
    )
    history: Name | dict[Name, dict[Name, list[NonNeg]]] = Field(
        description="Shortfall in t observed in periods 1..k, participant -> mineral -> k values (pairs not "
        "given: none); or the name of the config scenario whose first k periods happened."
    )
    outlook: list[Scenario] | None = Field(
        None,
        description="Possible continuations (shocks from period k+1 on) with probabilities summing to 1; "
        "absent: the config's scenarios whose periods 1..k match the history, probabilities renormalised.",
    )
    offtake: dict[Name, dict[Name, NonNeg]] | None = Field(
        None,
        description="Tonnes a year each participant takes from allied projects (participant -> project); "
        "absent: the run's, with inventory from_run, else none.",
    )
    lent_so_far: dict[str, dict[Name, NonNeg]] | None = Field(
        None, description="Tonnes already lent in periods 1..k-1 per arc 'FROM->TO' and mineral."
    )


def load_state(path: str | Path) -> tuple[State, Document]:
    """Read and validate a state file; ConfigError lists every schema problem with its line."""
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([Problem((), "expected a mapping with config, inventory, period, history")], doc.source)
    try:
        return State.model_validate(doc.data), doc
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, doc, State), doc.source) from None
