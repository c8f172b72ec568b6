"""The contract every registered check family must honour (run on each of them)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from poisonscan import pipeline
from poisonscan.checks import REGISTRY, check_class
from poisonscan.checks.base import CheckScores
from poisonscan.io.sources import CsvSource
from poisonscan.io.schema import ScanSchema

from conftest import poisoned_frame

FAMILIES = sorted(REGISTRY)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract") / "d.csv"
    poisoned_frame(600).to_csv(path, index=False)
    source = CsvSource([path], text_columns=["y", "uid"])
    schema = ScanSchema.build(source.arrow_schema, label="y", id_column="uid")
    return source, schema


def _fitted(name, dataset, chunk_rows=100):
    source, schema = dataset
    check = check_class(name)()
    state = None
    for chunk in source.chunks(chunk_rows, schema):
        state = pipeline.merge(state, pipeline.summarize(chunk, [check], sample_rows=200, seed=0),
                               [check])
    pipeline.fit(state, [check])
    return check, source, schema


@pytest.mark.parametrize("name", FAMILIES)
def test_constructor_only_stores_parameters(name):
    cls = check_class(name)
    check = cls()
    assert check.get_params() == {p.name: p.default for p in cls.parameters}
    assert not [a for a in vars(check) if a.endswith("_")], "learned state before fit"
    with pytest.raises(Exception, match="unknown parameter"):
        cls(no_such_parameter=1)


@pytest.mark.parametrize("name", FAMILIES)
def test_merge_is_associative_and_order_free(name, dataset):
    source, schema = dataset
    check = check_class(name)()
    a, b, c = (check.summarize(ch) for ch in list(source.chunks(200, schema))[:3])
    left = check.merge(check.merge(a, b), c)
    for other in (check.merge(a, check.merge(b, c)), check.merge(check.merge(c, b), a),
                  check.merge(None, left), check.merge(left, None)):
        assert pickle.dumps(other) == pickle.dumps(left)


@pytest.mark.parametrize("name", FAMILIES)
def test_score_shapes_and_reasons(name, dataset):
    check, source, schema = _fitted(name, dataset)
    for chunk in source.chunks(250, schema):
        out = check.score(chunk)
        assert isinstance(out, CheckScores)
        n = len(chunk)
        assert out.scores.shape == (n,) and out.scores.dtype == np.float64
        assert np.isfinite(out.scores).all()
        assert out.violation.shape == (n,) and out.violation.dtype == bool
        assert out.reasons.shape == (n,)
        for reason in out.reasons[out.violation]:
            assert isinstance(reason, str) and reason.startswith(f"{name}:")
            assert "\n" not in reason and "\r" not in reason
        # violations outrank every non-violation within the family
        if out.violation.any() and (~out.violation).any():
            assert out.scores[out.violation].min() > out.scores[~out.violation].max()


@pytest.mark.parametrize("name", FAMILIES)
def test_score_is_pure_and_chunk_invariant(name, dataset):
    check, source, schema = _fitted(name, dataset)
    before = pickle.dumps(check)
    whole = [check.score(c) for c in source.chunks(600, schema)][0]
    parts = [check.score(c) for c in source.chunks(77, schema)]
    assert pickle.dumps(check) == before, "score() changed the check"
    assert np.array_equal(whole.scores, np.concatenate([p.scores for p in parts]))
    assert np.array_equal(whole.violation, np.concatenate([p.violation for p in parts]))
    assert list(whole.reasons) == [r for p in parts for r in p.reasons]


@pytest.mark.parametrize("name", FAMILIES)
def test_fit_does_not_depend_on_chunking(name, dataset):
    a, source, schema = _fitted(name, dataset, chunk_rows=600)
    b, _, _ = _fitted(name, dataset, chunk_rows=41)
    chunk = next(source.chunks(600, schema))
    assert np.array_equal(a.score(chunk).scores, b.score(chunk).scores)
    assert a.describe() == b.describe()


#: Columns beside the label of datasets whose rows no feature tells apart.
FEATURELESS = {"no feature column": {}, "one constant column": {"c": ["7"] * 60},
               "one empty column": {"c": [""] * 60}}


@pytest.mark.parametrize("case", list(FEATURELESS))
@pytest.mark.parametrize("name", FAMILIES)
def test_rows_no_feature_tells_apart_score_zero_and_the_summary_says_why(name, case,
                                                                        tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"y": ["yes", "no"] * 29 + [None, "maybe"], **FEATURELESS[case]}).to_csv(
        path, index=False)
    source = CsvSource([path], text_columns=["y"])
    dataset = source, ScanSchema.build(source.arrow_schema, label="y", id_column=None)
    check, _, schema = _fitted(name, dataset)
    out = check.score(next(source.chunks(100, schema)))
    if name == "bounds":  # the label column's own bounds still apply
        assert out.violation[58] and "label 'y' missing" in out.reasons[58]
        return
    assert not out.scores.any() and not out.violation.any()
    assert all(reason is None for reason in out.reasons)
    learned = check.describe()
    assert learned.get("note") or learned.get("inactive"), learned
