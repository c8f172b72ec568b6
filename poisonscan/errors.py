"""Typed errors raised by the library.

The library never prints and never exits; the CLI maps these classes to exit codes
(see :mod:`poisonscan.cli`). Every message is one line that names the file, row and
column involved where they are known.
"""

from __future__ import annotations


class PoisonscanError(Exception):
    """Base class of every error poisonscan raises on purpose."""

    exit_code = 3


class UsageError(PoisonscanError):
    """The user asked for something that cannot be done (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """An unknown configuration key or an invalid value."""


class InputError(UsageError):
    """An input that cannot be read: missing, malformed, empty, or of the wrong shape."""

    def __init__(self, message: str, *, path: str | None = None, row: int | None = None,
                 column: str | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        self.path, self.row, self.column = path, row, column
        super().__init__(": ".join(where + [message]) if where else message)


class OutputExistsError(UsageError):
    """The output directory already holds a scan and ``overwrite`` was not given."""
