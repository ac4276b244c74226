"""The two untyped shapes the house passes around: a mapping as YAML or JSON holds it (a config
before validation, summary.json read back, a case's payload to a worker), and a key path into one."""

from __future__ import annotations

from typing import Any, TypeAlias

JSON: TypeAlias = dict[str, Any]  # values are whatever the file holds: validated where they are read
Loc: TypeAlias = tuple[str | int, ...]  # a key path such as ("participants", "US", "budget_usd")
