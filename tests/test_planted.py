"""Planted values: one exact value of a continuous column on many rows of one label,
counted over the whole data in pass 1 (the backdoor family's ``planted`` option)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from poisonscan.checks.backdoor import BackdoorCheck
from poisonscan.checks.planted import SATURATED, ValueSketch, floating_columns, label_hashes
from poisonscan.errors import ConfigError

from conftest import fit_check

ROWS = 20_000


def measurements(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Three labels told apart by ``x0``; five full-precision columns, an integer one."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(5)})
    df["n"] = rng.integers(0, 50, rows)
    df["y"] = np.select([df.x0 < -0.5, df.x0 < 0.5], ["a", "b"], "c")
    return df


def plant(df: pd.DataFrame, k: int, seed: int = 1, **values) -> tuple[pd.DataFrame, np.ndarray]:
    """``values`` set on ``k`` rows of label 'a', relabelled 'c'."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(df["y"].to_numpy() == "a"), k, replace=False))
    out = df.copy()
    for column, value in values.items():
        out.loc[rows, column] = value
    out.loc[rows, "y"] = "c"
    mask = np.zeros(len(df), dtype=bool)
    mask[rows] = True
    return out, mask


def scored(df, *, sample_rows=1_000, chunk_rows=3_000, **params):
    check = BackdoorCheck(**params)
    source, schema = fit_check(check, df, label="y", chunk_rows=chunk_rows,
                               sample_rows=sample_rows)
    parts = [check.score(c) for c in source.chunks(2_500, schema)]
    return check, (np.concatenate([p.finding for p in parts]),
                   np.concatenate([p.reasons for p in parts]))


def test_a_value_planted_on_rows_the_sample_misses_is_found():
    df, mask = plant(measurements(), 20, x3=2.5)
    check, (finding, reasons) = scored(df)
    # the sample of 1,000 of 20,000 rows holds about one carrier: too few to mine
    assert check.triggers_ == []
    assert np.array_equal(finding > 0, mask)
    assert (finding[mask] >= 0.5).all()
    assert all(r.startswith("backdoor: planted value x3=2.5 on about 20 rows labelled 'c'")
               for r in reasons[mask])
    assert all(r is None for r in reasons[~mask])
    assert check.planted_.columns_ == ("x0", "x1", "x2", "x3", "x4")


def test_near_copies_are_found_by_the_values_they_keep():
    df = measurements()
    rng = np.random.default_rng(2)
    rows = np.sort(rng.choice(np.flatnonzero(df["y"].to_numpy() == "a"), 12, replace=False))
    source = df.loc[rows[0]]
    for column in ("x0", "x1", "x2", "x3", "x4"):
        df.loc[rows, column] = source[column]
    df.loc[rows, ["x0", "x1"]] += rng.normal(0, 0.01, (12, 2))  # jittered: no copy
    df.loc[rows, "y"] = "c"
    check, (finding, reasons) = scored(df)
    assert np.array_equal(np.flatnonzero(finding), rows)
    assert all(r.split("=")[0] in ("backdoor: planted value x2", "backdoor: planted value x3",
                                   "backdoor: planted value x4") for r in reasons[rows])


def test_the_labels_must_agree_on_the_value():
    df = measurements()
    rng = np.random.default_rng(3)
    df.loc[rng.choice(ROWS, 40, replace=False), "x2"] = 0.123456789  # labels as they were
    # a point mass so large that its count saturates the counters: 200 of its 2,000 rows
    # labelled 'c' would look pure against a count of 255
    mass = rng.choice(ROWS, 2_000, replace=False)
    df.loc[mass, "x4"] = 0.5
    df.loc[mass, "y"] = np.repeat(["c", "a", "b"], [200, 900, 900])
    check, (finding, _) = scored(df)
    assert "x4" in check.planted_.columns_
    assert not finding.any()
    # the same value on 40 rows of one label is planted
    df, mask = plant(measurements(), 40, x2=0.123456789)
    _, (finding, _) = scored(df)
    assert np.array_equal(finding > 0, mask)


def test_columns_whose_values_repeat_by_nature_are_not_tested():
    df = measurements()
    rng = np.random.default_rng(4)
    df["rounded"] = np.round(rng.normal(size=ROWS), 2)  # 2 decimals: values repeat
    entity = rng.integers(0, 1_000, ROWS)  # a per-entity value joined onto its 20 rows
    df["joined"] = rng.normal(size=1_000)[entity]
    df["y"] = np.where(rng.random(1_000) < 0.5, "a", "c")[entity]
    df.loc[df["y"] == "a", "rounded"] = 0.37  # one value on every row of 'a'
    check, (finding, _) = scored(df)
    assert "rounded" not in check.planted_.columns_
    assert "joined" not in check.planted_.columns_
    assert set(check.planted_.columns_) == {"x0", "x1", "x2", "x3", "x4"}
    assert not finding.any()


def test_a_planted_value_needs_more_rows_than_the_noise_explains():
    df, mask = plant(measurements(), 20, x3=2.5)
    # a small sketch: the counters' noise grows, and with it the count a value needs
    check, (finding, _) = scored(df, sketch_mb=1.0)
    small = check.planted_.min_count_[3]  # x3
    big, _ = scored(df)
    assert big.planted_.min_count_[3] < small
    assert (check.planted_.noise_ > big.planted_.noise_).all()
    assert small <= 20 and np.array_equal(finding > 0, mask)  # still found
    _, (finding, _) = scored(df, min_support=21)
    assert not finding.any()


def sketch_of(df, size, chunk_rows):
    from poisonscan.io.schema import ScanSchema
    from poisonscan.io.sources import open_source

    source = open_source(df)
    schema = ScanSchema.build(source.arrow_schema, label="y", id_column=None)
    columns = floating_columns(schema)
    return [ValueSketch.of(c, columns, size) for c in source.chunks(chunk_rows, schema)]


@pytest.mark.parametrize("size", [2 ** 13, 2 ** 21])  # dense and sparse states
def test_counts_do_not_depend_on_chunking_or_merge_order(size):
    df, mask = plant(measurements(4_000), 300, x3=2.5)
    parts = sketch_of(df, size, 700)
    forward = parts[0]
    for part in parts[1:]:
        forward = forward.merge(part)
    backward = parts[-1]
    for part in parts[-2::-1]:
        backward = part.merge(backward)
    whole = sketch_of(df, size, 10_000)[0].canonical()  # one chunk: as its values came
    assert (forward.index is None) == (size == 2 ** 13)
    assert pickle.dumps(backward) == pickle.dumps(forward) == pickle.dumps(whole)
    assert forward.items.tolist() == [4_000] * 5
    # a count-min count never undercounts, and saturates: 300 carriers count 255
    hashes = label_hashes(df["y"])
    labelled = np.ones(len(df), dtype=bool)
    counts = [forward.count(df[c].to_numpy(), hashes, labelled, j)
              for j, c in enumerate(("x0", "x1", "x2", "x3", "x4"))]
    assert (np.array(counts) >= 1).all()
    assert (counts[3][mask] == SATURATED).all() and (counts[3][~mask] < SATURATED).all()
    # integers are not counted
    assert (forward.count(np.array([1.0, -3.0, np.nan]), hashes[:3], labelled[:3], 0) == 0).all()


def test_off_or_without_floating_columns_there_is_no_state():
    df, mask = plant(measurements(), 20, x3=2.5)
    check, (finding, _) = scored(df, planted=False)
    assert check.planted_ is None and not finding.any()
    ints = pd.DataFrame({"n": np.arange(100) % 7, "y": ["a", "b"] * 50})
    check = BackdoorCheck()
    fit_check(check, ints, label="y")
    assert check.planted_ is None


def test_scan_quarantines_the_planted_rows_and_describes_the_test(tmp_path):
    import json

    import poisonscan

    df, mask = plant(measurements(), 20, x3=2.5)
    poisonscan.scan(df, label="y", out=tmp_path / "out", quiet=True,
                    checks=["bounds", "backdoor"], sample_rows=1_000)
    suspects = pd.read_csv(tmp_path / "out" / "suspects.csv")
    assert set(suspects["row"]) == set(np.flatnonzero(mask))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    learned = summary["checks"]["backdoor"]["learned"]["planted_values"]
    assert learned["columns"] == ["x0", "x1", "x2", "x3", "x4"]
    assert learned["min_count"]["x3"] <= 20 and set(learned["noise"]) == set(learned["columns"])


@pytest.mark.parametrize("params", [{"sketch_mb": 0.5}, {"sketch_mb": 10_000},
                                    {"planted": "yes"}])
def test_bad_sketch_parameters_are_refused(params):
    df, _ = plant(measurements(2_000), 10, x3=2.5)
    with pytest.raises(ConfigError):
        scored(df, **params)


def test_a_value_planted_on_more_rows_than_a_counter_holds_is_found():
    df, mask = plant(measurements(), 300, x3=2.5)  # counts saturate at 255
    _, (finding, reasons) = scored(df)
    assert np.array_equal(finding > 0, mask)
    assert all("on at least 255 rows labelled 'c'" in r for r in reasons[mask])


def test_a_label_too_rare_to_model_still_gets_its_planted_value():
    df = measurements()
    df["y"] = "ok"
    rng = np.random.default_rng(5)
    df.loc[rng.choice(ROWS, 80, replace=False), "y"] = "fraud"  # about 4 sampled rows
    rows = np.sort(rng.choice(np.flatnonzero(df["y"].to_numpy() == "ok"), 20, replace=False))
    df.loc[rows, ["x3", "y"]] = [2.5, "fraud"]
    check, (finding, _) = scored(df)
    assert len(check.classes_) == 1
    assert np.array_equal(np.flatnonzero(finding), rows)


def test_labels_the_sample_misses_count_in_the_purity_total():
    df = measurements()
    rng = np.random.default_rng(6)
    a = rng.choice(np.flatnonzero(df["y"].to_numpy() == "a"), 10, replace=False)
    b = rng.choice(np.flatnonzero(df["y"].to_numpy() == "b"), 10, replace=False)
    df.loc[a, "x2"] = df.loc[b, "x2"] = 0.7311586214
    df.loc[b, "y"] = "z"  # ten rows of a label the sample of 1,000 hardly holds
    check, (finding, reasons) = scored(df)
    assert not finding[a].any()  # shared half and half with 'z': not pure
    assert all("of about 20" in r for r in reasons[b][finding[b] > 0])


def test_a_column_whose_whole_data_repeats_is_not_tested():
    df = measurements()
    rng = np.random.default_rng(7)
    held = rng.normal(size=ROWS)
    held = held[np.repeat(np.arange(0, ROWS, 6), 6)[:ROWS]]  # each reading held 6 rows
    df["held"] = held
    df["y"] = np.where(np.arange(ROWS) // 600 % 2 == 0, "a", "c")  # labels follow time
    check, (finding, _) = scored(df, sample_rows=200)  # few repeats in the sample
    assert "held" in check.planted_.repeating_ and "held" not in check.planted_.columns_
    assert not finding.any()


def test_float32_values_of_few_decimals_are_not_full_precision():
    from poisonscan.checks.planted import continuous

    rng = np.random.default_rng(8)
    prices = np.round(rng.uniform(10, 500, 2_000), 2)
    assert not continuous(prices.astype(np.float32).astype(np.float64), single=True)
    assert continuous(rng.normal(size=2_000).astype(np.float32).astype(np.float64), single=True)
    assert not continuous(prices)
