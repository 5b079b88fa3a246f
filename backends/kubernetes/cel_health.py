"""Custom health for any kind: CEL expressions on the live object (Flux's
`healthCheckExprs`), evaluated with the `common-expression-language` library.

Each expression sees the object's top-level fields as variables (`metadata`,
`spec`, `status`, ...). They are tried in Flux's order: `inProgress`, then
`failed`, then `current`; the first that is true decides (Progressing,
Degraded, Healthy), and none true is Progressing. An expression that cannot be
evaluated on this object (a field it reads is missing, a result that is not a
boolean) leaves the object Progressing with the reason, so the gate waits and
its timeout names the problem, as Flux does.

Invariants: pure (no I/O, no clock); expressions were compiled once when the
state repository was loaded, and are compiled again here once per backend;
messages never quote object data, only the rule's location and the
evaluator's error class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cel

from backends.kubernetes.health import Health
from reconciler.model import HealthExpr, HealthStatus

_ORDER = (("inProgress", HealthStatus.PROGRESSING), ("failed", HealthStatus.DEGRADED),
          ("current", HealthStatus.HEALTHY))


class Rules:
    """Compiled rules by (apiVersion, kind); the first rule for a kind wins."""

    def __init__(self, exprs: Sequence[HealthExpr]) -> None:
        self._rules: dict[tuple[str, str], tuple[HealthExpr, dict[str, Any]]] = {}
        for rule in exprs:
            key = (rule.api_version, rule.kind)
            if key in self._rules:
                continue
            texts = {"current": rule.current, "inProgress": rule.in_progress,
                     "failed": rule.failed}
            programs = {name: cel.compile(text) for name, text in texts.items() if text}
            self._rules[key] = (rule, programs)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def health(self, obj: Mapping[str, Any]) -> Health | None:
        """The rule's verdict on `obj`, or None when no rule names its kind."""
        found = self._rules.get((str(obj.get("apiVersion", "")), str(obj.get("kind", ""))))
        if found is None:
            return None
        rule, programs = found
        context = {str(k): v for k, v in obj.items()}
        for name, status in _ORDER:
            program = programs.get(name)
            if program is None:
                continue
            try:
                value = program.execute(context)
            except Exception as exc:  # the binding raises KeyError, TypeError, ValueError...
                return Health(status=HealthStatus.PROGRESSING,
                              message=f"health rule at {rule.location}: {name} cannot be "
                                      f"evaluated yet ({type(exc).__name__})")
            if not isinstance(value, bool):
                return Health(status=HealthStatus.PROGRESSING,
                              message=f"health rule at {rule.location}: {name} gave a "
                                      f"{type(value).__name__}, not a boolean")
            if value:
                verdict = {"inProgress": "in progress", "failed": "failed",
                           "current": ""}[name]
                message = f"{verdict} (health rule at {rule.location})" if verdict else ""
                return Health(status=status, message=message)
        return Health(status=HealthStatus.PROGRESSING,
                      message=f"not current yet (health rule at {rule.location})")
