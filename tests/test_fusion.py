"""Calibration, fusion and the suspect decision."""

from __future__ import annotations

import numpy as np

from poisonscan.checks.base import CheckScores
import pytest

from poisonscan.fusion import P_FLOOR, RULES, TAIL_QUANTILES, Fusion, benjamini_hochberg, \
    combine, decide, soft_pvalue, soft_score


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


def test_pvalue_is_empirical_in_the_bulk_and_exponential_beyond_it():
    rng = np.random.default_rng(0)
    sample = rng.exponential(2.0, 20_000)
    fusion = Fusion().fit({"a": _scores(sample)})
    start, beta = fusion.tail_["a"]
    assert start == np.quantile(sample, TAIL_QUANTILES[1])
    assert abs(beta - 2.0) < 0.15  # the scale of an exponential is recovered from the bulk
    bulk = np.quantile(sample, [0.1, 0.5])
    # inside the bulk: the empirical tail probability, exactly
    assert np.array_equal(fusion.pvalue("a", bulk), 1 - fusion.evidence("a", bulk))
    # far beyond the sample: keeps falling (the empirical p would stop at 1 / (n + 1))
    far = np.array([sample.max() + 10, sample.max() + 40])
    p = fusion.pvalue("a", far)
    assert p[0] < 1 / (len(sample) + 1) and p[1] < p[0] * 1e-5
    # and it is a tail probability of the right size: P(X > 30) = exp(-15) for beta = 2
    assert abs(np.log(fusion.pvalue("a", np.array([30.0]))[0]) - (-15)) < 1.5


def test_tail_fit_is_robust_to_a_few_percent_of_poisons_in_the_sample():
    rng = np.random.default_rng(1)
    clean = rng.exponential(1.0, 10_000)
    a = Fusion().fit({"a": _scores(clean)}).tail_["a"]
    for share, widened in ((0.03, 0.15), (0.10, 0.5)):
        poisoned = np.concatenate([clean, np.full(int(share * 10_000), 50.0)])
        fusion = Fusion().fit({"a": _scores(poisoned)})
        b = fusion.tail_["a"]
        assert 0 <= (b[1] - a[1]) / a[1] < widened  # the quantiles shift, not to the poisons
        # the poisons stay far beyond the fitted tail: far below one-in-the-sample
        assert fusion.pvalue("a", np.array([50.0]))[0] < 1e-12


def test_a_family_without_spread_in_its_bulk_keeps_empirical_pvalues():
    sample = np.r_[np.zeros(95), np.arange(1, 6)]  # most rows 0, like duplicates
    fusion = Fusion().fit({"a": _scores(sample)})
    assert fusion.tail_["a"] is None
    assert fusion.pvalue("a", np.array([100.0]))[0] == 1 / 101


def test_a_single_strong_family_is_not_diluted():
    ref = {"a": _scores(np.arange(100)), "b": _scores(np.arange(100))}
    fusion = Fusion().fit(ref)
    score, violation, _, _ = fusion.fuse({"a": _scores([99, 0]), "b": _scores([0, 0])})
    assert score[0] == soft_score(fusion.pvalue("a", np.array([99.0])))[0]
    assert not violation.any()


def test_a_family_far_beyond_its_tail_outranks_others_merely_at_their_top():
    rng = np.random.default_rng(2)
    ref = {"a": _scores(rng.normal(size=1000)), "b": _scores(rng.normal(size=1000))}
    fusion = Fusion().fit(ref)
    top_a, top_b = ref["a"].scores.max(), ref["b"].scores.max()
    # row 0: at the top of both families' samples; row 1: far beyond family b's tail
    score, _, _, _ = fusion.fuse({"a": _scores([top_a, 0.0]), "b": _scores([top_b, 12.0])})
    assert score[1] > score[0]
    assert 0 <= score.min() and score.max() < 1


def test_soft_scores_invert_to_their_pvalues():
    p = np.array([1.0, 0.5, 1e-3, 1e-40, 1e-300])
    assert np.allclose(np.log(soft_pvalue(soft_score(p))), np.log(p), rtol=1e-9)
    assert np.all(np.diff(soft_score(p)) > 0) and soft_score(p).max() < 1


def test_reasons_list_violations_first_then_the_strongest_family():
    rng = np.random.default_rng(3)
    ref = {f: _scores(rng.normal(size=500)) for f in "abc"}
    fusion = Fusion().fit(ref)
    fired = np.array([True])
    results = {"a": _scores([2.0], [False]), "b": _scores([9.0], [False]),
               "c": _scores([0.5], [True])}
    for r in results.values():
        r.reasons[:] = np.where(fired, f"{'abc'[list(results.values()).index(r)]}:r", None)
    _, _, checks, reason = fusion.fuse(results)
    assert checks[0] == "c,b,a"
    assert reason[0] == "c:r | b:r | a:r"


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


def test_default_decision_is_the_violations_and_the_findings():
    score = np.array([0.2, 1.7, 0.9, 1.6, 1.2, 0.999])
    violation = np.array([False, True, False, True, False, False])
    suspect, info = decide(score, violation)
    assert np.flatnonzero(suspect).tolist() == [1, 3, 4]  # 1.2 is a finding; 0.999 is soft
    assert info["policy"] == "violations+findings" and info["suspects"] == 3
    assert info["chosen_by"] == {"violations": 2, "findings": 1}
    assert info["min_suspect_score"] == 1.2


def test_max_suspects_caps_the_rule_and_keeps_the_top():
    score = np.array([1.5, 1.9, 1.7, 0.1])
    violation = np.array([True, True, True, False])
    suspect, info = decide(score, violation, max_suspects=2)
    assert np.flatnonzero(suspect).tolist() == [1, 2]
    assert info["policy"] == "violations+findings+max_suspects"
    assert decide(score, violation, max_suspects=10)[0].sum() == 3  # a cap, not a quota


def test_benjamini_hochberg_matches_the_step_up_rule():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    # at 0.05: the largest k with p_(k) <= 0.05 k / 10 is k = 2 (0.008 <= 0.01; 0.039 > 0.015)
    assert np.flatnonzero(benjamini_hochberg(p, 0.05)).tolist() == [0, 1]
    # at 0.1 the step-up takes every row up to the last passing rank: k = 6 (0.06 <= 0.06),
    # although k = 3 and 4 fail (0.039 > 0.03, 0.041 > 0.04); in any input order
    assert np.flatnonzero(benjamini_hochberg(p[::-1], 0.1)).tolist() == list(range(4, 10))
    assert not benjamini_hochberg(np.ones(5), 0.5).any()


def test_fdr_decision_finds_planted_signals_and_keeps_its_error_rate():
    rng = np.random.default_rng(4)
    n, planted = 20_000, 200
    p = rng.uniform(size=n)
    p[:planted] = rng.uniform(size=planted) * 1e-7  # strong signals
    score = soft_score(p)
    suspect, info = decide(score, np.zeros(n, dtype=bool), fdr=0.05, families=1)
    assert suspect[:planted].mean() >= 0.99
    false = suspect[planted:].sum()
    assert false / max(suspect.sum(), 1) <= 0.05
    assert info["policy"] == "violations+findings+fdr" and info["chosen_by"]["fdr"] == suspect.sum()
    # more families fused: each p-value is multiplied by their number, never fewer rejected
    # by fewer families
    fewer, _ = decide(score, np.zeros(n, dtype=bool), fdr=0.05, families=4)
    assert fewer.sum() <= suspect.sum()


def test_fdr_on_all_clean_data_quarantines_almost_nothing():
    rng = np.random.default_rng(5)
    score = soft_score(rng.uniform(size=50_000))
    suspect, info = decide(score, np.zeros(len(score), dtype=bool), fdr=0.05, families=4)
    assert suspect.sum() <= 5 and info["chosen_by"]["fdr"] == suspect.sum()


def test_fdr_ties_and_determinism():
    score = np.array([0.99, 0.99, 0.99, 0.1, 0.1])
    a, _ = decide(score, np.zeros(5, dtype=bool), fdr=0.2, max_suspects=2)
    b, _ = decide(score, np.zeros(5, dtype=bool), fdr=0.2, max_suspects=2)
    assert np.array_equal(a, b) and np.flatnonzero(a).tolist() == [0, 1]  # ties by row id


def test_contamination_takes_the_top_fraction_with_ties_broken_by_row():
    score = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0])
    suspect, info = decide(score, np.zeros(10, dtype=bool), contamination=0.3)
    assert np.flatnonzero(suspect).tolist() == [0, 1, 2]  # ceil(0.3 * 10) = 3; row 3 loses the tie
    assert info["policy"] == "contamination"
    suspect, _ = decide(score, np.zeros(10, dtype=bool), contamination=0.01)
    assert np.flatnonzero(suspect).tolist() == [1]  # ceil rounds up to at least one row
    # rows no family holds any evidence against (score 0) do not fill the budget
    suspect, info = decide(score, np.zeros(10, dtype=bool), contamination=0.8)
    assert np.flatnonzero(suspect).tolist() == [0, 1, 2, 3, 4] and info["suspects"] == 5
    suspect, info = decide(np.zeros(10), np.zeros(10, dtype=bool), contamination=0.1)
    assert not suspect.any() and info["min_suspect_score"] is None


def test_nothing_to_quarantine():
    suspect, info = decide(np.zeros(5), np.zeros(5, dtype=bool))
    assert not suspect.any() and info["min_suspect_score"] is None


# --------------------------------------------------------------------------- findings, conflicts

class _Structured(CheckScores):
    """CheckScores with the optional arrays the fusion reads (as the duplicates family's)."""

    def __init__(self, scores, reasons, *, conflict=None, disagreement=None, finding=None,
                 unnatural=None):
        super().__init__(np.asarray(scores, dtype=float), np.zeros(len(scores), dtype=bool),
                         np.asarray(reasons, dtype=object))
        self.conflict = None if conflict is None else np.asarray(conflict, dtype=bool)
        self.disagreement = None if disagreement is None else np.asarray(disagreement, float)
        self.finding = None if finding is None else np.asarray(finding, dtype=float)
        self.unnatural = None if unnatural is None else np.asarray(unnatural, dtype=float)


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


def test_a_cleared_member_of_a_group_the_data_never_holds_ranks_just_below_the_findings():
    """Where no rows repeat by nature, one member of a conflicting pair was inserted: the
    evidence may clear the wrong one (a flooded copy whose label the features favour)."""
    ref = {"d": _scores(np.zeros(100)), "a": _scores(np.arange(100))}
    fusion = Fusion().fit(ref)
    pair = dict(conflict=[True, True, True, True, False],
                disagreement=[0.9, 0.1, 0.9, 0.3, np.nan])
    d = _Structured([0.9] * 4 + [0.0], ["d:g"] * 4 + [None],
                    unnatural=[1.0, 1.0, 1.0, 1.0, 0.0], **pair)
    a = _scores([0, 0, 0, 0, 1e4])  # row 4: statistical evidence far beyond the sample
    score, violation, _, reason = fusion.fuse({"d": d, "a": a})
    assert score[0] > 1.0 and score[2] > 1.0                    # the suspects: findings
    assert score[4] < score[1] < 1.0 and score[4] < score[3] < 1.0
    assert score[3] > score[1]                                  # weaker clearance, higher
    assert "ranked high" in reason[1] and not violation.any()
    decided, _ = decide(score, violation)
    assert decided.tolist() == [True, False, True, False, False]  # still no suspect
    decided, _ = decide(score, violation, fdr=0.5)                # nor statistical evidence
    assert decided.tolist() == [True, False, True, False, True]
    # where rows repeat by nature, a cleared member keeps its group's soft evidence
    natural = _Structured([0.9] * 4 + [0.0], ["d:g"] * 4 + [None],
                          unnatural=[0.0] * 5, **pair)
    score, _, _, reason = fusion.fuse({"d": natural, "a": a})
    assert score[1] < score[4] and score[3] < score[4]
    assert "ranked high" not in reason[1]


def test_fdr_and_contamination_exclude_each_other(tmp_path):
    import pytest

    from poisonscan.config import ScanConfig
    from poisonscan.errors import ConfigError

    with pytest.raises(ConfigError, match="fdr and contamination"):
        ScanConfig.resolve({"fdr": 0.05, "contamination": 0.01})
    assert ScanConfig.resolve({"fdr": 0.05}).fdr == 0.05


# ----------------------------------------------------------------------- fusion rules

def test_the_rules_combine_p_values_as_their_definitions_say():
    from scipy import stats
    p = np.array([[1e-6, 0.02, 0.3],
                  [0.5, 0.03, 0.3],
                  [1.0, 0.04, 0.3]])
    assert np.array_equal(combine(p, "min"), p.min(axis=0))
    fisher = combine(p, "fisher")
    for j in range(3):
        chi = -2 * np.log(p[:, j]).sum()
        assert fisher[j] == pytest.approx(stats.chi2.sf(chi, 6), rel=1e-9)
    # three moderate p-values add up under Fisher's method: stronger than any one of them
    assert fisher[1] < 0.02
    cauchy = combine(p, "cauchy")
    # one strong family among null ones: about Bonferroni's F * p (a p of 1 vetoes nothing)
    assert cauchy[0] == pytest.approx(3 * 1e-6, rel=0.05)
    # several moderate p-values add up under the Cauchy combination too
    assert cauchy[1] < 0.03
    assert np.all((cauchy >= P_FLOOR) & (cauchy <= 1.0))


def test_the_rules_keep_their_precision_in_the_far_tail():
    p = np.array([[1e-200, 1e-20], [0.9, 0.9]])
    assert combine(p, "cauchy")[0] == pytest.approx(2e-200, rel=1e-6)
    assert combine(p, "cauchy")[1] == pytest.approx(2e-20, rel=1e-6)
    assert 0 < combine(p, "fisher")[0] < 1e-190
    assert combine(np.full((3, 1), P_FLOOR), "fisher")[0] == P_FLOOR  # floored, not 0


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_ranks_a_strong_single_family_first_and_sets_the_fdr_factor(rule):
    rng = np.random.default_rng(7)
    ref = {"a": _scores(rng.normal(size=2000)), "b": _scores(rng.normal(size=2000)),
           "c": _scores(rng.normal(size=2000))}
    fusion = Fusion(rule=rule).fit(ref)
    assert fusion.multiplicity_ == (3 if rule == "min" else 1)
    chunk = {f: _scores(np.zeros(4)) for f in ref}
    chunk["b"] = _scores(np.array([0.0, 9.0, 0.0, 3.0]))  # row 1 far out in b
    score, *_ = fusion.fuse(chunk)
    assert np.argmax(score) == 1 and score[3] > score[0]


def test_an_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown fusion rule 'max'"):
        Fusion(rule="max").fit({"a": _scores(np.arange(10))})
    with pytest.raises(ValueError, match="unknown fusion rule"):
        combine(np.ones((2, 2)), "max")


def test_a_scan_takes_the_rule_from_its_options(tmp_path):
    import pandas as pd

    import poisonscan
    from poisonscan.config import ScanConfig
    from poisonscan.errors import ConfigError

    with pytest.raises(ConfigError, match="fusion"):
        ScanConfig.resolve({"fusion": "max"})
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=400), "y": rng.normal(size=400),
                          "label": rng.choice(["a", "b"], size=400)})
    frame.loc[7, "x"] = 40.0  # far out: a violation whatever the rule
    runs = {rule: poisonscan.scan(frame, label="label", out=tmp_path / rule, quiet=True,
                                  fusion=rule)
            for rule in ("min", "fisher")}
    assert runs["fisher"].summary["config"]["fusion"] == "fisher"
    scores = {rule: run.scores().sort_values("row") for rule, run in runs.items()}
    # the rule tiers are the same; the soft scores are combined differently
    assert scores["min"].suspect.tolist() == scores["fisher"].suspect.tolist()
    assert 7 in runs["min"].suspects.row.tolist()
    soft = scores["min"].score < 1.0
    assert not np.allclose(scores["min"].score[soft], scores["fisher"].score[soft])


def _two_families_and_a_row_at_the_top_of_each():
    """Families ``a`` and ``b`` with the same sample distribution; row 0 lies far out in
    ``a`` and row 1 a little further out in ``b``; rows 2-3 are ordinary."""
    rng = np.random.default_rng(5)
    ref = {"a": _scores(rng.exponential(1.0, 3000)), "b": _scores(rng.exponential(1.0, 3000))}
    chunk = {"a": _scores(np.array([12.0, 0.2, 0.5, 0.1])),
             "b": _scores(np.array([0.2, 14.0, 0.1, 0.5]))}
    return ref, chunk


def test_family_weights_divide_p_values_after_normalising_to_a_mean_of_one():
    ref, chunk = _two_families_and_a_row_at_the_top_of_each()
    plain = Fusion().fit(ref)
    weighted = Fusion(weights={"a": 30.0, "c": 5.0}).fit(ref)  # c: not fitted, ignored
    assert plain.weights_ == {"a": 1.0, "b": 1.0}
    assert weighted.weights_ == pytest.approx({"a": 60 / 31, "b": 2 / 31})
    assert sum(weighted.weights_.values()) == pytest.approx(2.0)  # Bonferroni stays valid
    assert weighted.multiplicity_ == 2
    scores = chunk["a"].scores
    assert weighted.weighted("a", scores) == pytest.approx(
        np.minimum(1.0, plain.pvalue("a", scores) / (60 / 31)))
    assert weighted.weighted("b", chunk["b"].scores) == pytest.approx(
        np.minimum(1.0, plain.pvalue("b", chunk["b"].scores) / (2 / 31)))
    # the calibration itself does not move
    assert np.array_equal(weighted.pvalue("a", scores), plain.pvalue("a", scores))


def test_a_family_weight_moves_a_row_of_that_family_up_the_ranking():
    ref, chunk = _two_families_and_a_row_at_the_top_of_each()
    plain, *_ = Fusion().fit(ref).fuse(chunk)
    assert plain[1] > plain[0]  # b's row lies further out
    trusted, *_ = Fusion(weights={"a": 1e6}).fit(ref).fuse(chunk)
    assert trusted[0] > trusted[1]  # a prior on a's evidence puts its row first
    # equal weights are no weights
    same, *_ = Fusion(weights={"a": 3.0, "b": 3.0}).fit(ref).fuse(chunk)
    assert np.array_equal(same, plain)


def test_a_weighted_family_leads_the_reason_of_a_row_it_shares():
    ref, _ = _two_families_and_a_row_at_the_top_of_each()
    both = {"a": np.array([6.0]), "b": np.array([7.0])}
    assert Fusion().fit(ref).explain(both)[0].tolist() == ["b"]
    assert Fusion(weights={"a": 1e4}).fit(ref).explain(both)[0].tolist() == ["a"]


@pytest.mark.parametrize("weight", [0, -1.0, float("inf"), float("nan"), True])
def test_a_family_weight_must_be_a_positive_finite_number(weight):
    with pytest.raises(ValueError, match="weight of a"):
        Fusion(weights={"a": weight}).fit({"a": _scores(np.arange(10))})


def test_a_scan_takes_the_family_weights_from_its_options_and_config_file(tmp_path):
    import pandas as pd

    import poisonscan
    from poisonscan.config import ScanConfig
    from poisonscan.errors import ConfigError

    (tmp_path / "w.toml").write_text("[family_weights]\nlabels = 0.25\n", encoding="utf-8")
    assert ScanConfig.resolve(config_file=tmp_path / "w.toml").family_weights == {
        "labels": 0.25}
    assert ScanConfig.resolve({"family_weights": "labels=4, outliers=0.5"}).family_weights \
        == {"labels": 4.0, "outliers": 0.5}
    (tmp_path / "bad.toml").write_text("family_weights = {labels = -2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.toml:1: family_weights: the weight of labels"):
        ScanConfig.resolve(config_file=tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text("family_weights = {label = 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"typo.toml:1: family_weights: unknown check "
                                          r"family 'label'"):
        poisonscan.scan(pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}), label="y",
                        config=tmp_path / "typo.toml", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=400), "y": rng.normal(size=400),
                          "label": np.where(rng.normal(size=400) > 0, "a", "b")})
    runs = {name: poisonscan.scan(frame, label="label", out=tmp_path / name, quiet=True,
                                  family_weights=weights)
            for name, weights in (("plain", None), ("labels", {"labels": 100.0}))}
    assert runs["labels"].summary["config"]["family_weights"] == {"labels": 100.0}
    assert runs["plain"].summary["config"]["family_weights"] is None
    scores = {name: run.scores().sort_values("row") for name, run in runs.items()}
    soft = (scores["plain"].score < 1.0).to_numpy()
    # a prior on the label evidence ranks the rows whose label looks wrong higher
    top = {name: set(s[soft].nlargest(20, "score").row) for name, s in scores.items()}
    labels_top = set(scores["plain"][soft].nlargest(20, "labels").row)
    assert len(top["labels"] & labels_top) > len(top["plain"] & labels_top)


def test_explain_names_the_family_with_the_smallest_p():
    rng = np.random.default_rng(1)
    fusion = Fusion().fit({"a": _scores(rng.exponential(1.0, 1000)),
                           "b": _scores(rng.exponential(1.0, 1000))})
    checks, reason = fusion.explain({"a": np.array([9.0, 0.1, 3.0]),
                                     "b": np.array([0.1, 9.0, 3.0])})
    p_a, p_b = (fusion.pvalue(f, np.array([3.0]))[0] for f in "ab")
    assert checks.tolist() == ["a", "b", "a" if p_a <= p_b else "b"]
    assert reason[0].startswith("a: score 9, tail p=")
    assert "no rule of the family fired" in reason[0]
    assert reason[1].startswith("b: score 9, tail p=")
    empty_checks, empty_reason = fusion.explain({"a": np.zeros(0), "b": np.zeros(0)})
    assert len(empty_checks) == len(empty_reason) == 0


@pytest.mark.parametrize("decision", [{"fdr": 0.05}, {"contamination": 0.1}])
def test_every_suspect_chosen_on_soft_evidence_has_a_reason(tmp_path, decision):
    """A count column piling up at its zero wall: its zeros get the ``bounds`` family's
    largest position score, which no rule puts in words (on data like this, 107 of the
    197 suspects of ``--fdr 0.05`` had an empty reason); ``--contamination`` chooses rows
    on their soft scores too."""
    import pandas as pd

    import poisonscan

    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=(n, 2))
    y = np.where(x[:, 0] + 0.5 * rng.normal(size=n) > 0, "yes", "no")
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "cnt": rng.poisson(3, n), "y": y})
    result = poisonscan.scan(frame, label="y", out=tmp_path / "out", quiet=True, **decision)
    suspects = pd.read_csv(tmp_path / "out" / "suspects.csv")
    quarantine = result.quarantine()
    assert len(suspects) == len(quarantine) >= 20
    assert suspects["reason"].notna().all() and suspects["checks"].notna().all()
    assert quarantine["_reason"].notna().all()
    silent = suspects["reason"].str.contains("no rule of the family fired")
    assert silent.any()  # the soft evidence of some suspect was put in words here
    families = suspects.loc[silent, "checks"]
    assert all(f in result.summary["checks"] for f in families)
    assert (suspects.loc[silent, "reason"].str.split(":").str[0] == families).all()
