"""Validation: a raw YAML tree -> :class:`Config`, with every problem found in one pass.

pydantic checks each field; :func:`cross_check` checks the references between them
(participants, minerals, arcs, scenario names, the horizon, probabilities) on the
raw tree, so a misspelt key and an unknown mineral are reported together. A
problem in a value that an override set is blamed on the override, not on a line
of the file.
"""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from stockpile.config.loader import Document, read_yaml
from stockpile.config.overrides import apply_overrides
from stockpile.config.sampling import check_sampling, enumerate_scenarios, sample_scenarios
from stockpile.config.schema import (
    PER_PARTICIPANT_KEYS,
    YEARLY_MINERAL_KEYS,
    YEARLY_PARTICIPANT_KEYS,
    Config,
    Horizon,
    ScenarioSample,
)
from stockpile.errors import ConfigError, Problem, did_you_mean
from stockpile.jsontypes import JSON, Loc


def _model_at(loc: Loc, root: type[BaseModel]) -> type[BaseModel] | None:
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


def _explain(err: JSON, root: type[BaseModel]) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        model = _model_at(tuple(err["loc"]), root)
        hint = ""
        if model is not None:
            names = [(f.alias or n) for n, f in model.model_fields.items()]
            hint = did_you_mean(err["loc"][-1], names) or f" (expected one of: {', '.join(names)})"
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}"
    if kind == "value_error":
        return str(msg.removeprefix("Value error, "))
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{msg[0].lower() + msg[1:]}, got {shown}"


# schema models that appear as one branch of a union: pydantic tags the location with their name
MODEL_TAGS = {"ScenarioSample", "FromRun"}
_BRANCH = re.compile(r"^(float|int|str|bool|list|dict|none|union|constrained-\w+|function-\w+|literal)(\[.*\])?$")


def _simplify(errors: list[Any]) -> list[JSON]:
    """Fold the branches of scalar-or-mapping fields into one error per key path.

    pydantic reports a failed ``Union[float, dict]`` once per branch, tagging the
    location with the branch type; the user wrote one value, so keep one message:
    the mapping branch's when they wrote a mapping, the scalar's otherwise.
    """
    out: dict[Loc, JSON] = {}
    # a list-or-model field (scenarios: a list, or {sample: ...}): keep the branch the user wrote
    model_branch = {
        tuple(e["loc"][: e["loc"].index(m)])
        for e in errors
        for m in MODEL_TAGS
        if m in e["loc"] and e["type"] != "model_type"
    }
    # a model branch whose required key is missing was not the form the user wrote (inventory given
    # as tonnes, not {from_run: ...}): its complaints would only confuse
    unwritten = {
        tuple(e["loc"][: e["loc"].index(m) + 1])
        for e in errors
        for m in MODEL_TAGS
        if m in e["loc"] and e["type"] == "missing" and len(e["loc"]) == e["loc"].index(m) + 2
    }
    for err in errors:
        tags = [p for p in err["loc"] if p in MODEL_TAGS]
        if tags and err["type"] == "model_type":
            continue  # the user wrote the list form
        if (
            tags
            and tuple(err["loc"][: err["loc"].index(tags[0]) + 1]) in unwritten
            and any(
                e["loc"][: err["loc"].index(tags[0])] == err["loc"][: err["loc"].index(tags[0])]
                and tags[0] not in e["loc"]
                for e in errors
            )
        ):
            continue
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (_BRANCH.match(p) or p in MODEL_TAGS)))
        if err["type"] == "list_type" and loc in model_branch:
            continue  # the user wrote the mapping form
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


def problems_from(
    exc: ValidationError, doc: Document | None = None, root: type[BaseModel] | None = None
) -> list[Problem]:
    """pydantic's errors as Problems with key paths (and lines, given the parsed document)."""
    problems = [Problem(tuple(e["loc"]), _explain(e, root or Config)) for e in _simplify(exc.errors())]
    if doc is not None:
        for p in problems:
            p.line = doc.line_of(p.loc)
    return problems


def cross_check(data: JSON) -> list[Problem]:
    """References between fields, on the raw tree: they are checked even when some field is malformed.

    Unknown participants and minerals, self and duplicate lending arcs, duplicate scenario
    names, shocks starting past the horizon, a loss map that leaves a participant out,
    probabilities not summing to 1.
    """
    problems: list[Problem] = []
    raw_parts = data.get("participants")
    parts: set[str] | None = None
    if isinstance(raw_parts, (dict, list)) and all(isinstance(p, str) for p in raw_parts):
        parts = set(raw_parts)
    raw_minerals = data.get("minerals")
    minerals: JSON = raw_minerals if isinstance(raw_minerals, dict) else {}
    mins = set(minerals)

    def known(name: Any, loc: Loc, kind: str, pool: set[str] | None) -> None:
        if pool is not None and isinstance(name, str) and name not in pool:
            problems.append(Problem(loc, f"unknown {kind} '{name}'{did_you_mean(name, pool)}"))

    def items(value: Any) -> list[Any]:
        return list(value) if isinstance(value, list) else []

    for m, spec in minerals.items():
        for key in PER_PARTICIPANT_KEYS:
            value = spec.get(key) if isinstance(spec, dict) else None
            if isinstance(value, dict):
                for p in value:
                    known(p, ("minerals", m, key, p), "participant", parts)
        for key in ("shortfall_cost_usd_per_t", "damage"):  # a mapping of curves names every participant
            value = spec.get(key) if isinstance(spec, dict) else None
            if isinstance(value, dict) and not (key == "damage" and "elasticity" in value):
                for p in value:
                    known(p, ("minerals", m, key, p), "participant", parts)
                missing = sorted((parts or set()) - set(value))
                if missing:
                    problems.append(
                        Problem(
                            ("minerals", m, key),
                            f"no damage for {', '.join(missing)}: a mapping gives every participant its curve "
                            "(or give one for all)",
                        )
                    )
    arcs = []
    for i, arc in enumerate(items(data.get("lending"))):
        if not isinstance(arc, dict):
            continue
        known(arc.get("from"), ("lending", i, "from"), "participant", parts)
        known(arc.get("to"), ("lending", i, "to"), "participant", parts)
        if arc.get("from") is not None and arc.get("from") == arc.get("to"):
            problems.append(Problem(("lending", i), "a participant cannot lend to itself"))
        for j, m in enumerate(items(arc.get("minerals"))):
            known(m, ("lending", i, "minerals", j), "mineral", mins)
        pair = (arc.get("from"), arc.get("to"))
        if pair in arcs:
            problems.append(Problem(("lending", i), f"duplicate lending arc {pair[0]} -> {pair[1]}"))
        arcs.append(pair)
    horizon = data.get("horizon")
    T = horizon.get("periods") if isinstance(horizon, dict) else None
    problems += _yearly_lengths(data, minerals)
    seen: set[str] = set()
    probabilities = []
    for i, sc in enumerate(items(data.get("scenarios"))):
        if not isinstance(sc, dict):
            continue
        name = sc.get("name")
        if isinstance(name, str):
            if name in seen:
                problems.append(Problem(("scenarios", i, "name"), f"duplicate scenario name '{name}'"))
            seen.add(name)
        probabilities.append(sc.get("probability"))
        for j, shock in enumerate(items(sc.get("shocks"))):
            if not isinstance(shock, dict):
                continue
            loc = ("scenarios", i, "shocks", j)
            known(shock.get("mineral"), loc + ("mineral",), "mineral", mins)
            start = shock.get("start")
            if isinstance(T, int) and isinstance(start, int) and start > T >= 1:
                problems.append(Problem(loc + ("start",), f"start {start} is outside the horizon (periods 1..{T})"))
            if isinstance(shock.get("loss"), dict):
                for p in shock["loss"]:
                    known(p, loc + ("loss", p), "participant", parts)
                missing = sorted((parts or set()) - set(shock["loss"]))
                if missing:  # a participant left out would silently go undisrupted
                    problems.append(
                        Problem(
                            loc + ("loss",),
                            f"no loss for {', '.join(missing)}: give every participant its share lost "
                            "(0 where it is not cut), or one number for all",
                        )
                    )
    names: set[Any] = set()
    for i, pr in enumerate(items(data.get("projects"))):
        if not isinstance(pr, dict):
            continue
        known(pr.get("mineral"), ("projects", i, "mineral"), "mineral", mins)
        if pr.get("name") in names:
            problems.append(Problem(("projects", i, "name"), f"duplicate project name '{pr.get('name')}'"))
        names.add(pr.get("name"))
    if data.get("allocation") in ("days", "prorata") and (_years(data) or 1) > 1:
        problems.append(
            Problem(
                ("allocation",),
                f"allocation {data['allocation']} fixes one holding and does not say in which year to buy it: over "
                "a build-up (horizon.years > 1) use optimised or alone",
            )
        )
    numbers: list[float] = [float(p) for p in probabilities if isinstance(p, (int, float))]
    if probabilities and all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) for p in probabilities
    ):
        total = math.fsum(numbers)
        if abs(total - 1.0) > 1e-6:
            problems.append(Problem(("scenarios",), f"probabilities sum to {total:.9g}, expected 1 (within 1e-6)"))
    return problems


def _years(data: JSON) -> int | None:
    """horizon.years as written (default 1), or None when it cannot be known: not an integer, or a
    horizon key is misspelt (`yeras: 5` would otherwise judge every yearly list against 1 year)."""
    horizon = data.get("horizon")
    if not isinstance(horizon, dict):
        return 1
    if set(horizon) - {(f.alias or n) for n, f in Horizon.model_fields.items()}:
        return None
    years = horizon.get("years", 1)
    return years if isinstance(years, int) and not isinstance(years, bool) else None


def _yearly_lengths(data: JSON, minerals: JSON) -> list[Problem]:
    """A yearly figure given as a list needs one value per build-up year (horizon.years)."""
    Y = _years(data)
    if Y is None:
        return []
    found: list[tuple[Loc, Any]] = []
    parts = data.get("participants")
    for p, spec in parts.items() if isinstance(parts, dict) else []:
        for key in YEARLY_PARTICIPANT_KEYS:
            found.append((("participants", p, key), spec.get(key) if isinstance(spec, dict) else None))
    for m, spec in minerals.items():
        if not isinstance(spec, dict):
            continue
        for key in YEARLY_MINERAL_KEYS:
            value = spec.get(key)
            pairs = value.items() if isinstance(value, dict) else [(None, value)]
            found += [(("minerals", m, key) + ((p,) if p is not None else ()), v) for p, v in pairs]
    return [
        Problem(
            loc,
            f"{len(v)} values for {Y} year{'s' * (Y != 1)} (horizon.years): give one per year, or one number "
            "for every year",
        )
        for loc, v in found
        if isinstance(v, list) and len(v) != Y
    ]


def validate(
    data: Any,
    source: str | None = None,
    doc: Document | None = None,
    origins: dict[Loc, str | Document] | None = None,
) -> Config:
    """Validate a raw config tree; raise ConfigError listing every problem found.

    origins: key paths set by overrides, and by which (see apply_overrides).
    """
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError([Problem((), f"expected a mapping of config keys, got {got}")], source)
    problems: list[Problem] = []
    cfg = None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = problems_from(exc)
    known = {p.loc for p in problems}
    problems += [p for p in cross_check(data) + check_sampling(data) if p.loc not in known]
    if not problems:
        assert cfg is not None
        if isinstance(cfg.scenarios, ScenarioSample):
            spec = cfg.scenarios.sample
            cfg.scenarios = sample_scenarios(cfg, spec.count, spec.seed)
            cfg._provenance = {"sampled": {"count": spec.count, "seed": spec.seed}}
        elif cfg.scenarios == "enumerate":
            cfg.scenarios = enumerate_scenarios(cfg)
        return cfg
    for p in problems:
        origin = next((o for loc, o in (origins or {}).items() if p.loc[: len(loc)] == loc), None)
        if isinstance(origin, Document):  # the value came from a base file: name it and its line
            line = origin.line_of(p.loc)
            p.source = f"{origin.source}{'' if line is None else f':{line}'}"
        elif origin is not None:
            p.source = origin
        elif doc is not None:
            p.line = doc.line_of(p.loc)
    problems.sort(key=lambda p: (p.source is not None, p.line if p.line is not None else 0))
    raise ConfigError(problems, source)


BASE_KEY = "base"


def _merge(under: Any, over: Any, loc: Loc, origins: dict[Loc, str | Document], doc: Document) -> Any:
    """over on top of under: mappings key by key, anything else replaced whole; each leaf over sets
    is recorded in origins as coming from doc."""
    out = dict(under)
    for key, value in over.items():
        if isinstance(value, dict) and (key not in out or isinstance(out[key], dict)):
            out[key] = _merge(out.get(key, {}), value, (*loc, key), origins, doc)
        else:
            out[key] = value
            origins[(*loc, key)] = doc
    return out


def with_bases(doc: Document, seen: tuple[Path, ...] = ()) -> tuple[Any, dict[Loc, str | Document]]:
    """A config with its `base:` files under it (docs/config.md, "Shared data: base"): each base
    (a path relative to the file naming it, or a list of them, later ones over earlier) is read
    first, the file's own keys go over it, mapping by mapping. Precedence, lowest first: the bases,
    the config, --set overrides (and a study's case overrides). Bases may have bases; a cycle is an error."""
    data = doc.data
    if not isinstance(data, dict) or BASE_KEY not in data:
        return data, {}
    names = data[BASE_KEY]
    names = [names] if isinstance(names, str) else names
    here = Path(doc.source or ".").resolve()
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError([Problem((BASE_KEY,), "expected a file name or a list of file names")], doc.source)
    merged: Any = {}
    origins: dict[Loc, str | Document] = {}
    for name in names:
        path = (here.parent / name).resolve()
        if path in (*seen, here):
            raise ConfigError([Problem((BASE_KEY,), f"{name} is a base of itself (a cycle of base files)")], doc.source)
        if not path.is_file():
            raise ConfigError([Problem((BASE_KEY,), f"no base file {name} next to {here.name}")], doc.source)
        base = read_yaml(path)
        base_data, base_origins = with_bases(base, (*seen, here))
        if not isinstance(base_data, dict):
            raise ConfigError([Problem((), "expected a mapping of config keys")], base.source)
        merged = _merge(merged, base_data, (), origins, base)
        origins.update({k: v for k, v in base_origins.items() if k not in origins})
    own = {k: v for k, v in data.items() if k != BASE_KEY}
    merged = _merge(merged, own, (), {}, doc)
    # a key the config sets itself is no longer the base's
    return merged, {loc: o for loc, o in origins.items() if not _set_by(own, loc)}


def _set_by(data: Any, loc: Loc) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def load_config(path: str | Path, overrides: typing.Iterable[tuple[str, Any]] = ()) -> Config:
    """Read, override and validate a config file: the API's entry point."""
    doc = read_yaml(path)
    data, origins = with_bases(doc)
    overrides = list(overrides)
    if overrides and isinstance(data, dict):
        marks: dict[Loc, str] = {}
        data = apply_overrides(data, overrides, origins=marks)
        origins = {**marks, **{k: v for k, v in origins.items() if k not in marks}}
    cfg = validate(data, doc.source, doc, origins)
    cfg._provenance = {**cfg.provenance, "source": doc.source, "overrides": [[k, v] for k, v in overrides]}
    return cfg
