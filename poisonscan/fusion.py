"""Calibration, fusion and the suspect decision.

* **Calibration.** Raw scores of different checks are not comparable. Each family's score
  ``s`` becomes a tail probability ``p`` against the family's scores on the row sample:
  the empirical one, ``(1 + #{sample >= s}) / (n + 1)``, and beyond the sample's
  :data:`TAIL_QUANTILES` ``(a, b)`` an exponential tail fitted to them,
  ``(1 - b) exp(-(s - q_b) / beta)`` with ``beta = (q_b - q_a) / ln((1 - a) / (1 - b))``;
  ``p`` is the smaller of the two. The empirical ``p`` alone cannot tell a family's
  natural tail from a poison far beyond it (every family's top row gets ``1 / n``, and a
  maximum over four families then lets three of them bury the one that fired); the tail
  fit keeps *how far* beyond the bulk a row lies. It is fitted on the bulk (the median to
  the 75th percentile), so poisons in the sample move it little: 3% of far-out poisons
  widen it by a tenth, 10% by two fifths, and they still lie far beyond it (a window
  reaching the 90th percentile is contaminated by 10% of poisons; the window was chosen on
  the quality benchmark's per-family scores, ``benchmarks/RESULTS.md``).
* **Fusion.** A row's soft score is ``L / (1 + L)``, ``L = -ln(min_f p_f)``: the strongest
  evidence of any family (a minimum of p-values does not dilute one check that fired),
  mapped into ``[0, 1)``. Two other rules (``--fusion``, :func:`combine`) replace the
  minimum by a combined p-value: the Cauchy combination (Liu & Xie 2020; valid under
  dependence between the families) and Fisher's method (valid for independent ones); both
  let several moderate p-values add up. The default was chosen on the quality benchmark
  (``benchmarks/RESULTS.md``, "Fusion rules"). Hard rule violations rank first: their score is
  ``1 + v / (1 + v)`` with ``v`` the largest raw score among the violating families,
  so every violation scores in ``[1.5, 2)``, every finding (below) in ``[1, 1.5)`` and
  every other row in ``[0, 1)``.
* **Findings.** Some evidence is structural rather than a tail statistic: a family may
  return, next to its scores, a ``finding`` array (strength in ``[0, 1)``, 0 = none).
  Rows with a finding rank above every row with only statistical evidence:
  ``1 + finding / 2`` in ``[1, 1.5)``, still below every hard violation.
* **Conflicting groups** (the seam between duplicates and labels). A family may mark
  rows with ``conflict`` (the row belongs to a group of identical rows carrying
  different labels; its score is the group's) and give ``disagreement`` (how strongly the
  neighbourhood outside the group prefers another label, NaN = unmeasured). The group
  alone does not say which members are wrong; the label evidence does. Per member, the
  label evidence is that ``disagreement`` where it is clear (outside the undecided band
  below: the neighbourhood outside the group cannot be outvoted by the group's own
  copies, which every label family sees), else the mean of it and the empirical
  evidence ``1 - p`` of every label family that ran (:data:`LABEL_FAMILIES`). A member
  whose label evidence exceeds ``0.5 + UNDECIDED`` is a finding of strength
  ``score * (0.5 + evidence / 2)``;
  one below ``0.5 - UNDECIDED`` is no finding (it keeps the group's calibrated evidence,
  like any soft score); with no label evidence, or evidence either way, the whole group
  is a finding of strength ``score * UNFLAGGED`` — and the reason says which case applied
  — unless the family marks the conflict ``natural`` (most of the data's rows are in
  conflicting groups: its label is no function of its features): then no member is a
  finding, and the soft evidence (the label checks') ranks them.
  Where the family says the data holds no such group by nature (``unnatural`` ``u`` at
  least :data:`UNNATURAL`; 1 where no two distinct rows share their features), one member
  was inserted whichever the evidence clears, and the evidence that cleared it can be
  wrong (a flooded copy whose random label the features happen to favour). A cleared
  member then ranks in a tier of its own between the soft scores and the findings,
  ``SOFT_MAX + (1 - SOFT_MAX) (1 + u + evidence) / 4`` (:data:`SOFT_MAX`: the largest
  soft score); it is no suspect, and this rank is no statistical evidence: the FDR
  decision leaves the tier out.
* **Explanations.** A row's ``checks`` and ``reason`` list the families that fired,
  strongest first: violations, then by ascending ``p``. A suspect chosen on soft evidence
  that no family put in words gets the family with the smallest ``p`` as its reason
  (:meth:`Fusion.explain`, applied in pass 3), so that no suspect goes unexplained.
* **Weights** (``family_weights``). A prior belief that one family's evidence matters more
  than another's divides each family's ``p`` by its weight before the rule (weighted
  p-values, Genovese, Roeder & Wasserman 2006), the weights normalised to a mean of 1 over
  the fitted families, so that the Bonferroni factor of the ``"min"`` rule stays valid
  (weighted Bonferroni: ``F min_f p_f / w_f``). The Cauchy and Fisher rules take the same
  ``p / w`` (capped at 1), not a weighted statistic of their own. Unweighted by default:
  every family 1. On
  the quality benchmark no weight lifts every attack at once; a weight moves the ranking
  along the trade-off between flipped labels and inserted rows that
  ``benchmarks/RESULTS.md`` measures ("Session 21: family weights").
* **Decision** (:func:`decide`). Default: the suspects are the rows with a hard
  violation or a finding. ``fdr`` adds the rows whose soft evidence passes the
  Benjamini–Hochberg procedure at that level (on ``min(1, F min_f p_f)``, Bonferroni over
  the ``F`` families; on the combined p-value itself under the other rules).
  ``max_suspects`` caps the set to the highest ranked; ``contamination`` replaces the rule
  by the highest ranked fraction of all rows. Ties are broken by row id, so the decision
  is deterministic.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .checks.base import CheckScores

#: Families whose scores say how likely a row's label is wrong (used to settle conflicts).
LABEL_FAMILIES: tuple[str, ...] = ("labels",)
#: Half-width of the band around 0.5 where label evidence decides nothing.
UNDECIDED = 0.1
#: Finding strength (times the group's score) of a conflicting member nothing decides.
UNFLAGGED = 0.45
#: How surely the data must hold no conflicting group by nature (``unnatural``) before a
#: cleared member of one ranks above the soft scores.
UNNATURAL = 0.5
#: Quantiles of a family's sample scores its exponential tail is fitted between.
TAIL_QUANTILES = (0.50, 0.75)
#: Smallest tail probability (``-ln`` of it stays finite, so soft scores stay below 1).
P_FLOOR = 1e-300
#: Rules that turn a row's per-family p-values into the p of its soft score.
RULES: tuple[str, ...] = ("min", "cauchy", "fisher")
#: Largest p-value the Cauchy combination takes: ``tan((0.5 - p) pi)`` tends to minus
#: infinity as ``p`` tends to 1, so a family that sees nothing (most families, for most
#: rows) would veto the others; capped at 1/2, it adds nothing. On the quality benchmark
#: (``python benchmarks/fusion_rules.py --cache DIR --seeds 0``, 241 cases; with
#: ``--cauchy-p-max 0.99`` for the other cap) the mean AP was 0.752 with this cap and 0.751
#: with a cap of 0.99 (random flips 0.646 against 0.643).
CAUCHY_P_MAX = 0.5
#: Scores at or above this are findings or violations (the rule tiers of the ranking).
FINDING_FLOOR = 1.0
#: The largest soft score (that of ``P_FLOOR``); scores between it and ``FINDING_FLOOR``
#: rank rows without being evidence (cleared members of unnatural conflicting groups).
SOFT_MAX = -math.log(P_FLOOR) / (1.0 - math.log(P_FLOOR))


class Fusion:
    """Calibrate each family against its sample scores and fuse them per row.

    Parameters
    ----------
    rule : {"min", "cauchy", "fisher"}, default "min"
        How a row's per-family p-values become the p of its soft score (:func:`combine`).
    weights : mapping of str to float, optional
        Prior weight of each family's evidence (positive; a family not named weighs 1;
        families not fitted are ignored). Normalised to a mean of 1 over the fitted
        families; each ``p`` is divided by its family's weight before the rule.

    Attributes
    ----------
    reference_ : dict of str to numpy.ndarray
        Sorted sample scores per family.
    tail_ : dict of str to tuple of float or None
        Per family ``(q_b, beta)`` of the exponential tail beyond the upper
        :data:`TAIL_QUANTILES` quantile ``q_b``; None where the bulk has no spread there
        (e.g. a family that scores most rows 0): its ``p`` is the empirical one.
    weights_ : dict of str to float
        The normalised weight of every fitted family (all 1 without ``weights``).
    multiplicity_ : int
        The Bonferroni factor of a soft score's p-value for the FDR decision: the number
        of families under the ``"min"`` rule, 1 under the others (their p is combined).
    """

    def __init__(self, rule: str = "min", weights: Mapping[str, float] | None = None):
        self.rule = rule
        self.weights = weights

    def fit(self, sample_scores: Mapping[str, CheckScores]) -> "Fusion":
        _check_rule(self.rule)
        _check_weights(self.weights)
        self.reference_ = {f: np.sort(s.scores) for f, s in sample_scores.items()}
        self.tail_ = {f: _exponential_tail(ref) for f, ref in self.reference_.items()}
        raw = {f: float((self.weights or {}).get(f, 1.0)) for f in self.reference_}
        mean = sum(raw.values()) / len(raw) if raw else 1.0
        self.weights_ = {f: w / mean for f, w in raw.items()}
        self.multiplicity_ = max(len(self.reference_), 1) if self.rule == "min" else 1
        return self

    def _empirical(self, family: str, scores: np.ndarray) -> np.ndarray:
        ref = self.reference_[family]
        at_least = len(ref) - np.searchsorted(ref, scores, side="left")
        return (1.0 + at_least) / (len(ref) + 1.0)

    def evidence(self, family: str, scores: np.ndarray) -> np.ndarray:
        """``1 - p`` of each score, ``p`` its empirical tail probability in the sample."""
        return 1.0 - self._empirical(family, scores)

    def pvalue(self, family: str, scores: np.ndarray) -> np.ndarray:
        """Calibrated tail probability of each score: the empirical one, or the fitted
        exponential tail where that is smaller (see the module docstring)."""
        p = self._empirical(family, scores)
        tail = self.tail_[family]
        if tail is not None:
            start, beta = tail
            beyond = scores > start
            extrapolated = (1.0 - TAIL_QUANTILES[1]) * np.exp(
                -(scores[beyond] - start) / beta)
            p[beyond] = np.minimum(p[beyond], extrapolated)
        return np.maximum(p, P_FLOOR)

    def weighted(self, family: str, scores: np.ndarray) -> np.ndarray:
        """The family's calibrated ``p`` divided by its weight (at most 1): what the rule
        fuses and what orders the families of a row's reason."""
        return self._weigh(family, self.pvalue(family, scores))

    def _weigh(self, family: str, p: np.ndarray) -> np.ndarray:
        weight = self.weights_[family]
        return p if weight == 1.0 else np.clip(p / weight, P_FLOOR, 1.0)

    def explain(self, scores: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(checks, reason)`` for rows chosen on soft evidence no family put in words.

        A family's soft score has no text of its own below its rules (the ``bounds``
        family's position inside a learned range, the ``outliers`` family's scores below
        its reason tail), yet ``fdr`` or ``contamination`` may choose a row for it. Such a
        row is named with the family whose calibrated ``p`` is the smallest (the first in
        ``scores``' order on a tie), its score and that ``p``.

        Parameters
        ----------
        scores : mapping of str to numpy.ndarray
            Each fitted family's raw scores of the rows.
        """
        families = list(scores)
        n = len(next(iter(scores.values()))) if families else 0
        if not n:
            return np.full(0, None, dtype=object), np.full(0, None, dtype=object)
        p = np.vstack([self.pvalue(f, np.asarray(scores[f], dtype=np.float64))
                       for f in families])
        best = np.argmin(np.vstack([self._weigh(f, p[k]) for k, f in enumerate(families)]),
                         axis=0)
        checks = np.array([families[k] for k in best], dtype=object)
        reason = np.array([f"{families[k]}: score {float(scores[families[k]][i]):.3g}, "
                           f"tail p={p[k, i]:.2g} against the sampled rows (soft evidence: no "
                           f"rule of the family fired)" for i, k in enumerate(best.tolist())],
                          dtype=object)
        return checks, reason

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
        pvalues = {}
        violation = np.zeros(n, dtype=bool)
        worst = np.zeros(n)
        finding = np.zeros(n)
        floor = np.zeros(n)
        notes: dict[str, np.ndarray] = {}
        for family in families:
            r = results[family]
            pvalues[family] = self.weighted(family, r.scores)
            conflict = getattr(r, "conflict", None)
            if conflict is not None and conflict.any():
                strength, least, notes[family] = self._settle(family, r, results)
                np.fmax(finding, strength, out=finding)
                np.fmax(floor, least, out=floor)
            found = getattr(r, "finding", None)
            if found is not None:
                np.fmax(finding, found, out=finding)
            violation |= r.violation
            np.fmax(worst, np.where(r.violation, r.scores, 0.0), out=worst)
        finding = np.clip(finding, 0.0, 0.999)
        strongest = combine(np.vstack(list(pvalues.values())), self.rule) if families \
            else np.ones(n)
        soft = np.maximum(soft_score(strongest), floor)
        score = np.where(violation, 1.0 + worst / (1.0 + worst),
                         np.where(finding > 0, 1.0 + finding / 2.0, soft))
        checks = np.full(n, None, dtype=object)
        reason = np.full(n, None, dtype=object)
        said = np.zeros(n, dtype=bool)
        for r in results.values():
            said |= r.reasons != None  # noqa: E711 - elementwise on an object array
        for i in np.flatnonzero(said | violation):
            fired = sorted((f for f in families
                            if results[f].violation[i] or results[f].reasons[i]),
                           key=lambda f: (not results[f].violation[i], pvalues[f][i]))
            checks[i] = ",".join(fired) or None
            reason[i] = " | ".join(results[f].reasons[i] + (notes[f][i] if f in notes and
                                                            notes[f][i] else "")
                                   for f in fired if results[f].reasons[i]) or None
        return score, violation, checks, reason

    def _settle(self, family: str, r: CheckScores, results: Mapping[str, CheckScores]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decide which members of conflicting groups the label evidence points at.

        Returns
        -------
        strength : numpy.ndarray of float64
            Finding strength per row (0 outside conflicts and for members whose own label
            the evidence supports: they keep only the group's calibrated evidence).
        floor : numpy.ndarray of float64
            Least soft score per row: that of a cleared member of a group the data does
            not hold by nature (0 elsewhere).
        notes : numpy.ndarray of object
            Text appended to the family's reason for every member.
        """
        conflict = np.asarray(r.conflict, dtype=bool)
        n = len(conflict)
        sources: dict[str, np.ndarray] = {}
        own = getattr(r, "disagreement", None)
        if own is not None:
            sources["neighbours"] = np.asarray(own, dtype=np.float64)
        for label_family in LABEL_FAMILIES:
            if label_family in results and label_family != family \
                    and label_family in self.reference_:
                sources[label_family] = self.evidence(label_family,
                                                      results[label_family].scores)
        if sources:
            stack = np.vstack(list(sources.values()))
            known = ~np.isnan(stack)
            counted = known.sum(axis=0)
            label_evidence = np.where(counted > 0, np.where(known, stack, 0.0).sum(axis=0)
                                      / np.maximum(counted, 1), np.nan)
            if "neighbours" in sources:
                # the neighbourhood outside the group cannot be outvoted by the group's own
                # copies, which every label family sees: where it is clear, it decides
                clear = np.abs(sources["neighbours"] - 0.5) >= UNDECIDED
                label_evidence = np.where(clear, sources["neighbours"], label_evidence)
        else:
            label_evidence = np.full(n, np.nan)
        measured = ~np.isnan(label_evidence)
        suspect = conflict & measured & (label_evidence >= 0.5 + UNDECIDED)
        cleared = conflict & measured & (label_evidence <= 0.5 - UNDECIDED)
        undecided = conflict & ~suspect & ~cleared
        group = np.clip(r.scores, 0.0, 0.999)
        natural = getattr(r, "natural", None)
        natural = np.zeros(n, dtype=bool) if natural is None else np.asarray(natural, dtype=bool)
        strength = np.where(suspect, group * (0.5 + np.where(measured, label_evidence, 0) / 2),
                            np.where(undecided, group * UNFLAGGED, 0.0))
        strength[natural] = 0.0  # the data's own conflicts: the label checks rank them
        unnatural = getattr(r, "unnatural", None)
        unnatural = np.zeros(n) if unnatural is None else np.asarray(unnatural, dtype=np.float64)
        floor = np.where(cleared & ~natural & (unnatural >= UNNATURAL),  # evidence measured
                         SOFT_MAX + (1.0 - SOFT_MAX) * (1.0 + unnatural + label_evidence) / 4,
                         0.0)
        notes = np.full(n, None, dtype=object)
        for i in np.flatnonzero(conflict):
            said = ", ".join(f"{name} {values[i]:.2f}" for name, values in sources.items()
                             if not np.isnan(values[i]))
            if natural[i]:
                notes[i] = (f"; most of the data's rows are in such groups, so the conflict "
                            f"is no finding (label evidence {said or 'none'})")
            elif suspect[i]:
                notes[i] = f"; label evidence against this row's label ({said}): suspect"
            elif cleared[i]:
                notes[i] = f"; label evidence supports this row's label ({said}): less suspect"
                if floor[i] > 0:
                    notes[i] += " (the data holds no such group by nature: ranked high)"
            elif said:
                notes[i] = f"; label evidence undecided ({said}): whole group flagged"
            else:
                notes[i] = "; no label evidence either way: whole group flagged"
        return strength, floor, notes


def _check_weights(weights: Mapping[str, float] | None) -> None:
    for family, weight in (weights or {}).items():
        if isinstance(weight, bool) or not (isinstance(weight, (int, float))
                                            and math.isfinite(weight) and weight > 0):
            raise ValueError(f"the weight of {family} must be a finite number > 0, "
                             f"not {weight!r}")


def _exponential_tail(ref: np.ndarray) -> tuple[float, float] | None:
    """``(q_b, beta)`` of the exponential tail fitted to sorted sample scores, or None."""
    if len(ref) == 0:
        return None
    low, high = TAIL_QUANTILES
    q_low, q_high = np.quantile(ref, [low, high])
    beta = (q_high - q_low) / math.log((1.0 - low) / (1.0 - high))
    if not (np.isfinite(beta) and beta > 0):
        return None
    return float(q_high), float(beta)


def combine(p: np.ndarray, rule: str = "min") -> np.ndarray:
    """One p-value per row from the families' p-values.

    Parameters
    ----------
    p : numpy.ndarray of float64, shape (families, rows)
        Calibrated p-values, each at least :data:`P_FLOOR`.
    rule : {"min", "cauchy", "fisher"}
        ``"min"``: the smallest (not a p-value of its own: Bonferroni makes it one).
        ``"cauchy"``: ``1/2 - arctan(T) / pi`` with ``T`` the mean of
        ``tan((1/2 - p_f) pi)`` over the families, ``p_f`` at most :data:`CAUCHY_P_MAX`
        (for a tiny ``p_f``, ``tan`` is ``1 / (p_f pi)``, and for a large ``T`` the result
        ``1 / (T pi)``, which keeps the precision). ``"fisher"``: the chi-squared tail
        (``2F`` degrees of freedom) of ``-2 sum_f ln p_f``.

    Returns
    -------
    numpy.ndarray of float64
        At least :data:`P_FLOOR`.
    """
    _check_rule(rule)
    if rule == "min":
        combined = p.min(axis=0)
    elif rule == "cauchy":
        q = np.minimum(p, CAUCHY_P_MAX)
        tiny = q < 1e-15
        T = np.where(tiny, 1.0 / (np.where(tiny, q, 1.0) * np.pi),
                     np.tan((0.5 - q) * np.pi)).mean(axis=0)
        large = T > 1e15
        combined = np.where(large, 1.0 / (np.where(large, T, 1.0) * np.pi),
                            0.5 - np.arctan(T) / np.pi)
    else:  # fisher
        from scipy import stats
        combined = np.exp(stats.chi2.logsf(-2.0 * np.log(p).sum(axis=0), 2 * len(p)))
    return np.clip(combined, P_FLOOR, 1.0)


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown fusion rule {rule!r} (one of {', '.join(RULES)})")


def soft_score(p: np.ndarray) -> np.ndarray:
    """Map the strongest tail probability into ``[0, 1)``: ``L / (1 + L)``, ``L = -ln p``."""
    strength = -np.log(np.maximum(p, P_FLOOR))
    return strength / (1.0 + strength)


def soft_pvalue(score: np.ndarray) -> np.ndarray:
    """Invert :func:`soft_score`: the strongest tail probability of a soft score."""
    score = np.clip(score, 0.0, soft_score(np.array([P_FLOOR]))[0])
    return np.exp(-score / (1.0 - score))


def benjamini_hochberg(p: np.ndarray, level: float) -> np.ndarray:
    """Rows the Benjamini–Hochberg step-up procedure rejects at ``level``."""
    n = len(p)
    order = np.argsort(p, kind="stable")
    passed = np.flatnonzero(p[order] <= level * np.arange(1, n + 1) / n)
    rejected = np.zeros(n, dtype=bool)
    if len(passed):
        rejected[order[:passed[-1] + 1]] = True
    return rejected


def decide(score: np.ndarray, violation: np.ndarray, *, max_suspects: int | None = None,
           contamination: float | None = None, fdr: float | None = None,
           families: int = 1) -> tuple[np.ndarray, dict]:
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
        Take the ``ceil(contamination * rows)`` highest ranked rows instead of the rule
        (never a row whose fused score is 0: no family holds any evidence against it).
    fdr : float, optional
        Also take the rows whose soft evidence passes Benjamini–Hochberg at this level
        (scores above :data:`SOFT_MAX` rank rows but are no evidence: left out).
    families : int, default 1
        Families fused into the soft score (the Bonferroni factor of its p-value).

    Returns
    -------
    suspect : numpy.ndarray of bool
        The decision per row.
    info : dict
        The policy, what each part of it chose and the threshold it implied (for
        ``summary.json``).
    """
    n = len(score)
    counts = {}
    if contamination is not None:
        policy = "contamination"
        candidates = np.flatnonzero(score > 0)
        limit = min(math.ceil(contamination * n), len(candidates))
    else:
        policy = "violations+findings"
        finding = (score >= FINDING_FLOOR) & ~violation
        chosen = violation | finding
        counts = {"violations": int(violation.sum()), "findings": int(finding.sum())}
        if fdr is not None:
            policy += "+fdr"
            soft = np.flatnonzero(~chosen & (score <= SOFT_MAX))
            p = np.minimum(1.0, families * soft_pvalue(score[soft]))
            discovered = np.zeros(n, dtype=bool)
            discovered[soft[benjamini_hochberg(p, fdr)]] = True
            counts["fdr"] = int(discovered.sum())
            chosen |= discovered
        candidates = np.flatnonzero(chosen)
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
                     "contamination": contamination, "fdr": fdr,
                     "suspects": int(len(chosen)), "chosen_by": counts,
                     "min_suspect_score": threshold}


def rank_order(rows: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices that sort ``rows`` by descending score, then ascending row id."""
    return np.lexsort((rows, -score))
