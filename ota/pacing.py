"""How fast a shipment starts devices, and when it gives up.

* :class:`ConstantPacing`: at most ``per_minute`` new devices in each minute since the start.
* :class:`ExponentialPacing`: waves of ``start``, ``start*factor``, ``start*factor²``... devices;
  the next wave opens only once ``success_percent`` of every device started so far succeeded
  (the gate AWS IoT Jobs calls ``rateIncreaseCriteria``). A failing rollout stays small.
* :class:`AbortRule`: stop the rollout once, among at least ``min_sample`` devices that
  finished, ``failure_percent`` or more failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ota.errors import RuleError


@dataclass(frozen=True)
class Progress:
    """What a shipment has done so far."""

    started: int = 0  # devices ever offered the image
    succeeded: int = 0
    failed: int = 0  # devices whose attempt ended in a failure status


@dataclass(frozen=True)
class ConstantPacing:
    """A constant number of new devices per minute."""

    per_minute: int

    def __post_init__(self) -> None:
        if not 1 <= self.per_minute <= 100_000:
            raise RuleError("per_minute must be within 1..100000")

    def allowed(self, elapsed_seconds: float, progress: Progress) -> int:
        """How many devices may have been started in total by now."""
        minutes = max(0, math.floor(elapsed_seconds / 60.0))
        return self.per_minute * (minutes + 1)

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {"kind": "constant", "per_minute": self.per_minute}


@dataclass(frozen=True)
class ExponentialPacing:
    """Waves growing by ``factor``, each opened by the success of the ones before."""

    start: int
    factor: float = 2.0
    success_percent: float = 80.0

    def __post_init__(self) -> None:
        if not 1 <= self.start <= 100_000:
            raise RuleError("start must be within 1..100000")
        if not 1.1 <= self.factor <= 10:
            raise RuleError("factor must be within 1.1..10")
        if not 0 < self.success_percent <= 100:
            raise RuleError("success_percent must be within 0 (excluded) and 100")

    def allowed(self, elapsed_seconds: float, progress: Progress) -> int:
        """How many devices may have been started in total, given the successes so far."""
        cap = self.start
        wave = float(self.start)
        while progress.started >= cap and progress.succeeded * 100 >= self.success_percent * cap:
            wave *= self.factor
            cap += max(1, math.floor(wave))
            if cap > 10_000_000:
                break
        return cap

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "kind": "exponential",
            "start": self.start,
            "factor": self.factor,
            "success_percent": self.success_percent,
        }


Pacing = ConstantPacing | ExponentialPacing


def pacing_from_dict(doc: Any) -> Pacing:
    """A pacing from its stored or submitted form; raises RuleError."""
    if not isinstance(doc, dict):
        raise RuleError("pacing is an object with a 'kind' of 'constant' or 'exponential'")
    kind = doc.get("kind")
    try:
        if kind == "constant":
            return ConstantPacing(int(doc["per_minute"]))
        if kind == "exponential":
            return ExponentialPacing(
                int(doc["start"]), float(doc.get("factor", 2.0)), float(doc.get("success_percent", 80.0))
            )
    except KeyError as exc:
        raise RuleError(f"{kind} pacing needs {exc.args[0]!r}") from None
    except (TypeError, ValueError, OverflowError):
        raise RuleError(f"{kind} pacing needs numbers") from None
    raise RuleError("pacing kind must be 'constant' or 'exponential'")


@dataclass(frozen=True)
class AbortRule:
    """Cancel the shipment when ``failure_percent`` of at least ``min_sample`` finished
    devices failed."""

    failure_percent: float
    min_sample: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.failure_percent <= 100:
            raise RuleError("failure_percent must be within 0 (excluded) and 100")
        if not 1 <= self.min_sample <= 1_000_000:
            raise RuleError("min_sample must be within 1..1000000")

    def triggered(self, progress: Progress) -> bool:
        """Whether the rollout must stop."""
        finished = progress.succeeded + progress.failed
        return finished >= self.min_sample and progress.failed * 100 >= self.failure_percent * finished

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {"failure_percent": self.failure_percent, "min_sample": self.min_sample}


def abort_from_dict(doc: Any) -> AbortRule | None:
    """An abort rule from its stored or submitted form (None: no rule); raises RuleError."""
    if doc is None:
        return None
    if not isinstance(doc, dict) or "failure_percent" not in doc:
        raise RuleError("abort is null or an object with 'failure_percent' (and 'min_sample')")
    try:
        return AbortRule(float(doc["failure_percent"]), int(doc.get("min_sample", 10)))
    except (TypeError, ValueError, OverflowError):
        raise RuleError("abort needs numbers") from None
