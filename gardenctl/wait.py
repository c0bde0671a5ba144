"""The one polling helper for long operations. Clock and sleep are injectable so unit tests run at zero delay."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from gardenctl.errors import OperationTimeout

T = TypeVar("T")


class Clock:
    """Monotonic time and sleeping, swappable in tests (see tests' FakeClock)."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


REAL_CLOCK = Clock()


def wait_until(
    check: Callable[[], "T | tuple[T, str]"],
    *,
    timeout: float,
    interval: float = 0.25,
    what: str,
    clock: Clock = REAL_CLOCK,
    on_poll: Callable[[str], None] | None = None,
) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy, and return that.

    ``check`` may return ``(value, observation)``: the observation is reported through ``on_poll`` and named in the
    timeout error, so a user learns what the cluster looked like when gardenctl gave up. Exceptions from ``check``
    propagate: a check that can fail transiently must catch its own errors and say so in its observation.
    """
    deadline = clock.now() + timeout
    observation = "no observation yet"
    while True:
        result = check()
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], str):
            value, observation = result
        else:
            value = result
        if value:
            return value  # type: ignore[return-value]
        if on_poll is not None:
            on_poll(observation)
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise OperationTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {observation})")
        clock.sleep(min(interval, remaining))
