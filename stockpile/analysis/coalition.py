"""Coalition values and cost sharing (``stockpile coalition``).

Every coalition S of participants is solved as its own model: members keep their
own budgets, limits, shocks and costs, and lend to each other only on the
config's arcs between members. With v(S) its optimal expected cost:

* value of cooperation = sum_i v({i}) - v(N);
* Shapley share  phi_i = sum_{S not containing i} |S|! (n - |S| - 1)! / n! * (v(S + i) - v(S)),
  with v(empty) = 0; the shares add up to v(N);
* the split is in the core when no coalition pays more than on its own:
  sum_{i in S} phi_i <= v(S) for every S.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pandas as pd

from stockpile.analysis.runner import Case
from stockpile.config import PER_PARTICIPANT_KEYS, Config, ConfigError, Problem, validate
from stockpile.enums import has_plan
from stockpile.jsontypes import JSON

MAX_PARTICIPANTS = 4
SHARES_COLUMNS = ["participant", "standalone_usd", "shapley_usd", "spending_usd", "in_core", "transfer_usd"]
CORE_TOLERANCE = 1e-6


def restrict(resolved: dict[str, Any], members: tuple[str, ...]) -> dict[str, Any]:
    """The resolved config seen by a coalition: its members, their data, arcs among them."""
    keep = set(members)
    out = {**resolved, "name": f"{resolved['name']}-{'_'.join(members)}"}
    out["participants"] = {p: v for p, v in resolved["participants"].items() if p in keep}
    out["minerals"] = {
        m: {
            k: ({p: x for p, x in v.items() if p in keep} if k in PER_PARTICIPANT_KEYS and isinstance(v, dict) else v)
            for k, v in spec.items()
        }
        for m, spec in resolved["minerals"].items()
    }
    out["lending"] = [a for a in resolved["lending"] if a["from"] in keep and a["to"] in keep]
    out["suppliers"] = {
        k: {m: ({p: x for p, x in v.items() if p in keep} if isinstance(v, dict) else v) for m, v in per.items()}
        for k, per in resolved.get("suppliers", {}).items()
    }
    out["scenarios"] = [
        {
            **sc,
            "shocks": [
                {
                    **sh,
                    "loss": {p: x for p, x in sh["loss"].items() if p in keep}
                    if isinstance(sh["loss"], dict)
                    else sh["loss"],
                }
                for sh in sc["shocks"]
            ],
        }
        for sc in resolved["scenarios"]
    ]
    return out


def coalitions(participants: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every non-empty subset, in config order, smallest first."""
    return [c for k in range(1, len(participants) + 1) for c in itertools.combinations(participants, k)]


def coalition_cases(cfg: Config) -> list[Case]:
    """One case per coalition (name: members joined by '+'), each with one solver thread."""
    parts = tuple(cfg.participants)
    if len(parts) > MAX_PARTICIPANTS:
        raise ConfigError(
            [
                Problem(
                    ("participants",),
                    f"{len(parts)} participants: coalition analysis takes at most {MAX_PARTICIPANTS} (2^n - 1 models)",
                )
            ]
        )
    resolved = cfg.resolved_dict()
    resolved["solver"] = {**resolved["solver"], "threads": 1}
    cases = []
    for members in coalitions(parts):
        sub = validate(restrict(resolved, members), f"coalition {'+'.join(members)}")
        sub._provenance = {**cfg.provenance, "coalition": list(members)}
        cases.append(Case("+".join(members), {}, sub))
    return cases


def shapley(value: dict[frozenset[str], float], players: tuple[str, ...]) -> dict[str, float]:
    """Shapley value of a cost game given v on every non-empty coalition."""
    n = len(players)
    v = dict(value)
    v[frozenset()] = 0.0
    out = {}
    for i in players:
        others = [p for p in players if p != i]
        total = 0.0
        for k in range(n):
            weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
            for S in itertools.combinations(others, k):
                s = frozenset(S)
                total += weight * (v[s | {i}] - v[s])
        out[i] = total
    return out


def in_core(shares: dict[str, float], value: dict[frozenset[str], float]) -> bool:
    """No coalition pays more under the split than it would on its own."""
    return all(sum(shares[p] for p in S) <= v + CORE_TOLERANCE * max(1.0, abs(v)) for S, v in value.items())


def coalition_tables(
    participants: tuple[str, ...], summaries: dict[str, JSON | None]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """coalitions.csv and shares.csv rows, and the headline figures."""
    rows = []
    value: dict[frozenset[str], float] = {}
    for members in coalitions(participants):
        name = "+".join(members)
        s = summaries.get(name) or {}
        row: dict[str, Any] = {
            "coalition": name,
            "size": len(members),
            "status": s.get("status", "error"),
            "objective_usd": s.get("objective_usd"),
        }
        for p, per in (s.get("expected_coverage_days") or {}).items():
            for m, days in per.items():
                row[f"coverage_days.{p}.{m}"] = days
        rows.append(row)
        if has_plan(s.get("status")):
            value[frozenset(members)] = s["objective_usd"]
    coal = pd.DataFrame(rows)
    if len(value) < len(rows):
        return (
            coal,
            pd.DataFrame(columns=SHARES_COLUMNS),
            {"complete": False},
        )
    grand = summaries["+".join(participants)]
    assert grand is not None, "the grand coalition has a solution (checked by the caller)"
    phi = shapley(value, participants)
    core = in_core(phi, value)
    shares = pd.DataFrame(
        {
            "participant": list(participants),
            "standalone_usd": [value[frozenset([p])] for p in participants],
            "shapley_usd": [phi[p] for p in participants],
            "spending_usd": [grand["costs_by_participant"][p]["total_usd"] for p in participants],
            "in_core": [core] * len(participants),
        }
    )
    # what each should receive (+) or pay (-) so that its net cost is its Shapley share; sums to 0
    shares["transfer_usd"] = shares.spending_usd - shares.shapley_usd
    standalone = sum(value[frozenset([p])] for p in participants)
    head = {
        "complete": True,
        "grand_usd": value[frozenset(participants)],
        "standalone_sum_usd": standalone,
        "value_of_cooperation_usd": standalone - value[frozenset(participants)],
        "in_core": core,
        "transfers": transfer_sentence(shares),
    }
    return coal, shares, head


def transfer_sentence(shares: pd.DataFrame) -> str:
    """The transfers in one sentence, e.g. 'to reach its Shapley share, US receives $259.13m from JP'."""
    gets = shares[shares.transfer_usd > 0]
    pays = shares[shares.transfer_usd < 0]
    if gets.empty:
        return "no transfer is needed: each participant's spending is its Shapley share"
    from stockpile.fmt import money

    if len(gets) == 1 and len(pays) == 1:
        g, p = gets.iloc[0], pays.iloc[0]
        return f"to reach its Shapley share, {g.participant} receives {money(g.transfer_usd)} from {p.participant}"
    parts = [f"{r.participant} receives {money(r.transfer_usd)}" for r in gets.itertuples()]
    parts += [f"{r.participant} pays {money(-r.transfer_usd)}" for r in pays.itertuples()]
    return "to reach the Shapley shares, " + ", ".join(parts)


def write_coalition_tables(out: Path, coal: pd.DataFrame, shares: pd.DataFrame, head: JSON) -> None:
    from stockpile.results.outputs import write_csv, write_json

    write_csv(coal, out / "coalitions.csv")
    write_csv(shares, out / "shares.csv")
    write_json(head, out / "coalition.json")
