"""The outliers family: detectors, class geometry, calibration, selection and edge cases."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import poisonscan
from poisonscan.checks.outliers import DEFAULT_DETECTORS, DETECTORS, PAIR_COMMON_SHARE, \
    PAIR_KEEP, PAIRS_BEYOND, OutlierCheck, TailCalibration
from poisonscan.cli import main
from poisonscan.errors import ConfigError
from poisonscan.io.sources import TableSource

from conftest import fit_check, score_chunks

#: Planted rows of :func:`correlated`.
JOINT, GROSS = 10, 20


def correlated(rows: int = 1000, seed: int = 0, classes=("neg", "pos")) -> pd.DataFrame:
    """Three strongly correlated columns, one independent, a categorical and a label.

    Row ``JOINT`` has every value in range but breaks the correlations; row ``GROSS``
    holds a value 50 standard deviations out.
    """
    rng = np.random.default_rng(seed)
    t = rng.normal(size=rows)
    noise = rng.normal(scale=0.1, size=(rows, 3))
    df = pd.DataFrame({
        "a": t + noise[:, 0],
        "b": 2 * t + noise[:, 1],
        "c": -t + noise[:, 2],
        "d": rng.normal(size=rows),
        "colour": rng.choice(["red", "green", "blue"], rows),
    })
    if len(classes) == 2:
        df["y"] = np.where(t + rng.normal(scale=0.5, size=rows) > 0, classes[1], classes[0])
    else:
        df["y"] = rng.choice(list(classes), rows)
    df.loc[JOINT, ["a", "b", "c"]] = [1.5, -3.0, 1.5]
    df.loc[GROSS, "d"] = 50.0
    return df


def fitted(df, label="y", chunk_rows=300, sample_rows=100_000, seed=0, **params):
    """An outlier check fitted through pass 1 and fit, and the schema it was fitted on."""
    check = OutlierCheck(**params)
    check._validate_params()
    source, schema = fit_check(check, df, label=label, chunk_rows=chunk_rows,
                               sample_rows=sample_rows, seed=seed)
    return check, source, schema


def scored(check, source, schema, chunk_rows=10_000):
    return score_chunks(check, source, schema, chunk_rows)


def rank_of(scores, row):
    return int((scores > scores[row]).sum())


# ---------------------------------------------------------------------------- ranking

def test_planted_rows_rank_first_with_readable_reasons():
    check, source, schema = fitted(correlated())
    assert list(check.detectors_) == list(DEFAULT_DETECTORS)
    scores, violation, reasons = scored(check, source, schema)
    assert sorted(np.argsort(-scores)[:2]) == [JOINT, GROSS]
    assert not violation.any()  # soft evidence only
    # the joint row breaks the correlations, so both the subspace and a pair of them see it
    assert reasons[JOINT].startswith("outliers:") and "subspace top " in reasons[JOINT]
    assert "pairs top " in reasons[JOINT] and " other sampled rows, " in reasons[JOINT]
    assert reasons[GROSS].startswith("outliers:ellipsoid ")
    for row in (JOINT, GROSS):
        assert "% of rows" in reasons[row] or "beyond all 1000 sampled rows" in reasons[row]
        assert "radii from class " in reasons[row] and "centroid" in reasons[row]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_is_pure_chunk_invariant_and_finds_the_gross_outlier(name):
    rng = np.random.default_rng(5)
    df = pd.DataFrame(rng.normal(size=(600, 4)), columns=list("abcd"))
    df["colour"] = rng.choice(["red", "green"], 600)
    df["y"] = np.where(df["a"] + df["b"] > 0, "pos", "neg")
    df.loc[GROSS, ["c", "d"]] = [40.0, -40.0]
    check, source, schema = fitted(df, detectors=[name], sample_rows=400)
    assert list(check.detectors_) == [name]
    before = pickle.dumps(check)
    whole, _, reasons = scored(check, source, schema, chunk_rows=600)
    parts, _, part_reasons = scored(check, source, schema, chunk_rows=37)
    assert pickle.dumps(check) == before, "score() changed the check"
    assert np.array_equal(whole, parts)
    assert list(reasons) == list(part_reasons)
    assert whole.dtype == np.float64 and np.isfinite(whole).all()
    if name not in ("slab", "subspace", "pairs"):  # these look elsewhere (tests below)
        assert rank_of(whole, GROSS) < 3, f"{name} ranks a 40-sigma row {rank_of(whole, GROSS)}th"


#: The planted row of :func:`tenure`.
IMPOSSIBLE = 40


def tenure(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Age and months of tenure (at most twelve per year past 17), two unrelated columns,
    a categorical with missing values and a label. Row ``IMPOSSIBLE`` is a 19-year-old
    with 200 months of tenure: each value is common, the combination impossible."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 70, rows)
    df = pd.DataFrame({"age": age, "tenure_months": rng.integers(0, 12 * (age - 17) + 1),
                       "load": rng.normal(size=rows), "spend": rng.lognormal(3, 1, rows),
                       "region": rng.choice(["north", "south", "east", None], rows),
                       "y": rng.choice(["a", "b"], rows)})
    df.loc[IMPOSSIBLE, ["age", "tenure_months"]] = [19, 200]
    return df


def test_pairs_finds_a_combination_of_two_common_values_that_no_sampled_row_holds():
    df = tenure()
    assert (df["tenure_months"] >= 200).mean() > 0.15 and (df["age"] <= 19).mean() > 0.02
    check, source, schema = fitted(df, detectors=["pairs"])
    scores, violation, reasons = scored(check, source, schema, chunk_rows=700)
    assert rank_of(scores, IMPOSSIBLE) == 0 and not violation.any()
    assert reasons[IMPOSSIBLE].startswith("outliers:pairs ")
    assert "'age' at percentiles 0-" in reasons[IMPOSSIBLE]
    assert "'tenure_months' at percentiles " in reasons[IMPOSSIBLE]
    assert ": 0 other sampled rows, " in reasons[IMPOSSIBLE]
    assert check.describe()["detector_details"]["pairs"]["pairs"][0] == ["age", "tenure_months"]
    # the linear detectors see a mild disagreement only; in the default family the pair's
    # evidence beyond PAIRS_BEYOND lifts the row
    linear, source, schema = fitted(df, detectors=["subspace", "ellipsoid"])
    assert rank_of(scored(linear, source, schema)[0], IMPOSSIBLE) > 10
    default, source, schema = fitted(df)
    assert rank_of(scored(default, source, schema)[0], IMPOSSIBLE) < 3


def test_pairs_never_pairs_two_outputs_of_one_input_column():
    """One-hot levels of one column never occur together, nor does a missing-value
    indicator with any value but the imputed one: such empty cells say nothing."""
    df = tenure()
    df.loc[::9, "spend"] = np.nan
    check, _, _ = fitted(df, detectors=["pairs"])
    pairs = check.detectors_["pairs"]
    sources = dict(zip(check.encoder_.feature_names_, check.encoder_.sources()))
    assert sources["region_north"] == sources["region_south"] == "region"
    assert sources["spend__missing"] == "spend"
    names = check.encoder_.feature_names_
    eligible = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                if sources[a] != sources[b]]
    assert len(eligible) < len(names) * (len(names) - 1) // 2
    assert len(pairs.pairs_) == min(PAIR_KEEP, len(eligible))
    for a, b in pairs.pairs_:
        assert sources[names[a]] != sources[names[b]], (names[a], names[b])


def test_pairs_does_not_count_a_sampled_row_in_its_own_cell():
    """A sampled row is not counted in its own cell: its evidence is what the other
    sampled rows say, as for a row the sample does not hold."""
    df = tenure()
    check, source, schema = fitted(df, detectors=["pairs"])
    chunk = next(iter(source.chunks(len(df), schema)))
    pairs = check.detectors_["pairs"]
    Z = check._standardise(check.encoder_.transform(chunk, owned=True), in_place=True)
    codes = check._codes(chunk, Z)
    inside = pairs.score(Z, codes, chunk.rows)
    outside = pairs.score(Z, codes, chunk.rows + len(df))  # ids the sample never held
    assert np.array_equal(pairs._sampled(chunk.rows), np.ones(len(df), dtype=bool))
    assert not pairs._sampled(chunk.rows + len(df)).any()
    # alone in its cell: no other sampled row as itself, one (itself) for a new row
    assert inside[IMPOSSIBLE] == inside.max()
    assert math.isclose(inside[IMPOSSIBLE] - outside[IMPOSSIBLE], math.log(2.0))
    # a new row with a sampled row's values meets that row in its cell: never less common
    assert (outside <= inside).all() and (outside < inside).mean() > 0.9


def test_pairs_reasons_speak_of_levels_flags_and_missing_values():
    """A rare 0/1 flag (its cuts all at 0) still gets a bin of its own; one-hot levels and
    missing values are named as such, not as percentiles of their encoded columns."""
    rng = np.random.default_rng(2)
    rows = 4000
    age = rng.integers(18, 70, rows)
    married = (age > 25) & (rng.random(rows) < 0.7)
    df = pd.DataFrame({
        "age": age,
        "flag": ((age >= 30) & (rng.random(rows) < 0.08)).astype(int),  # never below 30
        "status": np.where(married, "married", np.where(age < 22, "student", "single")),
        "pension": np.where(age > 50, np.nan, rng.normal(size=rows)),  # only the old lack one
        "y": rng.choice(["a", "b"], rows)})
    ordinary = {"flag": 0, "status": "student", "pension": 0.0}  # for a 19-20-year-old
    planted = {5: {**ordinary, "age": 19, "flag": 1},
               6: {**ordinary, "age": 19, "status": "married"},
               7: {**ordinary, "age": 20, "pension": np.nan}}
    for row, values in planted.items():
        for column, value in values.items():
            df.loc[row, column] = value
    check, source, schema = fitted(df, detectors=["pairs"])
    scores, _, reasons = scored(check, source, schema)
    assert all(rank_of(scores, row) < 30 for row in planted), [rank_of(scores, r) for r in planted]
    assert "'age' at percentiles 0-" in reasons[5] and "'flag' at percentiles 9" in reasons[5]
    assert "'status' is 'married'" in reasons[6], reasons[6]
    assert "'pension' missing" in reasons[7], reasons[7]
    assert "__missing" not in " ".join(r for r in reasons if r)


def test_pairs_says_nothing_of_common_cells_and_skips_without_two_columns():
    """A cell holding what independence predicts, or more than a small share of the
    sample however depleted (a sub-population), is no evidence; with no two input
    columns to pair, the detector is skipped, not run on nothing."""
    rng = np.random.default_rng(3)
    rows = 3000
    df = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], rows),
                       "size": rng.choice(["s", "m", "l"], rows),
                       "y": rng.choice(["a", "b"], rows)})
    check, source, schema = fitted(df, detectors=["pairs"])
    scores, _, reasons = scored(check, source, schema)
    assert (scores == scores[0]).all()  # independent levels: every cell ordinary
    assert all(r is None for r in reasons)
    single, _, _ = fitted(df[["colour", "y"]], detectors=["pairs"])
    assert single.skipped_detectors_ == {"pairs": "no two input columns with two bins each"}
    assert single.inactive_ == "no detector could run"


def test_pairs_compiled_scores_are_the_plain_numpy_ones():
    """The compiled kernel bins as ``searchsorted`` does (NaN past every edge) and takes
    the largest depletion over the pairs (0 at least: a cell holding what independence
    predicts, or a share of the sample, says nothing), the row itself not counted where
    sampled."""
    df = tenure()
    check, source, schema = fitted(df, detectors=["pairs"], sample_rows=1500)
    pairs = check.detectors_["pairs"]
    chunk = next(iter(source.chunks(len(df), schema)))
    Z = check._standardise(check.encoder_.transform(chunk, owned=True), in_place=True)
    own = pairs._sampled(chunk.rows)
    assert 0 < own.sum() < len(df)
    Z[np.flatnonzero(~own)[::7], pairs.columns_[0]] = np.nan
    expected = np.zeros(len(Z))
    for (a, b), (count, mean) in zip(pairs.pairs_, pairs.tables_):
        cell = pairs._bin(Z, a) * (len(pairs.edges_[b]) + 1) + pairs._bin(Z, b)
        depletion = np.log((mean[cell] + 1.0) / (count[cell] - own + 1.0))
        common = count[cell] > PAIR_COMMON_SHARE * len(pairs.rows_)  # a sub-population
        np.maximum(expected, np.where(common, 0.0, depletion), out=expected)
    assert np.array_equal(pairs.score(Z, None, chunk.rows), expected)


def test_pairs_evidence_adds_to_the_family_only_beyond_its_threshold():
    """A cell of two columns says nothing for most rows: the mean of the other detectors
    stays the family score there, and a depleted cell adds what it holds beyond it."""
    per = {"subspace": np.array([1.0, 1.0, 4.0]), "ellipsoid": np.array([1.0, 3.0, 2.0]),
           "pairs": np.array([PAIRS_BEYOND + 3.0, PAIRS_BEYOND - 1.0, 0.0])}
    assert np.allclose(OutlierCheck._combine(per), [1.0 + 3.0, 2.0, 3.0])
    alone = {"pairs": per["pairs"]}  # chosen alone, it ranks by its own evidence
    assert np.array_equal(OutlierCheck._combine(alone), per["pairs"])


@pytest.mark.parametrize("log_skewed", [False, True])
def test_scoring_leaves_the_chunks_shared_encoding_alone(log_skewed):
    """The check standardises its matrix in place: never the encoded matrix the chunk
    caches for the other families (with the linear encoder it is that very matrix)."""
    df = correlated(400)
    df["amount"] = np.random.default_rng(1).lognormal(3, 2, 400)  # skewed: log-scaled
    check, source, schema = fitted(df, log_skewed=log_skewed)
    assert bool(check.log_columns_) == log_skewed
    chunk = next(iter(source.chunks(400, schema)))
    shared = (check.encoder_.linear_ or check.encoder_).transform(chunk)  # cached
    before = shared.copy()
    first = check.score(chunk).scores
    assert np.array_equal(shared, before)
    assert np.array_equal(check.score(chunk).scores, first)


def test_many_gross_outliers_do_not_hide_inside_the_principal_subspace():
    rng = np.random.default_rng(7)
    t = rng.normal(size=1000)
    df = pd.DataFrame({"a": t, "b": 2 * t, "c": -t, "d": rng.normal(size=1000)})
    df[["a", "b", "c"]] += rng.normal(scale=0.1, size=(1000, 3))
    gross = np.arange(5, 1000, 10)  # 10% of the rows, all in the sample
    df.loc[gross, "a"] = 30.0  # far off, and off the line a, b and c lie on
    check, source, schema = fitted(df, label=None, detectors=["subspace"])
    scores, _, _ = scored(check, source, schema)
    assert len(set(np.argsort(-scores)[:len(gross)]) & set(gross)) >= 60  # 0 unwinsorised


def test_geometry_detectors_see_a_row_carrying_the_other_class_label():
    df = correlated(1000)
    far = int(np.argmax(df["a"].to_numpy() * (df["y"] == "pos")))  # deep inside 'pos'
    df.loc[far, "y"] = "neg"
    for name in ("sphere", "slab", "ellipsoid"):
        check, source, schema = fitted(df, detectors=[name])
        scores, _, _ = scored(check, source, schema)
        assert rank_of(scores, far) < 20, name


# ---------------------------------------------------------------------------- selection

def test_detector_selection_through_the_command_line(tmp_path, capsys):
    path = tmp_path / "d.csv"
    correlated(300).to_csv(path, index=False)
    out = tmp_path / "out"
    code = main(["scan", str(path), "--label", "y", "--detectors", "iforest,sphere",
                 "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    learned = summary["checks"]["outliers"]["learned"]
    assert learned["detectors"] == ["iforest", "sphere"]
    assert summary["config"]["families"]["outliers"]["detectors"] == ["iforest", "sphere"]


@pytest.mark.parametrize("how", ["flag", "config"])
def test_unknown_detector_is_a_usage_error_naming_it(tmp_path, capsys, how):
    path = tmp_path / "d.csv"
    correlated(100).to_csv(path, index=False)
    out = tmp_path / "out"
    argv = ["scan", str(path), "--label", "y", "--out", str(out)]
    if how == "flag":
        argv += ["--detectors", "iforest,isolation_forest"]
    else:
        config = tmp_path / "poisonscan.toml"
        config.write_text('[outliers]\ndetectors = ["iforest", "isolation_forest"]\n')
        argv += ["--config", str(config)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "'isolation_forest'" in lines[0] and "iforest" in lines[0]
    assert not out.exists()


def test_detector_parameter_errors_from_the_library():
    with pytest.raises(ConfigError, match="unknown detector 'nope'"):
        poisonscan.scan(correlated(50), label="y", families={"outliers": {"detectors": ["nope"]}})
    with pytest.raises(ConfigError, match="at least one detector"):
        OutlierCheck(detectors=[])._validate_params()
    with pytest.raises(ConfigError, match="list of names"):
        OutlierCheck(detectors=[1])._validate_params()
    assert OutlierCheck(detectors="hbos, iforest")._detector_names() == ("hbos", "iforest")


def test_import_is_light():
    code = ("import sys, poisonscan.checks.outliers; "
            "print(any(m == 'pyod' or m.startswith('pyod.') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------------------- edge cases

def test_without_a_label_geometry_is_skipped_and_the_rest_runs():
    df = correlated().drop(columns="y")
    check, source, schema = fitted(df, label=None,
                                   detectors=["subspace", "ellipsoid", "sphere", "slab"])
    assert list(check.detectors_) == ["subspace", "ellipsoid"]
    assert check.skipped_detectors_ == {"sphere": "no label column", "slab": "no label column"}
    scores, _, reasons = scored(check, source, schema)
    assert np.isfinite(scores).all()
    assert sorted(np.argsort(-scores)[:2]) == [JOINT, GROSS]
    assert "radii" not in reasons[JOINT]


def test_one_class_data_has_no_slab():
    check, source, schema = fitted(correlated(classes=("only",)),
                                   detectors=["sphere", "slab", "ellipsoid"])
    assert list(check.detectors_) == ["sphere", "ellipsoid"]
    assert check.skipped_detectors_ == {"slab": "fewer than two modelled classes"}
    scores, _, reasons = scored(check, source, schema)
    assert rank_of(scores, GROSS) == 0
    assert "radii from class 'only' centroid" in reasons[GROSS]


def test_one_row_and_tiny_data_are_scored_without_error():
    one = correlated(30).iloc[[0]].reset_index(drop=True)
    result = poisonscan.scan(one, label="y", checks=["outliers"])
    assert result.scores()["outliers"].tolist() == [0.0]
    learned = result.summary["checks"]["outliers"]["learned"]
    assert "fewer than" in learned["inactive"]
    check, source, schema = fitted(correlated(30).iloc[:6].reset_index(drop=True))
    assert check.inactive_ is None and check.classes_ == []  # no class has 10 sampled rows
    scores, _, _ = scored(check, source, schema)
    assert np.isfinite(scores).all()


def test_all_missing_and_identifier_columns_are_left_out_and_reported():
    df = correlated(400)
    df["empty"] = np.nan
    df["uid"] = [f"id-{i:05d}" for i in range(len(df))]
    df["seq"] = 10_000 + np.arange(len(df))
    result = poisonscan.scan(df, label="y", checks=["outliers"])
    learned = result.summary["checks"]["outliers"]["learned"]
    assert set(learned["skipped_columns"]) == {"empty", "uid", "seq"}
    assert "identifier-like" in learned["skipped_columns"]["uid"]
    assert "identifier-like" in learned["skipped_columns"]["seq"]
    scores = result.scores().sort_values("row")["outliers"].to_numpy()
    assert sorted(np.argsort(-scores)[:2]) == [JOINT, GROSS]


def test_unseen_categories_and_labels_at_scoring_time():
    check, _, schema = fitted(correlated(800))
    later = correlated(800, seed=1).iloc[100:140].reset_index(drop=True)
    later.loc[0, "colour"] = "ultraviolet"   # never sampled
    later.loc[1, "y"] = "maybe"              # a label never sampled
    later.loc[1, ["a", "b", "c"]] = [1.5, -3.0, 1.5]
    later.loc[2, "y"] = None                 # missing label
    chunk = next(TableSource(later).chunks(100, schema))
    out = check.score(chunk)
    assert np.isfinite(out.scores).all() and out.scores.shape == (40,)
    assert out.reasons[1] is not None and "nearest class" in out.reasons[1]
    assert int(np.argmax(out.scores)) == 1


def test_reasons_only_for_the_tail_of_the_sample():
    df = correlated(2000)
    check, source, schema = fitted(df)
    scores, _, reasons = scored(check, source, schema)
    said = np.array([r is not None for r in reasons])
    assert 0.005 <= said.mean() <= 0.02
    assert scores[said].min() >= scores[~said].max()
    quiet, source, schema = fitted(df, reason_tail=0.0)
    _, _, reasons = scored(quiet, source, schema)
    assert all(r is None for r in reasons)
    assert quiet.describe()["reason_threshold"] is None
    json.dumps(quiet.describe(), allow_nan=False)


def test_same_seed_same_scores_other_seed_other_forest():
    df = correlated(600)
    a = poisonscan.scan(df, label="y", checks=["outliers"], seed=3,
                        families={"outliers": {"detectors": ["iforest"]}}).scores()
    b = poisonscan.scan(df, label="y", checks=["outliers"], seed=3,
                        families={"outliers": {"detectors": ["iforest"]}}).scores()
    c = poisonscan.scan(df, label="y", checks=["outliers"], seed=4,
                        families={"outliers": {"detectors": ["iforest"]}}).scores()
    assert a.equals(b)
    assert not np.array_equal(a["outliers"].to_numpy(), c["outliers"].to_numpy())


def test_describe_reports_what_was_learned():
    check, _, _ = fitted(correlated(500), detectors=["subspace", "sphere", "hbos"])
    learned = check.describe()
    assert learned["detectors"] == ["subspace", "sphere", "hbos"]
    assert learned["encoded_features"] == 7  # a, b, c, d + three colours
    assert 1 <= learned["detector_details"]["subspace"]["components"] < 7
    assert set(learned["classes"]) == {"neg", "pos"}
    assert learned["classes"]["neg"]["sampled_rows"] + learned["classes"]["pos"]["sampled_rows"] \
        == 500
    json.dumps(learned, allow_nan=False)  # plain JSON values


# ---------------------------------------------------------------------------- calibration

def test_tail_calibration_is_monotone_and_extrapolates():
    rng = np.random.default_rng(0)
    sample = rng.exponential(size=1000)
    cal = TailCalibration.fit(sample)
    grid = np.linspace(-1, 30, 500)
    evidence = cal(grid)
    assert np.all(np.diff(evidence) >= 0)
    assert evidence[0] == pytest.approx(-np.log((1 + 1000 - 0.5) / 1001))  # below everything
    beyond = cal(np.array([sample.max() + 1, sample.max() + 10]))
    assert beyond[1] > beyond[0] > cal(np.array([sample.max()]))[0] \
        == pytest.approx(np.log(1001 / 1.5))
    assert cal.share(float(sample.max()) + 1) is None
    assert cal.share(float(np.median(sample))) == pytest.approx(0.5, abs=0.01)
    assert np.isfinite(cal(np.array([np.nan, np.inf, -np.inf]))).all()


def test_tail_calibration_of_constant_scores():
    cal = TailCalibration.fit(np.zeros(50))
    assert cal.scale == 0
    assert np.isfinite(cal(np.array([0.0, 1.0, -1.0]))).all()


def test_log_scale_finds_the_broken_relation_of_skewed_columns():
    """Two sizes that span decades and grow together (hpc's compounds and input fields):
    a row holding a small one and a large one, each in range, breaks their relation on
    the log scale, where the linear encoding sees two ordinary magnitudes. (Beyond their
    99th percentiles the sizes turn linear again: the largest of them rank with it.) The
    ``pairs`` detector cuts columns at quantiles, which no monotone scale moves: it sees
    the row on both scales."""
    rng = np.random.default_rng(4)
    rows = 2000
    t = rng.normal(size=rows)
    df = pd.DataFrame({"compounds": np.exp(5 + 1.5 * t + rng.normal(scale=0.2, size=rows)),
                       "fields": np.exp(7 + 1.5 * t + rng.normal(scale=0.2, size=rows)),
                       "load": rng.normal(size=rows),
                       "y": rng.choice(["a", "b"], rows)})
    planted = 33
    df.loc[planted, ["compounds", "fields"]] = [np.exp(5 - 1.0), np.exp(7 + 1.0)]
    ranks, paired = {}, {}
    for log in (True, False):
        check, source, schema = fitted(df, log_skewed=log, detectors=["subspace", "ellipsoid"])
        assert check.log_columns_ == (["compounds", "fields"] if log else [])
        assert check.describe()["log_scaled_columns"] == check.log_columns_
        ranks[log] = rank_of(scored(check, source, schema)[0], planted)
        check, source, schema = fitted(df, log_skewed=log, detectors=["pairs"])
        paired[log] = rank_of(scored(check, source, schema)[0], planted)
    assert ranks[True] < rows // 100, ranks  # in the top 1%
    assert ranks[False] > 100, ranks  # among the rows with one large size
    assert paired[True] == paired[False] < rows // 100, paired
