"""Stage 1 of the flow: YAML file -> validated :class:`Config`.

The schema is a tree of pydantic models with ``extra="forbid"``, so an unknown
key is an error (with a did-you-mean), never silently ignored. Every field has a
description; ``docs/config.md`` is generated from them (``stockpile schema``).

Overrides are dotted keys (``participants.US.budget_usd=2e9``,
``scenarios.drc_cobalt_ban.shocks.0.periods=12``) applied to the raw YAML tree
before validation. Order of precedence, lowest first:

1. the config file;
2. a study case's ``set_file`` fragment (deep-merged), then its ``sweep`` values
   and ``set`` overrides;
3. ``--set KEY=VALUE`` on the command line, in the order given;
4. the dedicated CLI flags (``--solver``, ``--method``, ``--time-limit``,
   ``--gap``, ``--threads``).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

MAX_CONFIG_BYTES_ENV = "STOCKPILE_MAX_CONFIG_MB"
DEFAULT_MAX_CONFIG_MB = 16
MAX_EXPANDED_NODES = 2_000_000

# ----------------------------------------------------------------------------
# Errors


@dataclass
class Problem:
    """One thing wrong with a config: where (key path, line) and what."""

    loc: tuple[str | int, ...]
    message: str
    line: int | None = None

    def render(self, source: str | None) -> str:
        key = format_loc(self.loc) or "(top level)"
        where = source or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {key}: {self.message}"


class ConfigError(ValueError):
    """A user mistake in a config, with every problem found and where it is."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.render(source) for p in problems))


def format_loc(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


# ----------------------------------------------------------------------------
# Schema

TINY = 1e-9


def _not_tiny(value: float) -> float:
    """Numbers below 1e-9 in magnitude sit under every solver tolerance: ask for 0 instead."""
    if value != 0 and abs(value) < TINY:
        raise ValueError(f"{value!r} is below {TINY:g} in magnitude, under the solvers' tolerances; write 0")
    return value


NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_not_tiny)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), AfterValidator(_not_tiny)]
# names become folder and column names: start with a letter or digit, so '..' or '/' cannot appear
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$")]
PerParticipant = Union[NonNeg, dict[Name, NonNeg]]
PerParticipantShare = Union[Share, dict[Name, Share]]


class StrictModel(BaseModel):
    """Base of every schema model: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


class Horizon(StrictModel):
    """Release periods of the shock horizon, and how long holdings are paid for."""

    periods: int = Field(ge=1, le=10_000, description="Number of release periods T (required).")
    period_days: float = Field(
        30.0, gt=0, le=3660, allow_inf_nan=False, description="Days per period (Delta)."
    )
    holding_years: float = Field(
        1.0, ge=0, le=100, allow_inf_nan=False,
        description="Years over which the holding cost accrues on the whole holding.",
    )


class Participant(StrictModel):
    """One country's regulatory limits. Each is optional: absent means no limit."""

    budget_usd: NonNeg | None = Field(
        None, description="Cap on acquisition plus fixed program cost, USD (absent: none)."
    )
    storage_capacity_t: NonNeg | None = Field(
        None, description="Cap on total tonnes held, all minerals, including initial stock."
    )
    release_rate_max: Share = Field(
        1.0,
        description="Share of the holding that may leave per period (own release plus lending).",
    )
    reserve_floor: Share = Field(
        0.0, description="Share of the holding that must stay in store in every period."
    )


class Mineral(StrictModel):
    """Market data and per-participant rules for one mineral."""

    price_usd_per_t: NonNeg = Field(description="Acquisition price, USD per tonne (required).")
    holding_cost_usd_per_t_year: NonNeg = Field(
        0.0, description="Storage plus capital cost per tonne held per year."
    )
    lot_t: float = Field(
        1.0, gt=0, allow_inf_nan=False, description="Acquisitions come in whole lots of this size."
    )
    shortfall_cost_usd_per_t: NonNeg = Field(
        description="Economic loss per tonne of disrupted supply not covered (required)."
    )
    consumption_t_per_year: PerParticipant = Field(
        default_factory=dict,
        description="Annual consumption per participant (scalar: all; absent participant: 0).",
    )
    initial_t: PerParticipant = Field(
        default_factory=dict, description="Holdings already in store per participant."
    )
    fixed_cost_usd: PerParticipant = Field(
        default_factory=dict,
        description="Program cost charged when a participant acquires any lot of this mineral.",
    )
    max_acquisition_t: PerParticipant | None = Field(
        None, description="Acquisition ceiling per participant, tonnes (absent: none)."
    )
    min_days: PerParticipant = Field(
        default_factory=dict,
        description="Holding must cover this many days of the participant's consumption.",
    )


class Lending(StrictModel):
    """A lending arc: who may lend to whom during a shock, and on what terms."""

    from_: Name = Field(alias="from", description="Lending participant.")
    to: Name = Field(description="Borrowing participant.")
    minerals: list[Name] | None = Field(None, description="Minerals that may be lent (absent: all).")
    max_share: Share = Field(
        1.0, description="Share of the lender's holding that may be lent over a scenario."
    )
    cost_usd_per_t: NonNeg = Field(0.0, description="Cost per tonne lent (transport, fees).")


class Shock(StrictModel):
    """A supply cut on one mineral: a share of each participant's consumption is lost."""

    mineral: Name = Field(description="Mineral cut off.")
    start: int = Field(ge=1, description="First period of the shock, 1-based.")
    periods: int = Field(ge=1, description="Length in periods (cut at the horizon).")
    loss: PerParticipantShare = Field(
        description="Share of consumption lost per period (scalar: all participants)."
    )


class Scenario(StrictModel):
    """One supply-shock scenario with its probability."""

    name: Name = Field(description="Unique scenario name.")
    probability: Share = Field(description="Probability; all scenarios sum to 1 within 1e-6.")
    shocks: list[Shock] = Field(default_factory=list, description="Shocks in this scenario.")


class Solver(StrictModel):
    """How the model is solved."""

    name: Literal["highs", "scip"] = Field(
        "highs",
        description="MIP solver of the extensive form: highs (through MathOpt) or scip "
                    "(single-threaded). The decomposition's master always uses SCIP.",
    )
    time_limit_s: float = Field(
        300.0, gt=0, allow_inf_nan=False, description="Wall-clock limit of the solve, seconds."
    )
    relative_gap: float = Field(
        1e-4, ge=0, le=1, allow_inf_nan=False,
        description="Stop when (objective - bound) / |objective| is at most this.",
    )
    threads: int | None = Field(
        None, ge=1, le=256,
        description="Threads for the decomposition's recourse batches (absent: every core); "
                    "MIP solves are serial.",
    )
    method: Literal["auto", "extensive", "benders"] = Field(
        "auto",
        description="extensive: one MIP over all scenarios; benders: L-shaped decomposition; "
                    "auto: picked by instance size (docs/performance.md).",
    )


def for_participant(value: float | dict[str, float] | None, participant: str, default: float | None):
    """One participant's value of a scalar-or-mapping field (a scalar applies to all; absent: default)."""
    if value is None:
        return default
    if isinstance(value, dict):
        v = value.get(participant, default)
        return None if v is None else float(v)
    return float(value)


class Config(StrictModel):
    """A stockpile study: participants, minerals, lending arcs, scenarios and solver."""

    name: Name = Field(description="Config name; the default output folder is runs/<name>.")
    horizon: Horizon = Field(description="Release periods and holding years.")
    participants: dict[Name, Participant] = Field(
        min_length=1, description="Participants and their limits (a list of names also works)."
    )
    minerals: dict[Name, Mineral] = Field(min_length=1, description="Minerals modelled.")
    lending: list[Lending] = Field(
        default_factory=list, description="Allowed lending arcs during a shock."
    )
    scenarios: list[Scenario] = Field(min_length=1, description="Supply-shock scenarios.")
    solver: Solver = Field(default_factory=Solver, description="Solver settings.")
    _provenance: dict = PrivateAttr(default_factory=dict)

    @property
    def provenance(self) -> dict:
        """Where the config came from: source file and the overrides applied, in order."""
        return self._provenance

    @field_validator("participants", mode="before")
    @classmethod
    def _names_or_mapping(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return {v: {} for v in value}
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    def per_participant(self, value: float | dict[str, float] | None, default: float) -> list[float]:
        """Expand a scalar-or-mapping field to one value per participant, in order."""
        return [for_participant(value, p, default) for p in self.participants]

    def resolved_dict(self) -> dict[str, Any]:
        """The config with every default filled in, as plain JSON types."""
        return self.model_dump(mode="json", by_alias=True)

    def hash(self) -> str:
        """Stable digest of the resolved config: identical inputs, identical hash."""
        text = json.dumps(self.resolved_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------
# Cross-field checks (names that must exist, probabilities, horizon)


def cross_check(cfg: Config) -> list[Problem]:
    """Consistency checks pydantic's per-field validation cannot express."""
    problems: list[Problem] = []
    parts = set(cfg.participants)

    def known(name: str, loc: tuple, kind: str, pool: set[str]) -> None:
        if name not in pool:
            problems.append(Problem(loc, f"unknown {kind} '{name}'{_did_you_mean(name, pool)}"))

    for m, mineral in cfg.minerals.items():
        for key in ("consumption_t_per_year", "initial_t", "fixed_cost_usd",
                    "max_acquisition_t", "min_days"):
            value = getattr(mineral, key)
            if isinstance(value, dict):
                for p in value:
                    known(p, ("minerals", m, key, p), "participant", parts)
    for i, arc in enumerate(cfg.lending):
        known(arc.from_, ("lending", i, "from"), "participant", parts)
        known(arc.to, ("lending", i, "to"), "participant", parts)
        if arc.from_ == arc.to:
            problems.append(Problem(("lending", i), "a participant cannot lend to itself"))
        for j, m in enumerate(arc.minerals or []):
            known(m, ("lending", i, "minerals", j), "mineral", set(cfg.minerals))
    arcs = [(a.from_, a.to) for a in cfg.lending]
    for i, pair in enumerate(arcs):
        if pair in arcs[:i]:
            problems.append(Problem(("lending", i), f"duplicate lending arc {pair[0]} -> {pair[1]}"))
    seen: set[str] = set()
    T = cfg.horizon.periods
    for i, sc in enumerate(cfg.scenarios):
        if sc.name in seen:
            problems.append(Problem(("scenarios", i, "name"), f"duplicate scenario name '{sc.name}'"))
        seen.add(sc.name)
        for j, shock in enumerate(sc.shocks):
            loc = ("scenarios", i, "shocks", j)
            known(shock.mineral, loc + ("mineral",), "mineral", set(cfg.minerals))
            if shock.start > T:
                problems.append(Problem(
                    loc + ("start",),
                    f"start {shock.start} is outside the horizon (periods 1..{T})",
                ))
            if isinstance(shock.loss, dict):
                for p in shock.loss:
                    known(p, loc + ("loss", p), "participant", parts)
    total = math.fsum(sc.probability for sc in cfg.scenarios)
    if abs(total - 1.0) > 1e-6:
        problems.append(Problem(("scenarios",), f"probabilities sum to {total:.9g}, expected 1 (within 1e-6)"))
    return problems


def _did_you_mean(word: str, pool: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(pool), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ----------------------------------------------------------------------------
# YAML loading: safe, YAML 1.2 numbers, no duplicate keys, no alias bombs


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when present: ~10x faster
    """SafeLoader that reads 1.5e9 as a float (YAML 1.2); duplicate keys are refused separately."""


_Loader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Node count with aliases expanded, memoised so a bomb is measured cheaply."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # guards against recursive aliases
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[key] = size
    return size


def _check_duplicates(node: yaml.Node, path: tuple, problems: list[Problem], seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            if name in keys:
                problems.append(Problem(path + (name,), f"duplicate key (first at line {keys[name]})",
                                        k.start_mark.line + 1))
            keys.setdefault(name, k.start_mark.line + 1)
            _check_duplicates(v, path + (name,), problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _check_duplicates(v, path + (i,), problems, seen)


@dataclass
class Document:
    """Parsed YAML with its node tree, so errors can point at a line."""

    data: Any
    node: yaml.Node | None
    source: str | None = None

    def line_of(self, loc: tuple) -> int | None:
        node, line = self.node, None
        for part in loc:
            if node is None:
                break
            line = node.start_mark.line + 1
            nxt = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                        nxt = v
                        line = k.start_mark.line + 1
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if 0 <= part < len(node.value):
                    nxt = node.value[part]
            elif isinstance(node, yaml.SequenceNode):
                for item in node.value:  # scenario addressed by name
                    if isinstance(item, yaml.MappingNode) and any(
                        k.value == "name" and getattr(v, "value", None) == part for k, v in item.value
                    ):
                        nxt = item
                        break
            node = nxt
        if node is not None:
            line = node.start_mark.line + 1
        return line


def max_config_bytes() -> int:
    try:
        mb = float(os.environ.get(MAX_CONFIG_BYTES_ENV, DEFAULT_MAX_CONFIG_MB))
    except ValueError:
        mb = DEFAULT_MAX_CONFIG_MB
    return int(mb * 1024 * 1024)


def _check_size(nbytes: int, source: str | None) -> None:
    limit = max_config_bytes()
    if nbytes > limit:
        raise ConfigError([Problem((), f"file is {nbytes / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB "
                                       f"limit (raise it with {MAX_CONFIG_BYTES_ENV})")], source)


def parse_yaml(text: str, source: str | None = None) -> Document:
    """Parse YAML safely: plain data only, YAML 1.2 floats, bounded alias expansion."""
    _check_size(len(text.encode()), source)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise ConfigError([Problem((), "YAML aliases expand to more than "
                                               f"{MAX_EXPANDED_NODES:,} nodes; refusing to load")], source)
            dups: list[Problem] = []
            _check_duplicates(node, (), dups, set())
            if dups:
                raise ConfigError(dups, source)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or str(exc)
        if "could not determine a constructor" in str(exc):
            what = "YAML tags that construct objects are not allowed (" + (exc.problem or "") + ")"
        raise ConfigError([Problem((), f"YAML syntax error: {what}", line)], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem((), f"YAML error: {exc}")], source) from None
    except RecursionError:
        raise ConfigError([Problem((), "YAML nesting is too deep")], source) from None
    finally:
        loader.dispose()
    return Document(data, node, source)


def read_yaml(path: str | Path) -> Document:
    """Read and parse a YAML file, with file-level problems as ConfigError."""
    path = Path(path)
    source = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ConfigError([Problem((), f"cannot read file: {exc.strerror}")], source) from None
    _check_size(size, source)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem((), f"cannot read file: {exc}")], source) from None
    return parse_yaml(text, source)


def parse_value(text: str) -> Any:
    """Parse an override's value the way the config file would read it."""
    return parse_yaml(text, "--set").data


# ----------------------------------------------------------------------------
# Overrides


def _step(container: Any, part: str, loc: tuple) -> tuple[Any, str | int]:
    """Resolve one dotted-key segment: a mapping key, a list index or a list item's name."""
    if isinstance(container, dict):
        return container, part
    if isinstance(container, list):
        if re.fullmatch(r"-?\d+", part):
            idx = int(part)
            if not -len(container) <= idx < len(container):
                raise ConfigError([Problem(loc + (part,), f"index {idx} is out of range "
                                                          f"(the list has {len(container)} items)")])
            return container, idx % len(container)
        names = [item.get("name") for item in container if isinstance(item, dict)]
        if part in names:
            return container, names.index(part)
        raise ConfigError([Problem(loc + (part,), f"no item named '{part}'"
                                                  f"{_did_you_mean(part, [n for n in names if n])}")])
    raise ConfigError([Problem(loc, f"cannot descend into a {type(container).__name__} with '{part}'")])


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set a dotted key in a raw config tree, creating mappings as needed."""
    parts = key.split(".")
    if not key or any(p == "" for p in parts):
        raise ConfigError([Problem((key,), "an override key must be dotted names like a.b.c")])
    node: Any = data
    loc: tuple = ()
    for part in parts[:-1]:
        holder, k = _step(node, part, loc)
        if isinstance(holder, dict) and (k not in holder or holder[k] is None):
            holder[k] = {}
        node = holder[k]
        loc += (k,)
    holder, k = _step(node, parts[-1], loc)
    holder[k] = value


def deep_merge(base: dict, fragment: dict) -> dict:
    """Merge a YAML fragment onto a config: mappings merge key by key, the rest replaces."""
    out = copy.deepcopy(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set_option(text: str) -> tuple[str, Any]:
    """Split a ``KEY=VALUE`` command-line override."""
    if "=" not in text:
        raise ConfigError([Problem((text,), "expected KEY=VALUE, e.g. participants.US.budget_usd=2e9")],
                          "--set")
    key, raw = text.split("=", 1)
    return key.strip(), parse_value(raw)


# ----------------------------------------------------------------------------
# Validation


def _model_at(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    """The schema model that holds the last key of loc, for did-you-mean hints."""
    ann: Any = root
    for part in loc[:-1]:
        ann = _unwrap(ann, part)
        if ann is None:
            return None
    ann = _pick_model(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _pick_model(ann: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(ann):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return ann


def _unwrap(ann: Any, part: Any) -> Any:
    ann = _pick_model(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        by_alias = {(f.alias or n): f for n, f in ann.model_fields.items()}
        f = by_alias.get(part)
        return f.annotation if f else None
    origin = typing.get_origin(ann)
    if origin is dict:
        return typing.get_args(ann)[1]
    if origin is list:
        return typing.get_args(ann)[0]
    return None


def _explain(err: dict, root: type[BaseModel]) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(tuple(err["loc"]), root)
        hint = ""
        if model is not None:
            names = [(f.alias or n) for n, f in model.model_fields.items()]
            hint = _did_you_mean(err["loc"][-1], names) or f" (expected one of: {', '.join(names)})"
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg[0].lower() + msg[1:]}, got {shown}"


_BRANCH = re.compile(r"^(float|int|str|bool|list|dict|none|union|constrained-\w+|function-\w+|literal)(\[.*\])?$")


def _simplify(errors: list[dict]) -> list[dict]:
    """Fold the branches of scalar-or-mapping fields into one error per key path.

    pydantic reports a failed ``Union[float, dict]`` once per branch, tagging the
    location with the branch type; the user wrote one value, so keep one message:
    the mapping branch's when they wrote a mapping, the scalar's otherwise.
    """
    out: dict[tuple, dict] = {}
    for err in errors:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _BRANCH.match(p)))
        err = {**err, "loc": loc}
        kept = out.get(loc)
        # the mapping branch's "not a dict" yields to any other complaint at the same key
        if kept is None or (kept["type"] == "dict_type" and err["type"] != "dict_type"):
            out[loc] = err
    # a mapping written where the scalar branch failed: drop the scalar branch's complaint
    for loc in [k for k, e in out.items() if e["type"] in ("float_type", "float_parsing")]:
        if any(other[: len(loc)] == loc and other != loc for other in out):
            del out[loc]
    return list(out.values())


def problems_from(exc: ValidationError, doc: Document | None = None,
                  root: type[BaseModel] | None = None) -> list[Problem]:
    """pydantic's errors as Problems with key paths (and lines, given the parsed document)."""
    problems = [Problem(tuple(e["loc"]), _explain(e, root or Config)) for e in _simplify(exc.errors())]
    if doc is not None:
        for p in problems:
            p.line = doc.line_of(p.loc)
    return problems


def validate(data: Any, source: str | None = None, doc: Document | None = None) -> Config:
    """Validate a raw config tree; raise ConfigError listing every problem found."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError([Problem((), f"expected a mapping of config keys, got {got}")], source)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, doc), source) from None
    problems = cross_check(cfg)
    if problems:
        if doc is not None:
            for p in problems:
                p.line = doc.line_of(p.loc)
        raise ConfigError(problems, source)
    return cfg


def apply_overrides(data: dict, overrides: typing.Iterable[tuple[str, Any]], source: str = "--set") -> dict:
    """Apply dotted-key overrides in order to a copy of a raw config tree."""
    out = copy.deepcopy(data)
    for key, value in overrides:
        try:
            set_dotted(out, key, value)
        except ConfigError as exc:
            raise ConfigError(exc.problems, f"{source} {key}") from None
    return out


def load_config(path: str | Path, overrides: typing.Iterable[tuple[str, Any]] = ()) -> Config:
    """Read, override and validate a config file: the API's entry point."""
    doc = read_yaml(path)
    data = doc.data
    overrides = list(overrides)
    if overrides and isinstance(data, dict):
        data = apply_overrides(data, overrides)
    cfg = validate(data, doc.source, doc)
    cfg._provenance = {"source": doc.source, "overrides": [[k, v] for k, v in overrides]}
    return cfg
