"""Units of the engine clock: integer nanoseconds, taken from the commands (never a wall clock)."""

from typing import Final

SECOND_NS: Final = 1_000_000_000
DAY_NS: Final = 86_400 * SECOND_NS
"""An engine-clock UTC day: DAY orders expire at its end and the daily loss limit counts within it."""
