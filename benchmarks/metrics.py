"""Detection-quality metrics of one ranking against ground truth, and their aggregation.

All rankings follow one convention: a float per row, **higher = more suspect**. Missing
scores (NaN) count as the least suspect. Ties are honoured: precision at k is the value
expected when tied rows are ordered at random, so a method that gives every row the same
score gets the base rate, not a lucky or unlucky order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_score, recall_score, \
    roc_auc_score

RANKING_METRICS = ("ap", "auroc", "p_at_k")
DECISION_METRICS = ("precision", "recall", "clean_lost")


def _finite(scores: np.ndarray) -> np.ndarray:
    """Scores with NaN (and -inf) replaced by a value below every real score."""
    scores = np.asarray(scores, dtype=float)
    usable = np.isfinite(scores) | (scores == np.inf)
    if usable.all():
        return scores
    floor = np.min(scores[np.isfinite(scores)], initial=0.0) - 1.0
    return np.where(usable, scores, floor)


def precision_at_k(truth: np.ndarray, scores: np.ndarray, k: int | None = None) -> float:
    """Expected precision of the top ``k`` rows under random tie-breaking.

    Parameters
    ----------
    truth : array of bool
        Ground truth, ``True`` = poisoned.
    scores : array of float
        Higher = more suspect.
    k : int, optional
        Defaults to the number of poisons.

    Returns
    -------
    float
    """
    truth = np.asarray(truth, dtype=bool)
    scores = _finite(scores)
    k = int(truth.sum()) if k is None else int(k)
    if k <= 0:
        return float("nan")
    threshold = np.sort(scores)[::-1][k - 1]
    above = scores > threshold
    tied = scores == threshold
    share_of_ties = (k - above.sum()) / tied.sum()
    return float((truth[above].sum() + share_of_ties * truth[tied].sum()) / k)


def ranking_metrics(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Average precision, AUROC and precision at k (k = number of poisons).

    Returns NaN for every metric when ``truth`` holds a single class.
    """
    truth = np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return dict.fromkeys(RANKING_METRICS, float("nan"))
    scores = _finite(scores)
    return {
        # scikit-learn sums precision x recall steps: a perfect ranking of 9 poisons in 14
        # rows gives 1 + 2e-16; AP is at most 1
        "ap": min(1.0, float(average_precision_score(truth, scores))),
        "auroc": float(roc_auc_score(truth, scores)),
        "p_at_k": precision_at_k(truth, scores),
    }


def decision_metrics(truth: np.ndarray, suspect: np.ndarray) -> dict[str, float]:
    """Precision and recall of a suspect set, and the fraction of clean rows it takes.

    Precision is NaN when nothing is flagged (undefined, not zero).
    """
    truth = np.asarray(truth, dtype=bool)
    suspect = np.asarray(suspect, dtype=bool)
    clean = ~truth
    return {
        "precision": float(precision_score(truth, suspect, zero_division=np.nan)),
        "recall": float(recall_score(truth, suspect, zero_division=np.nan)),
        "clean_lost": float(suspect[clean].mean()) if clean.any() else float("nan"),
    }


def seed_spread(records: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Average ``metrics`` over everything but ``by`` and the seed, then summarise the
    per-seed averages as mean, std, min and max across seeds.

    Parameters
    ----------
    records : pandas.DataFrame
        One row per (case, method) with a ``seed`` column and the metric columns.
    by : list of str
        Grouping columns kept in the result.
    metrics : list of str

    Returns
    -------
    pandas.DataFrame
        Columns ``by`` + ``{metric}_mean``, ``{metric}_std``, ``{metric}_min``,
        ``{metric}_max`` and ``seeds``.
    """
    per_seed = records.groupby(by + ["seed"], dropna=False)[metrics].mean().reset_index()
    grouped = per_seed.groupby(by, dropna=False)
    out = grouped[metrics].agg(["mean", "std", "min", "max"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["seeds"] = grouped["seed"].nunique()
    return out.reset_index()
