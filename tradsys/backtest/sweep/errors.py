"""The one error type a sweep raises for what the user can fix (the CLI prints it, exit 2)."""


class SweepError(Exception):
    """A sweep that cannot start or go on: bad settings, a results folder of another sweep, no Ray."""
