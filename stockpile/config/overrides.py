"""Dotted-key overrides and fragment merging, applied to the raw YAML tree before validation.

Order of precedence, lowest first:

1. the config file;
2. a study case's ``set_file`` fragment (deep-merged), then its ``sweep`` values
   and ``set`` overrides;
3. ``--set KEY=VALUE`` on the command line, in the order given;
4. the dedicated CLI flags (``--solver``, ``--method``, ``--time-limit``,
   ``--gap``, ``--threads``).
"""

from __future__ import annotations

import copy
import re
import typing
from typing import Any

from stockpile.config.loader import parse_yaml
from stockpile.errors import ConfigError, Problem, did_you_mean
from stockpile.jsontypes import JSON, Loc


def parse_value(text: str) -> Any:
    """Parse an override's value the way the config file would read it."""
    return parse_yaml(text, "--set").data


def _step(container: Any, part: str, loc: Loc) -> tuple[Any, str | int]:
    """Resolve one dotted-key segment: a mapping key, a list index or a list item's name."""
    if isinstance(container, dict):
        return container, part
    if isinstance(container, list):
        if re.fullmatch(r"-?\d+", part):
            idx = int(part)
            if not -len(container) <= idx < len(container):
                raise ConfigError(
                    [Problem(loc + (part,), f"index {idx} is out of range (the list has {len(container)} items)")]
                )
            return container, idx % len(container)
        names = [item.get("name") for item in container if isinstance(item, dict)]
        if part in names:
            return container, names.index(part)
        raise ConfigError(
            [Problem(loc + (part,), f"no item named '{part}'{did_you_mean(part, [n for n in names if n])}")]
        )
    raise ConfigError([Problem(loc, f"cannot descend into a {type(container).__name__} with '{part}'")])


def set_dotted(data: JSON, key: str, value: Any) -> Loc:
    """Set a dotted key in a raw config tree, creating mappings as needed; the key path it resolved to
    (list items named by index), so problems with the value can be traced back to the override."""
    parts = key.split(".")
    if not key or any(p == "" for p in parts):
        raise ConfigError([Problem((key,), "an override key must be dotted names like a.b.c")])
    node: Any = data
    loc: Loc = ()
    for part in parts[:-1]:
        holder, k = _step(node, part, loc)
        if isinstance(holder, dict) and (k not in holder or holder[k] is None):
            holder[k] = {}
        node = holder[k]
        loc += (k,)
    holder, k = _step(node, parts[-1], loc)
    holder[k] = value
    return loc + (k,)


def deep_merge(base: JSON, fragment: JSON) -> JSON:
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
        raise ConfigError([Problem((text,), "expected KEY=VALUE, e.g. participants.US.budget_usd=2e9")], "--set")
    key, raw = text.split("=", 1)
    return key.strip(), parse_value(raw)


def apply_overrides(
    data: JSON,
    overrides: typing.Iterable[tuple[str, Any]],
    source: str = "--set",
    origins: dict[Loc, str] | None = None,
) -> JSON:
    """Apply dotted-key overrides in order to a copy of a raw config tree.

    origins, when given, collects the key path each override set and where it came from
    (e.g. ``--set participants.US.budget``), so validation blames the override, not a file line.
    """
    out = copy.deepcopy(data)
    for key, value in overrides:
        try:
            loc = set_dotted(out, key, value)
        except ConfigError as exc:
            raise ConfigError(exc.problems, f"{source} {key}") from None
        if origins is not None:
            origins[loc] = f"{source} {key}"
    return out
