"""Scenarios drawn from supplier shares and supply events (``scenarios: {sample: {count, seed}}``).

Each of the N equally likely scenarios is one year of the horizon. Every event occurs or
not (its ``annual_probability``; an event named in another's ``correlated_with`` occurs
with the conditional probability q where that one occurred, and with the
marginal-preserving (p - q p_A) / (1 - p_A) elsewhere), with a duration drawn from its
triangular distribution (rounded to whole periods, at least 1), a severity drawn
uniformly and a start period drawn uniformly over the horizon. An active event cuts
share(supplier, m, p) x severity of participant p's supply of each of its minerals m
from its start for its duration; overlapping cuts add and are capped at 1 when the
instance is built. A year with no event is a calm scenario.

All draws come from one ``numpy.random.Generator(PCG64(seed))`` in a fixed order and
shape (N x events), whatever occurs, so a sample is byte-reproducible from its seed.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from stockpile.config.schema import TINY, Config, Event, Scenario, Shock
from stockpile.errors import Problem, did_you_mean

CALM = "calm"


def event_order(events: list[Event]) -> list[int]:
    """Events in draw order: an event after the one it is correlated with (checked acyclic)."""
    index = {e.name: i for i, e in enumerate(events)}
    parent = {index[e.correlated_with.event]: i for i, e in enumerate(events) if e.correlated_with}
    order: list[int] = []
    for i in range(len(events)):
        chain = []
        j: int | None = i
        while j is not None and j not in order and j not in chain:
            chain.append(j)
            j = parent.get(j)
        order.extend(reversed(chain))
    return order


def conditional(events: list[Event]) -> dict[int, tuple[int, float, float]]:
    """Each event named in another's correlated_with: that event i, and its probability q where i
    occurred and the marginal-preserving rest (p - q p_i) / (1 - p_i) where it did not."""
    index = {e.name: i for i, e in enumerate(events)}
    out = {}
    for i, e in enumerate(events):
        if e.correlated_with:
            j, q, p_i = index[e.correlated_with.event], e.correlated_with.probability, e.annual_probability
            p = events[j].annual_probability
            out[j] = (i, q, (p - q * p_i) / (1.0 - p_i) if p_i < 1 else 0.0)
    return out


def occurrence(events: list[Event], u: np.ndarray) -> np.ndarray:
    """(N, E) booleans from (N, E) uniforms, with the correlations of each event."""
    given = conditional(events)
    occurs = np.zeros(u.shape, dtype=bool)
    for j in event_order(events):
        if j in given:
            i, q, rest = given[j]
            occurs[:, j] = u[:, j] < np.where(occurs[:, i], q, rest)
        else:
            occurs[:, j] = u[:, j] < events[j].annual_probability
    return occurs


@lru_cache(maxsize=4)
def _draws(events_json: tuple[str, ...], T: int, count: int, seed: int) -> tuple[np.ndarray, ...]:
    """Occurrence, duration, severity and start of every (scenario, event): the whole sample's draws, kept for the chunks of the same sample a worker builds one after
    another."""
    events = [Event.model_validate_json(e) for e in events_json]
    rng = np.random.Generator(np.random.PCG64(seed))
    shape = (count, len(events))
    u = rng.random(shape)
    lo = np.array([e.duration_periods.min for e in events])
    mode = np.array([e.duration_periods.mode for e in events])
    hi = np.array([e.duration_periods.max for e in events])
    # numpy's triangular needs left < right: a fixed duration is drawn as itself
    span = np.where(hi > lo, hi, lo + 1.0)
    raw = rng.triangular(np.broadcast_to(lo, shape), np.broadcast_to(mode, shape), np.broadcast_to(span, shape))
    duration = np.maximum(1, np.rint(np.where(hi > lo, raw, lo))).astype(np.int64)
    severity = rng.uniform(
        np.broadcast_to([e.severity.min for e in events], shape),
        np.broadcast_to([e.severity.max for e in events], shape),
    )
    start = rng.integers(1, T + 1, size=shape)
    return occurrence(events, u), duration, severity, start


def sample_scenarios(cfg: Config, count: int, seed: int, part: range | None = None) -> list[Scenario]:
    """N equally likely scenarios drawn from cfg.events and cfg.suppliers (module docstring);
    part: only these scenarios of the sample (the draws are the whole sample's, so a worker can
    build its chunk of a large sample and get exactly the scenarios the whole draw has). Each is
    one year's outcome; every year the stock protects faces the whole sample."""
    events = cfg.events
    occurs, duration, severity, start = _draws(
        tuple(e.model_dump_json() for e in events), cfg.horizon.periods, count, seed
    )
    width = len(str(count))
    prob = 1.0 / count
    out = []
    for n in range(count) if part is None else part:
        shocks = []
        names = []
        for e in np.nonzero(occurs[n])[0]:
            names.append(events[e].name)
            shocks += event_shocks(cfg, events[e], int(start[n, e]), int(duration[n, e]), float(severity[n, e]))
        name = f"s{n + 1:0{width}d}_" + ("_and_".join(names) if names else CALM)
        out.append(Scenario(name=name[:100], probability=prob, shocks=shocks))
    return out


def event_shocks(cfg: Config, event: Event, start: int, periods: int, severity: float) -> list[Shock]:
    """The shocks of one event: share(supplier, m, p) x severity of every participant's supply of
    each of its minerals, every participant named (0 where the supplier serves it nothing: a config's
    shock gives every participant its loss, and config.resolved.yaml is read back by the commands
    that take a run)."""
    parts = list(cfg.participants)
    out = []
    for m in event.minerals:
        value = cfg.suppliers.get(event.supplier, {}).get(m)
        shares = cfg.per_participant(value, 0.0) if value is not None else [0.0] * len(parts)
        loss = {p: v if v >= TINY else 0.0 for p, v in zip(parts, (float(s * severity) for s in shares))}
        if any(loss.values()):
            out.append(Shock(mineral=m, start=start, periods=periods, loss=loss))
    return out


def enumerate_scenarios(cfg: Config) -> list[Scenario]:
    """``scenarios: enumerate``: every combination of cfg.events occurring or not in a year, with its
    exact probability (independent events; a correlated one with its conditional probability where
    its event occurs and the marginal-preserving rest elsewhere, as in sampling), each event at its
    modal duration (rounded to whole periods, at least 1) and mean severity from period 1.
    The same events as a sample, so a sampled config and an enumerated one agree on the risk;
    the sample adds the spread of durations, severities and starts. Combinations of probability 0
    are left out; 2^E scenarios at most."""
    events = cfg.events
    E = len(events)
    combos = (np.arange(2**E)[:, None] >> np.arange(E)[None, :]) & 1 == 1  # (2^E, E): which occur
    given = conditional(events)
    prob = np.ones(len(combos))
    for j, ev in enumerate(events):
        p = np.full(len(combos), ev.annual_probability)
        if j in given:
            i, q, rest = given[j]
            p = np.where(combos[:, i], q, rest)
        prob *= np.where(combos[:, j], p, 1.0 - p)
    out = []
    for k in np.argsort(-prob, kind="stable"):  # likeliest first (calm among them)
        if prob[k] <= 0:
            continue
        names = [events[j].name for j in np.nonzero(combos[k])[0]]
        shocks = [
            shock
            for j in np.nonzero(combos[k])[0]
            for shock in event_shocks(
                cfg,
                events[j],
                1,
                max(1, round(events[j].duration_periods.mode)),
                (events[j].severity.min + events[j].severity.max) / 2,
            )
        ]
        out.append(
            Scenario(name=("_and_".join(names) if names else CALM)[:100], probability=float(prob[k]), shocks=shocks)
        )
    total = sum(sc.probability for sc in out)
    out[0] = out[0].model_copy(update={"probability": out[0].probability + 1.0 - total})  # sum to 1 in floating point
    return out


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def check_sampling(data: dict[str, Any]) -> list[Problem]:
    """References and arithmetic of suppliers and events, on the raw tree (like cross_check): unknown
    minerals, participants, suppliers and events; shares summing over 1; correlations that are
    self-referent, cyclic, doubled on one event or that cannot keep the other event's probability."""
    problems: list[Problem] = []
    suppliers, minerals = _mapping(data.get("suppliers")), _mapping(data.get("minerals"))
    raw_parts = data.get("participants")
    parts = [str(p) for p in raw_parts] if isinstance(raw_parts, (dict, list)) else []
    totals: dict[tuple[str, str], float] = {}
    for supplier, per in suppliers.items():
        for m, value in _mapping(per).items():
            if minerals and m not in minerals:
                problems.append(
                    Problem(("suppliers", supplier, m), f"unknown mineral '{m}'{did_you_mean(m, minerals)}")
                )
            for p, v in (value if isinstance(value, dict) else dict.fromkeys(parts, value)).items():
                x = _number(v)
                if parts and p not in parts:
                    problems.append(
                        Problem(("suppliers", supplier, m, p), f"unknown participant '{p}'{did_you_mean(p, parts)}")
                    )
                elif x is not None:
                    totals[(p, m)] = totals.get((p, m), 0.0) + x
    for (p, m), total in totals.items():
        if total > 1.0 + 1e-9:
            problems.append(
                Problem(("suppliers",), f"{p}'s supply shares of {m} sum to {total:.6g}; expected at most 1")
            )
    events = (
        [e if isinstance(e, dict) else {} for e in (data.get("events") or [])]
        if isinstance(data.get("events"), list)
        else []
    )
    prob = {str(e.get("name")): _number(e.get("annual_probability")) for e in events}
    seen: set[str] = set()
    parent: dict[str, str] = {}  # correlated event -> the event it is conditioned on
    for i, e in enumerate(events):
        name = str(e.get("name"))
        if name in seen:
            problems.append(Problem(("events", i, "name"), f"duplicate event name '{name}'"))
        seen.add(name)
        if e.get("supplier") is not None and e.get("supplier") not in suppliers:
            problems.append(
                Problem(
                    ("events", i, "supplier"),
                    f"unknown supplier '{e.get('supplier')}'{did_you_mean(str(e.get('supplier')), suppliers) or ' (not in suppliers)'}",
                )
            )
        listed = e.get("minerals")
        for j, m in enumerate(listed if isinstance(listed, list) else []):
            if minerals and m not in minerals:
                problems.append(
                    Problem(("events", i, "minerals", j), f"unknown mineral '{m}'{did_you_mean(m, minerals)}")
                )
        corr = _mapping(e.get("correlated_with"))
        if not corr:
            continue
        loc = ("events", i, "correlated_with")
        other = str(corr.get("event"))
        if other not in prob:
            problems.append(Problem(loc + ("event",), f"unknown event '{other}'{did_you_mean(other, prob)}"))
        elif other == name:
            problems.append(Problem(loc + ("event",), "an event cannot be correlated with itself"))
        elif other in parent:
            problems.append(Problem(loc + ("event",), f"'{other}' is already correlated with '{parent[other]}'"))
        else:
            parent[other] = name
            p_a, p_b, q = prob.get(name), prob[other], _number(corr.get("probability"))
            if p_a is not None and p_b is not None and q is not None and p_a < 1:
                rest = (p_b - q * p_a) / (1 - p_a)
                if not -1e-12 <= rest <= 1 + 1e-12:
                    problems.append(
                        Problem(
                            loc + ("probability",),
                            f"P({other} | {name}) = {q:g} cannot keep {other}'s annual_probability {p_b:g}: "
                            f"{other} would need probability {rest:.4g} in the years without {name}",
                        )
                    )
    for start in parent:  # a cycle of correlations has no draw order
        visited, node = set(), start
        while node in parent and node not in visited:
            visited.add(node)
            node = parent[node]
        if node == start:
            problems.append(Problem(("events",), f"the correlations form a cycle through '{start}'"))
            break
    if isinstance(data.get("scenarios"), dict) and not events:
        problems.append(Problem(("scenarios", "sample"), "sampling needs `events` (and `suppliers`) in the config"))
    elif data.get("scenarios") == "enumerate" and not events:
        problems.append(Problem(("scenarios",), "enumerate needs `events` (and `suppliers`) in the config"))
    return problems
