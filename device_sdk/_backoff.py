"""How long to wait before the next reconnect attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter for reconnect attempts.

    The n-th consecutive failed attempt (counting from 0) waits a random time in
    ``[(1 - jitter) * d, d]`` where ``d = min(maximum, initial * multiplier ** n)``, so a fleet
    that lost its server at the same moment does not come back in lockstep. A connection that
    stays up for ``reset_after`` seconds resets the count.

    Args:
        initial: The base delay in seconds for the first retry.
        maximum: The cap on the base delay, in seconds.
        multiplier: Growth factor per failed attempt.
        jitter: The fraction of each delay that is randomised (0 = none, 1 = "full jitter").
        reset_after: Seconds a connection must last before the attempt count starts over.

    Raises:
        ValueError: If the parameters are inconsistent.
    """

    initial: float = 1.0
    maximum: float = 120.0
    multiplier: float = 2.0
    jitter: float = 0.5
    reset_after: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be within 0..1")
        if self.reset_after < 0:
            raise ValueError("backoff reset_after must be >= 0")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay in seconds before retry number ``attempt`` (0-based).

        Args:
            attempt: How many attempts in a row have failed before this one.
            rand: A source of floats in ``[0, 1)``; for tests.

        Returns:
            Seconds to wait, never more than :attr:`maximum`.
        """
        exponent = min(max(attempt, 0), 64)  # 2.0 ** 64 is finite; larger exponents only cap
        base = min(self.maximum, self.initial * self.multiplier**exponent)
        return base * (1.0 - self.jitter * rand())
