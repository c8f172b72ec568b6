"""Calibration, fusion and the suspect decision.

* **Calibration.** Raw scores of different checks are not comparable. Each family's score
  is turned into evidence ``1 - p`` where ``p`` is its empirical tail probability among
  the family's scores on the row sample: ``p = (1 + #{sample >= s}) / (n + 1)``.
* **Fusion.** A row's score is the strongest evidence of any family (a maximum does not
  dilute one check that fired). Hard rule violations rank first: their score is
  ``1 + v / (1 + v)`` with ``v`` the largest raw score among the violating families,
  so every violation scores in ``[1.5, 2)`` and every other row in ``[0, 1)``.
* **Decision** (:func:`decide`). Default: the suspects are the rows with a hard
  violation. ``max_suspects`` caps that set to the highest ranked; ``contamination``
  replaces the rule by the highest ranked fraction of all rows. Ties are broken by
  row id, so the decision is deterministic.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .checks.base import CheckScores


class Fusion:
    """Calibrate each family against its sample scores and fuse them per row.

    Attributes
    ----------
    reference_ : dict of str to numpy.ndarray
        Sorted sample scores per family.
    """

    def fit(self, sample_scores: Mapping[str, CheckScores]) -> "Fusion":
        self.reference_ = {f: np.sort(s.scores) for f, s in sample_scores.items()}
        return self

    def evidence(self, family: str, scores: np.ndarray) -> np.ndarray:
        """``1 - p`` of each score against the family's sample scores."""
        ref = self.reference_[family]
        at_least = len(ref) - np.searchsorted(ref, scores, side="left")
        return 1.0 - (1.0 + at_least) / (len(ref) + 1.0)

    def fuse(self, results: Mapping[str, CheckScores]) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray, np.ndarray]:
        """Fuse one chunk's check results.

        Returns
        -------
        score : numpy.ndarray of float64
            Fused score, higher = more suspect.
        violation : numpy.ndarray of bool
            Rows with a hard violation in any family.
        checks : numpy.ndarray of object
            Comma-separated families that fired per row (``None`` if none).
        reason : numpy.ndarray of object
            The families' reasons joined into one line (``None`` if none).
        """
        families = list(results)
        n = len(next(iter(results.values())).scores) if results else 0
        evidence = np.zeros(n)
        violation = np.zeros(n, dtype=bool)
        worst = np.zeros(n)
        for family in families:
            r = results[family]
            np.fmax(evidence, self.evidence(family, r.scores), out=evidence)
            violation |= r.violation
            np.fmax(worst, np.where(r.violation, r.scores, 0.0), out=worst)
        score = np.where(violation, 1.0 + worst / (1.0 + worst), evidence)
        checks = np.full(n, None, dtype=object)
        reason = np.full(n, None, dtype=object)
        said = np.zeros(n, dtype=bool)
        for r in results.values():
            said |= r.reasons != None  # noqa: E711 - elementwise on an object array
        for i in np.flatnonzero(said | violation):
            fired = [f for f in families if results[f].violation[i] or results[f].reasons[i]]
            checks[i] = ",".join(fired) or None
            reason[i] = " | ".join(results[f].reasons[i] for f in fired
                                   if results[f].reasons[i]) or None
        return score, violation, checks, reason


def decide(score: np.ndarray, violation: np.ndarray, *, max_suspects: int | None = None,
           contamination: float | None = None) -> tuple[np.ndarray, dict]:
    """Choose the suspect rows.

    Parameters
    ----------
    score : numpy.ndarray of float64
        Fused score of every row, indexed by row id.
    violation : numpy.ndarray of bool
        Hard violations, indexed by row id.
    max_suspects : int, optional
        Keep at most this many suspects (the highest ranked).
    contamination : float, optional
        Take the ``ceil(contamination * rows)`` highest ranked rows instead of the rule.

    Returns
    -------
    suspect : numpy.ndarray of bool
        The decision per row.
    info : dict
        The policy and the threshold it implied (for ``summary.json``).
    """
    n = len(score)
    if contamination is not None:
        policy = "contamination"
        candidates = np.arange(n)
        limit = math.ceil(contamination * n)
    else:
        policy = "violations"
        candidates = np.flatnonzero(violation)
        limit = len(candidates)
    if max_suspects is not None and max_suspects < limit:
        limit = max_suspects
        policy += "+max_suspects"
    order = candidates[np.argsort(-score[candidates], kind="stable")]
    chosen = order[:limit]
    suspect = np.zeros(n, dtype=bool)
    suspect[chosen] = True
    threshold = float(score[chosen].min()) if len(chosen) else None
    return suspect, {"policy": policy, "max_suspects": max_suspects,
                     "contamination": contamination, "suspects": int(len(chosen)),
                     "min_suspect_score": threshold}


def rank_order(rows: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices that sort ``rows`` by descending score, then ascending row id."""
    return np.lexsort((rows, -score))
