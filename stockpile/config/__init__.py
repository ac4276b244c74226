"""Stage 1 of the flow: YAML file -> validated :class:`Config`.

* ``schema``: the pydantic models (``extra="forbid"``; docs/config.md is generated from them);
* ``loader``: hardened YAML reading with line numbers;
* ``overrides``: dotted keys and fragments, with their written precedence;
* ``validate``: every problem in one pass, each naming file, line (or override) and key path;
* ``errors``: the problems themselves.
"""

from stockpile.config.loader import Document, parse_yaml, read_yaml
from stockpile.config.overrides import apply_overrides, deep_merge, parse_set_option, parse_value, set_dotted
from stockpile.config.schema import (
    PER_PARTICIPANT_KEYS,
    Config,
    Horizon,
    Lending,
    Mineral,
    Participant,
    Scenario,
    Shock,
    Solver,
    StrictModel,
    for_participant,
)
from stockpile.config.validate import cross_check, load_config, problems_from, validate, with_bases
from stockpile.errors import ConfigError, Problem, did_you_mean, format_loc

__all__ = [
    "PER_PARTICIPANT_KEYS",
    "Config",
    "ConfigError",
    "Document",
    "Horizon",
    "Lending",
    "Mineral",
    "Participant",
    "Problem",
    "Scenario",
    "Shock",
    "Solver",
    "StrictModel",
    "apply_overrides",
    "cross_check",
    "deep_merge",
    "did_you_mean",
    "for_participant",
    "format_loc",
    "load_config",
    "parse_set_option",
    "parse_value",
    "parse_yaml",
    "problems_from",
    "read_yaml",
    "set_dotted",
    "validate",
    "with_bases",
]
