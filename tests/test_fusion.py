"""Calibration, fusion and the suspect decision."""

from __future__ import annotations

import numpy as np

from poisonscan.checks.base import CheckScores
from poisonscan.fusion import Fusion, decide


def _scores(values, violation=None):
    values = np.asarray(values, dtype=float)
    if violation is None:
        violation = np.zeros(len(values), dtype=bool)
    reasons = np.array([("a:r" if v else None) for v in violation], dtype=object)
    return CheckScores(values, np.asarray(violation), reasons)


def test_evidence_is_a_calibrated_tail_probability():
    fusion = Fusion().fit({"a": _scores(np.arange(100))})
    ev = fusion.evidence("a", np.array([-1.0, 49.5, 99.0, 1e9]))
    assert np.all(np.diff(ev) > 0)  # monotone
    assert ev[0] == 0.0
    assert ev[1] == 1 - (1 + 50) / 101
    assert ev[-1] == 1 - 1 / 101 and ev[-1] < 1


def test_a_single_strong_family_is_not_diluted():
    ref = {"a": _scores(np.arange(100)), "b": _scores(np.arange(100))}
    fusion = Fusion().fit(ref)
    score, violation, _, _ = fusion.fuse({"a": _scores([99, 0]), "b": _scores([0, 0])})
    assert score[0] == fusion.evidence("a", np.array([99.0]))[0]
    assert not violation.any()


def test_violations_rank_above_everything_else_and_name_their_family():
    ref = {"a": _scores(np.arange(10)), "b": _scores(np.arange(10))}
    fusion = Fusion().fit(ref)
    score, violation, checks, reason = fusion.fuse({
        "a": _scores([1000, 1, 3], [False, True, False]),
        "b": _scores([0, 0, 2], [False, False, True])})
    assert violation.tolist() == [False, True, True]
    assert score[1] >= 1.5 and score[2] >= 1.5 and score[0] < 1
    assert score[2] > score[1]  # the larger raw violation ranks higher
    assert checks.tolist() == [None, "a", "b"]
    assert reason[1] == "a:r" and reason[0] is None


def test_default_decision_is_the_violations():
    score = np.array([0.2, 1.7, 0.9, 1.6])
    violation = np.array([False, True, False, True])
    suspect, info = decide(score, violation)
    assert suspect.tolist() == violation.tolist()
    assert info["policy"] == "violations" and info["suspects"] == 2
    assert info["min_suspect_score"] == 1.6


def test_max_suspects_caps_the_rule_and_keeps_the_top():
    score = np.array([1.5, 1.9, 1.7, 0.1])
    violation = np.array([True, True, True, False])
    suspect, info = decide(score, violation, max_suspects=2)
    assert np.flatnonzero(suspect).tolist() == [1, 2]
    assert info["policy"] == "violations+max_suspects"
    assert decide(score, violation, max_suspects=10)[0].sum() == 3  # a cap, not a quota


def test_contamination_takes_the_top_fraction_with_ties_broken_by_row():
    score = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
    suspect, info = decide(score, np.zeros(10, dtype=bool), contamination=0.3)
    assert np.flatnonzero(suspect).tolist() == [0, 1, 2]  # ceil(0.3 * 10) = 3; row 3 loses the tie
    assert info["policy"] == "contamination"
    suspect, _ = decide(score, np.zeros(10, dtype=bool), contamination=0.01)
    assert np.flatnonzero(suspect).tolist() == [1]  # ceil rounds up to at least one row


def test_nothing_to_quarantine():
    suspect, info = decide(np.zeros(5), np.zeros(5, dtype=bool))
    assert not suspect.any() and info["min_suspect_score"] is None


# --------------------------------------------------------------------------- findings, conflicts

class _Structured(CheckScores):
    """CheckScores with the optional arrays the fusion reads (as the duplicates family's)."""

    def __init__(self, scores, reasons, *, conflict=None, disagreement=None, finding=None):
        super().__init__(np.asarray(scores, dtype=float), np.zeros(len(scores), dtype=bool),
                         np.asarray(reasons, dtype=object))
        self.conflict = None if conflict is None else np.asarray(conflict, dtype=bool)
        self.disagreement = None if disagreement is None else np.asarray(disagreement, float)
        self.finding = None if finding is None else np.asarray(finding, dtype=float)


def test_findings_rank_between_violations_and_statistical_evidence():
    ref = {"a": _scores(np.arange(100)), "d": _scores(np.zeros(100))}
    fusion = Fusion().fit(ref)
    d = _Structured([0.0, 0.2, 0.0], [None, "d:repeated", None], finding=[0.0, 0.2, 0.0])
    score, violation, checks, reason = fusion.fuse({
        "a": _scores([99, 0, 50], [False, False, True]), "d": d})
    assert score[1] == 1.0 + 0.2 / 2
    assert score[0] < 1.0 < score[1] < 1.5 <= score[2]
    assert checks[1] == "d" and reason[1] == "d:repeated"
    assert not violation[1]


def test_conflicts_are_settled_by_label_evidence():
    ref = {"d": _scores(np.zeros(10))}
    fusion = Fusion().fit(ref)
    d = _Structured([0.9, 0.9, 0.9, 0.9, 0.9, 0.0],
                    ["d:g"] * 5 + [None], conflict=[True] * 5 + [False],
                    disagreement=[0.95, 0.05, 0.52, np.nan, 0.7, np.nan])
    score, _, _, reason = fusion.fuse({"d": d})
    assert score[0] == 1.0 + 0.9 * (0.5 + 0.95 / 2) / 2          # evidence against its label
    assert score[4] == 1.0 + 0.9 * (0.5 + 0.7 / 2) / 2
    assert score[0] > score[4] > score[2] == score[3] > 1.0       # undecided / unmeasured:
    assert score[1] < 1.0 and score[5] < 1.0                      # the whole group, lower
    assert reason[0].endswith("label evidence against this row's label (neighbours 0.95): "
                              "suspect")
    assert reason[1].endswith("supports this row's label (neighbours 0.05): less suspect")
    assert reason[2].endswith("label evidence undecided (neighbours 0.52): whole group flagged")
    assert reason[3].endswith("no label evidence either way: whole group flagged")
    assert reason[5] is None


def test_a_label_family_joins_the_settlement_when_it_ran():
    ref = {"d": _scores(np.zeros(10)), "labels": _scores(np.arange(100))}
    fusion = Fusion().fit(ref)
    d = _Structured([0.9, 0.9], ["d:g", "d:g"], conflict=[True, True],
                    disagreement=[0.55, 0.55])
    # neighbours undecided; the label family doubts row 0's label and trusts row 1's
    score, _, _, reason = fusion.fuse({"d": d, "labels": _scores([99, 0])})
    label_evidence = fusion.evidence("labels", np.array([99.0, 0.0]))
    assert score[0] == 1.0 + 0.9 * (0.5 + (0.55 + label_evidence[0]) / 2 / 2) / 2
    assert score[1] < 1.0
    assert "neighbours 0.55, labels 0.98" in reason[0]
    # without it, the same group is undecided and flagged whole
    alone, _, _, _ = fusion.fuse({"d": d})
    assert alone[0] == alone[1] > 1.0


def test_a_clear_neighbourhood_is_not_outvoted_by_a_label_family():
    """Label families see the group's own copies; the neighbourhood outside it does not."""
    ref = {"d": _scores(np.zeros(10)), "labels": _scores(np.arange(100))}
    fusion = Fusion().fit(ref)
    d = _Structured([0.9, 0.9], ["d:g", "d:g"], conflict=[True, True],
                    disagreement=[0.05, 0.95])
    score, _, _, reason = fusion.fuse({"d": d, "labels": _scores([99, 0])})
    assert score[0] < 1.0 <= score[1]
    assert "labels 0.98" in reason[0] and "less suspect" in reason[0]
