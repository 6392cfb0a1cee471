"""One root exception class with meaningful subclasses.

Every user-facing error says what was wrong, where, what was got and what is allowed.
"""

from __future__ import annotations


class HoningError(Exception):
    """Root of every error honing raises on purpose."""


class ConfigError(HoningError, ValueError):
    """An argument or recipe field has a value that is not allowed."""


class UnknownNameError(HoningError, KeyError):
    """A name looked up in a registry (model, optimizer, schedule, loss, ...) does not exist."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class DataError(HoningError, ValueError):
    """A data source is missing, unreadable or malformed."""


class RunFailedError(HoningError):
    """The work ran and produced nothing usable (every trial of a search failed): exit 1, not 2."""


class DivergedError(HoningError, ArithmeticError):
    """Training produced a NaN or infinite loss."""

    def __init__(self, message: str, *, epoch: int, step: int, value: float) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.value = value
