"""The contract every check family implements.

A check is an estimator in scikit-learn's sense: the constructor only stores keyword
parameters (declared in :attr:`Check.parameters`, validated in :meth:`Check.fit`), and
what it learns lives in attributes ending with ``_``. Its life cycle follows the scan:

* pass 1 — ``state = summarize(chunk)`` for every chunk, combined with ``merge(a, b)``
  (associative and commutative; ``None`` is the empty state);
* fit — ``fit(state, profile)`` learns from the merged state and the shared
  :class:`~poisonscan.profiling.Profile` (column summaries and the row sample);
* pass 2 — ``score(chunk) -> CheckScores``, a pure function of the fitted check and
  the chunk: higher = more suspect, plus a violation flag and a reason per row.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ..config import Option
from ..errors import ConfigError


@dataclasses.dataclass
class CheckScores:
    """What one check says about the rows of one chunk.

    Attributes
    ----------
    scores : numpy.ndarray of float64
        Suspicion per row, higher = more suspect; comparable only within the check.
    violation : numpy.ndarray of bool
        Rows that break a hard rule (they are suspects by default and rank first).
    reasons : numpy.ndarray of object
        A short machine-readable reason (``str``) per row the check has something to say
        about, else ``None``.
    """

    scores: np.ndarray
    violation: np.ndarray
    reasons: np.ndarray

    @classmethod
    def empty(cls, n: int) -> "CheckScores":
        return cls(np.zeros(n), np.zeros(n, dtype=bool), np.full(n, None, dtype=object))

    @classmethod
    def concatenate(cls, parts: "list[CheckScores]") -> "CheckScores":
        """The scores of consecutive blocks of rows, as one."""
        if not parts:
            return cls.empty(0)
        return cls(np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.violation for p in parts]),
                   np.concatenate([p.reasons for p in parts]))


class Check:
    """Base class of check families (see the module docstring for the contract)."""

    #: Family name: the column in ``scores.parquet`` and the table in the config file.
    name: ClassVar[str] = ""
    #: Whether the check needs a label column (it is skipped without one).
    requires_label: ClassVar[bool] = False
    #: Declared constructor parameters.
    parameters: ClassVar[tuple[Option, ...]] = ()
    #: Whether ``fit`` spreads its own work over threads (such checks are started first
    #: when the checks are fitted side by side, see :func:`poisonscan.pipeline.fit`).
    spreads_fit: ClassVar[bool] = False

    def __init__(self, **params: Any):
        known = {p.name for p in self.parameters}
        unknown = set(params) - known
        if unknown:
            exc = ConfigError(f"{self.name}: unknown parameter(s) "
                              f"{', '.join(f'{self.name}.{k}' for k in sorted(unknown))}")
            exc.key_path = (self.name, sorted(unknown)[0])  # for the config file's line
            raise exc
        for p in self.parameters:
            setattr(self, p.name, params.get(p.name, p.default))

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as stored."""
        return {p.name: getattr(self, p.name) for p in self.parameters}

    def _validate_params(self) -> None:
        for p in self.parameters:
            p.validate(getattr(self, p.name), where=f"[{self.name}]")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # pass 1 --------------------------------------------------------------------------
    def summarize(self, chunk) -> Any:
        """State of one chunk; the default check needs only the shared profile."""
        return None

    def merge(self, a: Any, b: Any) -> Any:
        """Combine two states (``None`` is the empty state)."""
        return a if b is None else b if a is None else self._merge(a, b)

    def _merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} returns states but cannot merge them")

    # fit -------------------------------------------------------------------------------
    def fit(self, state: Any, profile) -> "Check":
        """Learn from the merged pass-1 ``state`` and the shared ``profile``."""
        raise NotImplementedError

    # pass 2 ----------------------------------------------------------------------------
    def score(self, chunk) -> CheckScores:
        """Score every row of ``chunk``; must not change the check."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the fitted check learned, for ``summary.json`` (plain JSON values)."""
        return {}


def quote(value: Any, limit: int = 40) -> str:
    """A value for a reason: its text, cut to ``limit`` characters, quoted and escaped
    onto one line by :func:`repr`."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")
