"""The labels family: confident learning and neighbour agreement on planted label flips."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

import poisonscan
from poisonscan import pipeline
from poisonscan.checks.labels import LabelsCheck
from poisonscan.errors import ConfigError

from conftest import fit_check, score_chunks


def blobs(rows=900, classes=("ham", "spam"), seed=0, spread=1.0):
    """Gaussian classes in 3 numeric columns plus a noise category; labels as given."""
    rng = np.random.default_rng(seed)
    k = len(classes)
    y = rng.integers(k, size=rows)
    centres = rng.normal(0, 4, size=(k, 3))
    x = centres[y] + rng.normal(0, spread, size=(rows, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "colour": rng.choice(["red", "green", "blue"], rows),
                         "y": np.asarray(classes, dtype=object)[y]})


def flip(df, rows, seed=1):
    """Give ``rows`` another class, drawn uniformly."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    classes = np.array(sorted(df["y"].unique(), key=str), dtype=object)
    for row in rows:
        others = classes[classes != df.at[row, "y"]]
        out.at[row, "y"] = others[rng.integers(len(others))]
    return out


def fitted(df, *, chunk_rows=250, sample_rows=100_000, seed=0, **params):
    check = LabelsCheck(**params)
    source, schema = fit_check(check, df, chunk_rows=chunk_rows, sample_rows=sample_rows,
                               seed=seed)
    return check, source, schema


def scored(check, source, schema, chunk_rows=300):
    scores, violation, reasons = score_chunks(check, source, schema, chunk_rows)
    return scores, reasons, violation


def top(scores, k):
    return set(np.argsort(-scores, kind="stable")[:k].tolist())


PLANTED = [7, 40, 111, 222, 350, 401, 555, 678, 777, 850]


@pytest.fixture(scope="module")
def binary():
    df = flip(blobs(), PLANTED)
    return df, fitted(df)


def test_binary_flips_rank_on_top_with_readable_reasons(binary):
    df, (check, source, schema) = binary
    scores, reasons, violation = scored(check, source, schema)
    assert top(scores, len(PLANTED)) == set(PLANTED)
    assert not violation.any()  # soft evidence only
    for row in PLANTED:
        given = df.at[row, "y"]
        other = "spam" if given == "ham" else "ham"
        assert reasons[row].startswith(f"labels: given '{given}' p=0.")
        assert f"model says '{other}' p=" in reasons[row]
        assert f"/10 neighbours '{other}'" in reasons[row]
    clean = np.setdiff1d(np.arange(len(df)), PLANTED)
    assert (reasons[clean] == None).mean() > 0.97  # noqa: E711 - reasons only for the tail
    assert scores.min() >= 0 and np.isfinite(scores).all()  # -ln P(label right)


def test_binary_estimate_of_wrong_labels_is_reported(binary):
    _, (check, _, _) = binary
    learned = check.describe()
    assert learned["checked"] is True
    assert 5 <= learned["estimated_label_issues"] <= 20  # 10 planted in 900 rows
    assert set(learned["classes"]) == {"ham", "spam"}
    assert sum(learned["classes"].values()) == 900
    assert set(learned["thresholds"]) == {"ham", "spam"}
    assert learned["rare_classes"] == {}


@pytest.mark.parametrize("labels", [(0, 1, 2, 3), ("north", "south", "east", "west"),
                                    (True, False)], ids=["int", "str", "bool"])
def test_multiclass_and_label_types(labels):
    df = flip(blobs(800, classes=labels, seed=3), PLANTED[:8])
    check, source, schema = fitted(df)
    scores, reasons, _ = scored(check, source, schema)
    assert len(top(scores, 8) & set(PLANTED[:8])) >= 7
    # labels arrive as text, as Arrow writes them (booleans as "true"/"false")
    text = [str(v).lower() if isinstance(v, bool) else str(v) for v in labels]
    assert sorted(check.describe()["classes"]) == sorted(text)
    for row in PLANTED[:8]:
        given = df.at[row, "y"]
        given = str(given).lower() if isinstance(given, (bool, np.bool_)) else str(given)
        assert reasons[row].startswith(f"labels: given '{given}'")


def test_rare_class_is_reported_not_checked():
    df = blobs(600, seed=4)
    df.loc[[5, 50, 500], "y"] = "unicorn"
    check, source, schema = fitted(df)
    learned = check.describe()
    assert learned["rare_classes"] == {"unicorn": 3}
    assert "unicorn" not in learned["classes"]
    scores, reasons, _ = scored(check, source, schema)
    assert (scores[[5, 50, 500]] == 0).all() and (reasons[[5, 50, 500]] == None).all()  # noqa: E711
    assert scores.max() > 0  # the other classes are still checked


def test_single_class_has_nothing_to_check():
    df = blobs(300, classes=("only",))
    check, source, schema = fitted(df)
    scores, reasons, violation = scored(check, source, schema)
    assert (scores == 0).all() and not violation.any() and (reasons == None).all()  # noqa: E711
    learned = check.describe()
    assert learned["checked"] is False and learned["note"] == "nothing to check: one class"


def test_missing_labels_score_zero_and_are_left_to_bounds(tmp_path):
    df = flip(blobs(), PLANTED)
    df["y"] = df["y"].astype(object)
    missing = [3, 30, 300]
    df.loc[missing, "y"] = None
    res = poisonscan.scan(df, label="y", out=tmp_path / "o", checks=["bounds", "labels"],
                          contamination=0.01)
    scores = res.scores().set_index("row")
    assert (scores.loc[missing, "labels"] == 0).all()
    assert top(scores["labels"].to_numpy(), len(PLANTED)) == set(PLANTED)
    found = res.suspects.set_index("row")
    for row in missing:  # reported once, by bounds
        assert found.at[row, "checks"] == "bounds"
        assert "labels:" not in found.at[row, "reason"]
    counts = df["y"].value_counts().to_dict()
    assert res.summary["checks"]["labels"]["learned"]["classes"] == counts


def test_same_seed_same_scores_other_seed_other_folds():
    df = flip(blobs(500, seed=5), PLANTED[:5])
    a = scored(*fitted(df, seed=0))[0]
    b = scored(*fitted(df, seed=0))[0]
    c = scored(*fitted(df, seed=7))[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # folds and model seeds follow the scan seed
    assert top(a, 5) == top(c, 5) == set(PLANTED[:5])


def test_chunking_and_sampling_change_nothing():
    """Rows outside the sample use fold models, sampled rows their out-of-fold values."""
    df = flip(blobs(1200, seed=6), PLANTED)
    small = dict(sample_rows=500, model_rows=300, knn_rows=200)  # every path of pass 2
    check, source, schema = fitted(df, chunk_rows=97, **small)
    other, _, _ = fitted(df, chunk_rows=1200, **small)
    whole = scored(check, source, schema, chunk_rows=1200)
    for size in (1, 64, 333):
        part = scored(check, source, schema, chunk_rows=size)
        assert np.array_equal(whole[0], part[0]) and list(whole[1]) == list(part[1])
    assert np.array_equal(whole[0], scored(other, source, schema, chunk_rows=1200)[0])
    # the sample scored as a chunk of its own gives its rows the same (out-of-fold) scores
    assert len(check.oof_rows_) == 300 and len(check.knn_rows_) == 200
    state = None
    for chunk in source.chunks(1200, schema):
        state = pipeline.summarize(chunk, [], sample_rows=500, seed=0)
    alone = check.score(state.profile.sample_chunk()).scores
    assert np.array_equal(alone, whole[0][state.profile.sample.rows])
    assert len(top(whole[0], len(PLANTED)) & set(PLANTED)) >= 9


def test_neighbours_are_exact_with_ties_and_exclude_the_row_itself():
    base = blobs(300, seed=8)
    df = pd.concat([base] + [base.iloc[:40]] * 12, ignore_index=True)  # many exact ties
    check, source, schema = fitted(df)
    chunk = next(source.chunks(len(df), schema))
    X = check._project(check._encoder.transform(chunk))
    got = check._neighbours(X, chunk.rows)
    # reference: exact distances, ties broken by index position, self excluded by row id,
    # positions sorted within each scale's band
    dist = np.zeros((len(X), len(check.knn_X_)))
    for j in range(X.shape[1]):  # summed feature by feature, as the search does
        dist += (X[:, j:j + 1] - check.knn_X_[None, :, j]) ** 2
    dist[check.knn_rows_[None, :] == chunk.rows[:, None]] = np.inf
    position = np.broadcast_to(np.arange(len(check.knn_rows_)), dist.shape)
    expected = np.lexsort((position, dist), axis=1)[:, :check.k_]
    assert np.array_equal(got, check._canonical(expected))
    assert not (check.knn_rows_[got] == chunk.rows[:, None]).any()
    copies = np.arange(300, len(df))
    nearest = check.knn_X_[got[copies, 0]]
    assert np.array_equal(nearest, X[copies])  # each copy's nearest row is another copy


def test_a_flipped_cluster_does_not_vouch_for_itself():
    rng = np.random.default_rng(9)
    x = rng.uniform(-3, 3, size=(1500, 2))
    y = np.where(x[:, 0] + x[:, 1] > 0, "a", "b").astype(object)
    centre = np.array([1.5, 1.5])
    cluster = np.argsort(((x - centre) ** 2).sum(axis=1))[:30]  # 2% of rows, all 'a'
    y[cluster] = "b"
    df = pd.DataFrame({"u": x[:, 0], "v": x[:, 1], "y": y})
    scores = scored(*fitted(df))[0]
    assert len(top(scores, 30) & set(cluster.tolist())) >= 24


@pytest.mark.parametrize("model", ["hgb", "logreg"])
def test_other_models(binary, model):
    df, _ = binary
    check, source, schema = fitted(df, model=model)
    assert len(top(scored(check, source, schema)[0], len(PLANTED)) & set(PLANTED)) >= 9
    assert check.describe()["model"] == model


def test_parameters_are_validated():
    with pytest.raises(ConfigError, match="model"):
        fitted(blobs(100), model="forest")
    with pytest.raises(ConfigError, match="folds"):
        fitted(blobs(100), folds=1)


def test_scoring_leaves_the_check_unchanged(binary):
    _, (check, source, schema) = binary
    before = pickle.dumps(check)
    scored(check, source, schema)
    assert pickle.dumps(check) == before


def test_many_classes_fall_back_to_the_linear_model():
    df = blobs(500, classes=tuple(f"c{i:02d}" for i in range(25)), seed=10, spread=0.3)
    check, source, schema = fitted(df)
    learned = check.describe()
    assert learned["model"].startswith("logreg (boosting skipped")
    assert len(learned["classes"]) == 25
    assert all(len(fold) == 1 for fold in check.models_)
    scores = scored(check, source, schema)[0]
    assert np.isfinite(scores).all() and 0 <= scores.min()  # -ln P(label right)


@pytest.mark.parametrize("reentrant", [True, False])
def test_fold_models_do_not_depend_on_how_the_fits_are_scheduled(binary, monkeypatch,
                                                                 reentrant):
    """The logistic regressions fitted in threads beside the boosting models (SciPy 1.15
    and later) or one after the other (older SciPy) are the same models."""
    import poisonscan.checks.labels as labels_module
    df, (reference, source, schema) = binary
    monkeypatch.setattr(labels_module, "lbfgs_reentrant", lambda: reentrant)
    check = fitted(df)[0]
    assert [[type(m).__name__ for m in fold] for fold in check.models_] == \
        [["CompiledBoosting", "LogisticRegression"]] * check.folds
    assert all(fold[0].compiled_ for fold in check.models_)
    for ours, theirs in zip(check.models_, reference.models_):
        assert np.array_equal(ours[1].coef_, theirs[1].coef_)
        assert np.array_equal(ours[1].intercept_, theirs[1].intercept_)
    assert np.array_equal(check.oof_proba_, reference.oof_proba_)


def test_surprise_keeps_ordering_labels_far_beyond_a_probability_of_one():
    """The score is ``-ln P(label right)``: a label the data makes 1e-200 likely scores
    about ten times one it makes 1e-20 likely, where the probability that the label is
    wrong would be 1.0 for both (the fusion's tail could not tell them apart)."""
    from poisonscan.checks.labels import _surprise

    right = np.array([0.5, 0.9, 1e-3, 1e-20, 1e-200])
    proba = np.column_stack([1.0 - right, right])
    codes = np.ones(len(right), dtype=np.int64)
    scores = _surprise(proba, codes, np.ones((2, 2)))  # no flips known: self-confidence
    np.testing.assert_allclose(scores, -np.log(right), rtol=1e-9)
    assert np.all(np.diff(scores[[1, 0, 2, 3, 4]]) > 0)
    # with the flips the data shows, T[given, true]: P(b right) = p_b T[b,b] / sum_j p_j T[b,j]
    flips = np.array([[0.7, 0.2], [0.3, 0.8]])
    posterior = right * 0.8 / ((1.0 - right) * 0.3 + right * 0.8)
    np.testing.assert_allclose(_surprise(proba, codes, flips), -np.log(posterior), rtol=1e-9)


def test_pooling_keeps_a_class_that_one_source_all_but_rules_out():
    """Log-linear pooling: a class one source gives 1e-6 stays near that, where a weighted
    average would floor it at the other source's share (0.15 * 0.05 = 0.0075)."""
    from poisonscan.checks.labels import _pool

    model = np.array([[1.0 - 1e-6, 1e-6], [0.3, 0.7]])
    vote = np.array([[0.95, 0.05], [0.3, 0.7]])
    pooled = _pool([(model, 0.85), (vote, 0.15)])
    np.testing.assert_allclose(pooled.sum(axis=1), 1.0)
    assert pooled[0, 1] < 1e-5
    np.testing.assert_allclose(pooled[1], [0.3, 0.7])  # sources that agree are kept
    # a zero from either source is floored, not a NaN or a division by zero
    assert np.isfinite(_pool([(np.array([[1.0, 0.0]]), 0.5), (vote[:1], 0.5)])).all()
