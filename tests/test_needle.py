"""The needle in the haystack (issue 14): ``make_data``'s exact poison mix and its ranking."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _needle  # noqa: E402
import make_data  # noqa: E402

ROWS = 60_000  # two generation blocks and a bit


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def needle(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("needle") / "needle.parquet"
    make_data.write_dataset(path, ROWS, seed=5, mix=make_data.NEEDLE_MIX)
    return path


@pytest.fixture(scope="module")
def frames(needle):
    data = pq.read_table(needle).to_pandas()
    truth = pq.read_table(make_data.truth_path(needle)).to_pandas()
    return data, truth


def test_the_mix_is_one_hundred_poisons_of_every_attack():
    assert sum(make_data.NEEDLE_MIX.values()) == 100
    assert set(make_data.NEEDLE_MIX) == set(make_data.ATTACKS) | set(make_data.GROUP_ATTACKS)


def test_exactly_the_mix_is_planted(frames):
    data, truth = frames
    assert len(truth) == 100 and truth["row"].is_unique
    assert truth["attack"].value_counts().to_dict() == make_data.NEEDLE_MIX
    assert (data["id"].iloc[truth["row"]].to_numpy() == truth["id"].to_numpy()).all()


def test_generation_is_deterministic_and_seeded(needle, tmp_path):
    again = tmp_path / "again.parquet"
    make_data.write_dataset(again, ROWS, seed=5, mix=make_data.NEEDLE_MIX, chunk_rows=7_000)
    assert _digest(again) == _digest(needle)
    assert _digest(make_data.truth_path(again)) == _digest(make_data.truth_path(needle))
    other = tmp_path / "other.parquet"
    make_data.write_dataset(other, ROWS, seed=6, mix=make_data.NEEDLE_MIX)
    assert _digest(other) != _digest(needle)


def test_the_rate_is_ignored_and_nothing_else_is_poisoned(tmp_path):
    # the mix replaces the rate's poisons: a clean file plus the plan differs only there
    clean, planted = tmp_path / "clean.parquet", tmp_path / "planted.parquet"
    make_data.write_dataset(clean, 5_000, seed=1, poison_rate=0.0)
    make_data.write_dataset(planted, 5_000, seed=1, poison_rate=0.3, mix={"label_flip": 7})
    a, b = pq.read_table(clean).to_pandas(), pq.read_table(planted).to_pandas()
    changed = np.flatnonzero((a["label"] != b["label"]).to_numpy())
    truth = pq.read_table(make_data.truth_path(planted)).to_pandas()
    assert changed.tolist() == sorted(truth["row"].tolist()) and len(changed) == 7


def _rows(frames, attack):
    data, truth = frames
    return data.iloc[truth.loc[truth["attack"] == attack, "row"]]


def test_group_attacks_are_what_they_say(frames):
    features = [c for c in make_data.schema().names if c not in ("id", "label")]
    flood = _rows(frames, "duplicate_flood")
    assert len(flood[features].drop_duplicates()) == 1  # exact copies
    assert flood["label"].nunique() == 1
    near = _rows(frames, "concentrated")
    assert near[["f1", "f2", "f3", "f4"]].std().max() < 0.05  # one tight cluster
    assert (near["label"] == "high").all()
    backdoor = _rows(frames, "backdoor")
    assert (backdoor["f4"] == make_data.TRIGGER["f4"]).all()
    assert (backdoor["device"] == make_data.TRIGGER["device"]).all()
    assert (backdoor["label"] == make_data.TRIGGER_LABEL).all()
    impossible = _rows(frames, "joint_impossible")
    assert (impossible["tenure_months"] > 12 * (impossible["age"] - 17)).all()
    data, _ = frames
    clean = data.drop(frames[1]["row"])
    assert (clean["tenure_months"] <= 12 * (clean["age"] - 17)).all()  # never by nature
    assert impossible["age"].between(clean["age"].min(), clean["age"].max()).all()


def test_an_unknown_attack_is_refused():
    with pytest.raises(ValueError, match="unknown attacks"):
        make_data.needle_plan(1_000, 0, {"teleport": 3})


def test_figures_rank_the_poisons(tmp_path):
    """On a hand-made scan: ranks by score then row, top-k counts, precision/recall."""
    out = tmp_path / "scan"
    out.mkdir()
    scores = pd.DataFrame({"row": np.arange(2_000, dtype=np.int64),
                           "score": np.linspace(0, 1, 2_000)[::-1].copy(),
                           "suspect": np.arange(2_000) < 50,
                           "labels": np.zeros(2_000)})
    scores.loc[1_999, "score"] = 2.0  # ranks first
    scores.to_parquet(out / "scores.parquet")
    pd.DataFrame({"rank": [1], "row": [1_999], "score": [2.0], "checks": ["labels"],
                  "reason": ["label:odd"]}).to_csv(out / "suspects.csv", index=False)
    truth = pd.DataFrame({"row": np.array([1_999, 10, 500, 1_500], dtype=np.int64),
                          "id": np.zeros(4, np.int64),
                          "attack": ["outlier", "outlier", "backdoor", "backdoor"],
                          "column": ["x"] * 4})
    truth.to_parquet(tmp_path / "truth.parquet")
    got = _needle.figures(out, tmp_path / "truth.parquet")
    assert got["top"] == {100: 2, 1_000: 3}
    assert got["by_attack"]["outlier"]["best_rank"] == 1
    assert got["by_attack"]["backdoor"]["top1000"] == 1
    assert got["suspects"] == 50 and got["recall"] == 0.25 and got["precision"] == 1 / 50
    assert [m["row"] for m in got["missed"]] == [1_500]
    assert got["missed"][0]["rank"] == 1_502  # after row 1,999 and rows 0..1,500
    assert got["missed"][0]["reason"] is None


def test_label_probabilities_are_the_generators_own():
    """Calibrated against the labels ``make_data`` draws: among rows it gives a label a
    probability near ``p``, about a share ``p`` carry that label."""
    table = make_data.make_block(3, 0, 40_000, 0.0).table
    proba = make_data.label_probabilities(table)
    assert np.allclose(proba.sum(axis=1), 1.0)
    labels = np.array([make_data.LABELS.index(v) for v in table["label"].to_pylist()])
    for c in range(len(make_data.LABELS)):
        checked = 0
        for low, high in ((0.0, 0.1), (0.3, 0.6), (0.9, 1.0)):  # ("medium" never nears 1)
            band = (proba[:, c] >= low) & (proba[:, c] < high)
            if band.sum() >= 1_000:
                assert abs((labels[band] == c).mean() - proba[band, c].mean()) < 0.02
                checked += 1
        assert checked >= 2


def test_the_label_ceiling_puts_the_concentrated_labels_first(needle):
    """The concentrated rows copy the point ``make_data`` finds most clearly ``low`` and
    carry ``high``: no natural row's label is as unlikely."""
    result = _needle.label_ceiling(needle, make_data.truth_path(needle))
    ceiling = result["attacks"]
    assert list(ceiling) == list(_needle.LABEL_ATTACKS)
    assert ceiling["concentrated"]["top100"] == 10 and ceiling["concentrated"]["best_rank"] == 1
    assert 0.15 < result["natural"] < 0.3  # the softmax's own noise (21.6% on 1M rows)
    for attack, counts in ceiling.items():
        assert counts["planted"] == make_data.NEEDLE_MIX[attack]
        assert 0 <= counts["top100"] <= counts["top1000"] <= counts["planted"]
