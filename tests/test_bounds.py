"""The bounds check: each kind of finding, robust ranges, rare categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import poisonscan

from conftest import POISONS, make_frame, poisoned_frame


def _scan(tmp_path, df, name="out", **kw):
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    kw.setdefault("label", "y")
    kw.setdefault("checks", ["bounds"])  # this family alone (others add their own reasons)
    return poisonscan.scan(str(path), out=tmp_path / name, **kw)


def test_every_poison_is_found_with_a_reason_naming_column_value_and_bound(tmp_path):
    res = _scan(tmp_path, poisoned_frame())
    found = dict(zip(res.suspects["row"], res.suspects["reason"]))
    assert set(found) == set(POISONS)  # and no clean row
    for row, (_, _, words) in POISONS.items():
        assert words in found[row]
    assert "max(" in found[3] or "min(" in found[3]


def test_robust_range_is_not_widened_by_the_outliers_themselves(tmp_path):
    df = make_frame(2000)
    outliers = np.arange(0, 2000, 250)  # 0.4% of rows, far out
    df.loc[outliers, "x"] = 1e6
    res = _scan(tmp_path, df)
    assert set(res.suspects["row"]) == set(outliers)
    learned = res.summary["checks"]["bounds"]["learned"]["ranges"]["x"]
    assert float(learned["max"]) < 200


def test_values_set_apart_are_left_out_of_the_learned_range(tmp_path):
    # 3% of rows far out would put Q(0.99) among them; set apart from the bulk by a gap,
    # they are left out of the quantiles and every one of them is a hard finding
    df = make_frame(1000)
    outliers = np.arange(0, 1000, 33)
    df.loc[outliers, "x"] = 1e6
    res = _scan(tmp_path, df, "default")
    assert set(res.suspects["row"]) == set(outliers)
    assert float(res.summary["checks"]["bounds"]["learned"]["ranges"]["x"]["max"]) < 200


def test_a_wider_quantile_tolerates_more_contamination(tmp_path):
    # beyond MAX_DETACHED (5% on a side) a detached block is not left out: Q(0.99) is an
    # outlier and the default range admits the block; a wider quantile still holds
    df = make_frame(1000)
    outliers = np.arange(0, 1000, 12)  # 8% of rows
    df.loc[outliers, "x"] = 1e6
    default = _scan(tmp_path, df, "default")
    assert len(default.suspects) < len(outliers)
    wide = _scan(tmp_path, df, "wide", families={"bounds": {"quantile": 0.1}})
    assert set(wide.suspects["row"]) == set(outliers)


def test_label_missing_and_rare_label(tmp_path):
    df = make_frame(3000)
    df.loc[10, "y"] = None
    df.loc[20, "y"] = "p0s"
    res = _scan(tmp_path, df)
    reasons = dict(zip(res.suspects["row"], res.suspects["reason"]))
    assert set(reasons) == {10, 20}
    assert "label 'y' missing" in reasons[10]
    assert "label 'y' rare value 'p0s'" in reasons[20]


def test_long_tailed_categories_are_not_flagged(tmp_path):
    df = make_frame(1000)
    rng = np.random.default_rng(1)
    df["city"] = [f"city{int(v)}" for v in rng.zipf(1.5, 1000)]  # many singletons by nature
    res = _scan(tmp_path, df)
    assert len(res.suspects) == 0


def test_near_constant_and_sparse_columns(tmp_path):
    df = make_frame(2000)
    df["flag"] = 0
    df.loc[7, "flag"] = 40  # the only other value of a constant column
    sparse = np.zeros(2000)
    sparse[np.arange(5, 2000, 100)] = np.arange(1, 21)  # 1% small positive counts
    df["sparse"] = sparse
    res = _scan(tmp_path, df)
    rows = set(res.suspects["row"])
    assert 7 in rows
    assert len(rows & set(range(5, 2000, 100))) <= 1  # the sparse tail is legitimate


def test_sign_is_a_bound_for_never_negative_columns(tmp_path):
    df = make_frame(1000)
    df.loc[3, "count"] = -1
    df.loc[4, "x"] = 5.0  # x is a normal column: small values are fine
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [3]
    assert "count=-1<min(0)" in res.suspects["reason"][0]


def test_datetime_bounds_are_reported_as_dates(tmp_path):
    df = make_frame(1000)
    df["when"] = pd.date_range("2024-01-01", periods=1000, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    df.loc[9, "when"] = "2999-01-01 00:00:00"
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [9]
    assert "when=2999-01-01T00:00:00>max(2024-" in res.suspects["reason"][0]


def test_several_findings_in_one_row_rank_it_higher(tmp_path):
    df = make_frame(1000).astype(str)
    df.loc[1, "x"] = "NaN"
    df.loc[2, ["x", "count"]] = ["NaN", "inf"]
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [2, 1]
    assert res.suspects["reason"][0].count("bounds:") == 2


@pytest.mark.parametrize("value", ["1e999", "-1e999", "Infinity", "-inf"])
def test_infinity_spellings(tmp_path, value):
    df = make_frame(300).astype(str)
    df.loc[5, "x"] = value
    res = _scan(tmp_path, df)
    assert res.suspects["row"].tolist() == [5]
    assert "x=" in res.suspects["reason"][0] and "inf" in res.suspects["reason"][0]


# ============================================================================ declared bounds

from pathlib import Path  # noqa: E402

from poisonscan.checks.bounds import BoundsCheck  # noqa: E402
from poisonscan.cli import main  # noqa: E402
from poisonscan.errors import ConfigError  # noqa: E402


def _toml(tmp_path, text, name="bounds.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _reasons(res) -> dict[int, str]:
    return dict(zip(res.suspects["row"], res.suspects["reason"]))


def test_declared_min_max_are_inclusive_and_exclusive_variants_strict(tmp_path):
    df = make_frame(500)
    df.loc[[1, 2, 3, 4], "x"] = [0.0, 100.0, -0.5, 100.5]
    df.loc[[5, 6], "count"] = [0, 12]
    conf = _toml(tmp_path, "[bounds.x]\nmin = 0\nmax = 100\n"
                           "[bounds.count]\nmin_exclusive = 0\nmax_exclusive = 12\n")
    res = _scan(tmp_path, df, config=conf)
    reasons = _reasons(res)
    assert 1 not in reasons and 2 not in reasons  # inclusive bounds
    assert reasons[3] == "bounds:x=-0.5<min(0) (declared)"
    assert reasons[4] == "bounds:x=100.5>max(100) (declared)"
    assert "bounds:count=0<=min_exclusive(0) (declared)" in reasons[5]
    assert "bounds:count=12>=max_exclusive(12) (declared)" in reasons[6]
    # count is Poisson(3): other zeros are quarantined too (the user said count > 0)
    zeros = set(np.flatnonzero(df["count"].to_numpy() == 0))
    assert zeros <= set(reasons)
    counts = res.summary["checks"]["bounds"]["violations_by_column"]
    assert counts["x"] == {"max (declared)": 1, "min (declared)": 1}
    assert counts["count"]["min_exclusive (declared)"] == len(zeros)


def test_declared_bound_is_hard_even_inside_the_learned_range(tmp_path):
    df = make_frame(1000)
    df.loc[10, "x"] = 71.0  # 2 sigma: normal for the data, not for the user
    conf = _toml(tmp_path, "[bounds.x]\nmax = 70\n")
    res = _scan(tmp_path, df, config=conf)
    assert 10 in _reasons(res)
    assert res.scores()["bounds"].to_numpy()[10] >= 1.0


def test_declared_allowed_values_for_text_and_numbers(tmp_path):
    df = make_frame(400)
    df.loc[7, "colour"] = "teal"
    df.loc[8, "count"] = 4
    conf = _toml(tmp_path, '[bounds.colour]\nallowed = ["red", "green", "blue"]\n'
                           "[bounds.count]\nallowed = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]\n")
    res = _scan(tmp_path, df, config=conf)
    reasons = _reasons(res)
    assert "bounds:colour='teal' not allowed (declared)" in reasons[7]
    fours = set(np.flatnonzero(df["count"].to_numpy() == 4))
    assert 8 in fours and fours <= set(reasons)
    assert "bounds:count=4 not allowed (declared)" in reasons[8]


def test_declared_pattern_and_lengths(tmp_path):
    df = make_frame(300)
    df.loc[3, "uid"] = "u0x003"
    df.loc[4, "uid"] = "u" + "0" * 30
    df.loc[5, "colour"] = "r"
    conf = _toml(tmp_path, '[bounds.uid]\npattern = "u[0-9]{5}"\nmax_length = 12\n'
                           "[bounds.colour]\nmin_length = 2\n")
    res = _scan(tmp_path, df, config=conf, id_column="uid")
    reasons = _reasons(res)
    assert set(reasons) == {3, 4, 5}
    assert reasons[3].startswith("bounds:uid='u0x003' does not match pattern (declared)")
    assert "bounds:uid length 31>max_length(12) (declared)" in reasons[4]
    assert "does not match pattern" in reasons[4]
    assert reasons[5].startswith("bounds:colour length 1<min_length(2) (declared)")


def test_pattern_that_re2_cannot_run_falls_back_to_python_re(tmp_path):
    df = make_frame(200)
    df["code"] = ["aa", "bb"] * 100
    df.loc[9, "code"] = "ab"
    conf = _toml(tmp_path, '[bounds.code]\npattern = "(.)\\\\1"\n')  # a back reference
    res = _scan(tmp_path, df, config=conf)
    reasons = _reasons(res)
    assert set(reasons) == {9}
    assert reasons[9].startswith("bounds:code='ab' does not match pattern (declared)")


def test_declared_not_nullable_and_integer(tmp_path):
    df = make_frame(300)
    df.loc[11, "x"] = None
    df.loc[12, "colour"] = None
    df.loc[13, "x"] = 50.0
    df["whole"] = np.arange(300, dtype=float)
    df.loc[14, "whole"] = 2.5
    conf = _toml(tmp_path, "[bounds.x]\nnullable = false\n[bounds.colour]\nnullable = false\n"
                           "[bounds.whole]\ninteger = true\n")
    res = _scan(tmp_path, df, config=conf)
    reasons = _reasons(res)
    assert reasons[11] == "bounds:x missing, not nullable (declared)"
    assert reasons[12] == "bounds:colour missing, not nullable (declared)"
    assert reasons[14] == "bounds:whole=2.5 not an integer (declared)"
    assert set(reasons) == {11, 12, 14}


def test_declared_datetime_bounds_take_toml_dates_and_iso_text(tmp_path):
    df = make_frame(200)
    df["when"] = pd.date_range("2024-01-01", periods=200, freq="D").strftime("%Y-%m-%d")
    df.loc[0, "when"] = "2019-12-31"
    conf = _toml(tmp_path, '[bounds.when]\nmin = 2020-01-01\nmax = "2030-01-01T00:00:00"\n')
    res = _scan(tmp_path, df, config=conf)
    reasons = _reasons(res)
    assert reasons[0] == "bounds:when=2019-12-31T00:00:00<min(2020-01-01T00:00:00) (declared)"
    assert res.summary["checks"]["bounds"]["params"]["columns"]["when"]["min"] == "2020-01-01"


def test_per_class_overrides_win_for_their_class_only(tmp_path):
    rng = np.random.default_rng(3)
    n = 600
    df = pd.DataFrame({"links": rng.integers(0, 300, n), "y": np.where(np.arange(n) % 3, "ham",
                                                                         "spam")})
    df.loc[0, "links"] = 950  # spam
    df.loc[1, "links"] = 450  # ham: above the spam bound, below the column bound
    df.loc[2, "links"] = 1200  # ham
    conf = _toml(tmp_path, "[bounds.links]\nmax = 1000\n"
                           "[bounds.by_label.spam.links]\nmax = 400\n")
    res = _scan(tmp_path, df, config=conf)
    reasons = _reasons(res)
    assert reasons[0] == "bounds:links=950>max(400) for label 'spam' (declared)"
    assert reasons[2] == "bounds:links=1200>max(1000) (declared)"
    assert set(reasons) == {0, 2}
    counts = res.summary["checks"]["bounds"]["violations_by_column"]["links"]
    assert counts == {"max (declared)": 1, "max (declared, per class)": 1}
    assert "declared_labels_not_in_data" not in res.summary["checks"]["bounds"]["learned"]
    typo = _toml(tmp_path, "[bounds.by_label.spma.links]\nmax = 400\n", "typo.toml")
    res = _scan(tmp_path, df, name="typo", config=typo)
    assert res.summary["checks"]["bounds"]["learned"]["declared_labels_not_in_data"] == ["spma"]


def test_declared_bounds_in_the_report(tmp_path):
    df = make_frame(300)
    df.loc[5, "x"] = 1e3
    conf = _toml(tmp_path, "[bounds.x]\nmax = 200\n[bounds.by_label.pos.count]\nmax = 50\n")
    res = _scan(tmp_path, df, config=conf)
    page = (res.out / "report.html").read_text(encoding="utf-8")
    assert "Declared bounds" in page and "Rows per column and broken bound" in page
    learned = res.summary["checks"]["bounds"]["learned"]["declared"]
    assert learned == {"x": {"max": 200}, "by_label": {"pos": {"count": {"max": 50}}}}


# ============================================================================ config errors


def _cli(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("toml,line,words", [
    ('[bounds.x]\nmin = 0\nmaximum = 3\n', 3, ["bounds.x", "unknown key 'maximum'"]),
    ('[bounds.x]\nmin = "zero"\n', 2, ["bounds.x.min", "number", "'zero'"]),
    ('[bounds.x]\nmin = 5\nmax = 1\n', 3, ["bounds.x", "min 5 is above max 1"]),
    ('[bounds.x]\nmin = 0\nmin_exclusive = 1\n', 3, ["bounds.x", "min or min_exclusive"]),
    ('[bounds.colour]\npattern = "(unclosed"\n', 2, ["bounds.colour.pattern", "regular"]),
    ('[bounds.colour]\nnullable = "no"\n', 2, ["bounds.colour.nullable", "true or false"]),
    ('[bounds.colour]\nmax_length = -1\n', 2, ["bounds.colour.max_length", ">= 0"]),
    ('[bounds.colour]\nallowed = []\n', 2, ["bounds.colour.allowed", "non-empty"]),
    ('[bounds.colour]\nmin = 0\n', 2, ["bounds.colour.min", "numeric or datetime"]),
    ('[bounds.x]\npattern = "a"\n', 2, ["bounds.x.pattern", "text column"]),
    ('\n[bounds.colr]\nallowed = ["red"]\n', 2, ["bounds.colr", "'colr' is not in the data"]),
    ('[bounds]\nmargin = 1\nage = {min = 0}\n', 3, ["bounds.age", "'age' is not in the data"]),
    ('[bounds.by_label.pos.x]\nmax = 1\nbogus = 2\n', 3,
     ["bounds.by_label.pos.x", "unknown key 'bogus'"]),
    ('[bounds]\nquantile = 0.9\n', 2, ["quantile", "<= 0.25"]),
    ('[bounds]\nbogus = 1\n', 2, ["bounds.bogus"]),
], ids=["unknown-key", "text-min", "min-above-max", "min-and-exclusive", "bad-regex",
        "bad-nullable", "negative-length", "empty-allowed", "min-on-text", "pattern-on-number",
        "unknown-column", "unknown-inline-column", "unknown-key-per-class", "bad-parameter",
        "unknown-parameter"])
def test_bound_file_with_errors_names_line_and_key_exit_2(tmp_path, capsys, toml, line, words):
    data = tmp_path / "d.csv"
    make_frame(200).to_csv(data, index=False)
    conf = _toml(tmp_path, 'label = "y"\n' + toml)
    code, err = _cli(["scan", data, "-o", tmp_path / "out", "--config", conf, "--checks",
                      "bounds"], capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("poisonscan: error: "), err
    assert f"{conf}:{line + 1}: " in err[0], err[0]
    for word in words:
        assert word in err[0], err[0]
    assert not (tmp_path / "out").exists()


def test_per_class_bounds_need_a_label(tmp_path):
    df = make_frame(100).drop(columns="y")
    with pytest.raises(ConfigError, match="by_label needs a label column"):
        _scan(tmp_path, df, label=None, families={"bounds": {"by_label": {"a": {"x": {"max": 1}}}}})


def test_declared_tables_arrive_as_keyword_parameters():
    check = BoundsCheck(age={"min": 0}, margin=2.0)
    assert check.get_params()["columns"] == {"age": {"min": 0}}
    check._validate_params()
    with pytest.raises(ConfigError, match="unknown parameter"):
        BoundsCheck(agee=3)
    with pytest.raises(ConfigError, match=r"bounds\.age: unknown key 'mn'") as info:
        BoundsCheck(age={"mn": 0})._validate_params()
    assert info.value.key_path == ("bounds", "age", "mn")


# ============================================================================ learned bounds


def _learned(tmp_path, df, name="out"):
    res = _scan(tmp_path, df, name=name)
    return res, res.summary["checks"]["bounds"]["learned"]["ranges"]


def test_learned_violation_is_evidence_scored_by_distance_not_a_suspect(tmp_path):
    rng = np.random.default_rng(8)
    df = pd.DataFrame({"x": np.round(rng.normal(0, 10, 2000), 3),
                       "y": rng.choice(["a", "b"], 2000)})  # classes alike: no class ranges
    df.loc[[5, 6], "x"] = [80.0, 95.0]  # beyond the fence, but not set apart by a gap
    df.loc[7, "x"] = 1e6  # set apart: hard
    res = _scan(tmp_path, df, families={"bounds": {"min_class_rows": 5000}})
    assert res.suspects["row"].tolist() == [7]
    assert res.suspects["reason"][0].endswith("(learned)")
    scores = res.scores().set_index("row")["bounds"]
    assert 1.0 > scores[6] > scores[5] > 0.5 > scores.drop([5, 6, 7]).max()
    counts = res.summary["checks"]["bounds"]["violations_by_column"]["x"]
    assert counts == {"max (learned)": 3}
    assert res.summary["checks"]["bounds"]["rows_flagged"] == 3


def test_skewed_and_heavy_tailed_columns_do_not_flood_the_suspects(tmp_path):
    rng = np.random.default_rng(5)
    n = 20_000
    df = pd.DataFrame({"income": np.round(rng.lognormal(10, 1.0, n), 2),
                       "returns": rng.standard_t(2, n),
                       "wait": np.round(rng.exponential(30, n), 1),
                       "visits": rng.negative_binomial(1, 0.1, n),
                       "y": rng.choice(["a", "b"], n)})
    res, ranges = _learned(tmp_path, df)
    assert res.summary["rows"]["quarantined"] <= 0.001 * n
    assert ranges["income"].get("scale") == "log1p"
    assert float(ranges["income"]["min"]) >= 0 and float(ranges["wait"]["min"]) == 0
    df.loc[[1, 2, 3], ["income", "returns", "visits"]] = [[1e10, 0, 0], [1e4, 1e6, 0],
                                                          [1e4, 0, 100_000]]
    res, _ = _learned(tmp_path, df, "poisoned")
    assert {1, 2, 3} <= set(res.suspects["row"])


def test_integer_columns_get_integer_bounds(tmp_path):
    df = make_frame(1000)
    _, ranges = _learned(tmp_path, df)
    assert ranges["count"]["integer"] is True
    assert float(ranges["count"]["min"]).is_integer() and float(ranges["count"]["max"]).is_integer()
    assert "integer" not in ranges["x"]


def test_constant_all_null_boolean_and_mostly_null_columns(tmp_path):
    df = make_frame(3000)
    df["const"] = 7
    df["empty"] = None
    df["flag"] = np.where(np.arange(3000) % 2, "true", "false")
    df.loc[3, "flag"] = "true"
    sparse = np.full(3000, np.nan)
    sparse[:10] = np.arange(10)
    df["sparse"] = sparse  # mostly null: too few values to learn a range
    res, ranges = _learned(tmp_path, df)
    assert len(res.suspects) == 0
    assert ranges["const"] == {"min": "7", "max": "7", "integer": True}
    assert "sparse" not in ranges and "empty" not in ranges
    df.loc[9, "const"] = 700
    res, _ = _learned(tmp_path, df, "poisoned")
    assert _reasons(res) == {9: "bounds:const=700>max(7) (learned)"}


def test_rare_true_in_a_boolean_column_is_evidence_not_a_suspect(tmp_path):
    df = make_frame(20_000)
    df["flag"] = "false"
    df.loc[17, "flag"] = "true"
    res = _scan(tmp_path, df)
    assert 17 not in set(res.suspects["row"])
    assert res.scores().set_index("row").loc[17, "bounds"] > 0.5


def test_per_class_learned_ranges_are_evidence(tmp_path):
    rng = np.random.default_rng(2)
    n = 4000
    y = np.where(np.arange(n) % 2, "a", "b")
    x = np.where(y == "a", rng.normal(0, 1, n), rng.normal(20, 1, n))
    df = pd.DataFrame({"x": np.round(x, 4), "y": y})
    df.loc[1, "x"] = 20.0  # a class-'b' value labelled 'a': inside the column's range
    res = _scan(tmp_path, df)
    assert 1 not in set(res.suspects["row"])
    learned = res.summary["checks"]["bounds"]["learned"]["ranges_by_label"]
    assert set(learned) == {"a", "b"} and float(learned["a"]["x"]["max"]) < 10
    scores = res.scores().set_index("row")["bounds"]
    assert scores[1] == scores.max()
    assert res.summary["checks"]["bounds"]["violations_by_column"]["x"] == \
        {"max (learned, per class)": 1}


def test_negative_values_of_a_never_negative_column_are_hard(tmp_path):
    df = make_frame(2000)
    df["amount"] = np.round(np.random.default_rng(4).uniform(0, 10, 2000), 2)
    rows = [5, 50, 500]
    df.loc[rows, "amount"] = [-12.0, -15.0, -19.0]  # 0.15% of rows, larger than any value
    res = _scan(tmp_path, df)
    reasons = _reasons(res)
    assert set(reasons) == set(rows)
    assert all("amount=" in reasons[r] and "<min(" in reasons[r] for r in rows)


def test_unseen_category_repeated_a_few_times_is_still_rare(tmp_path):
    df = make_frame(5000)
    df.loc[[10, 20], "colour"] = "UNSEEN_1"
    res = _scan(tmp_path, df)
    assert set(res.suspects["row"]) == {10, 20}


def test_bound_error_in_pyproject_names_the_line_of_the_nested_table(tmp_path, capsys,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_frame(200).to_csv("d.csv", index=False)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.other.x]\nmax = 1\n\n[tool.poisonscan]\nlabel = "y"\n\n'
        "[tool.poisonscan.bounds.x]\nmin = 0\nmax = true\n", encoding="utf-8")
    code, err = _cli(["scan", "d.csv", "-o", "out", "--checks", "bounds"], capsys)
    assert code == 2
    assert "pyproject.toml:12: bounds.x.max must be a number or a date, not True" in err[0]


@pytest.mark.parametrize("counts, spared", [
    # caravan's MAANTHUI: 1 mostly, 2 and 3 less, and a rare 7 that five rows share
    ({1: 2697, 2: 276, 3: 21, 7: 5, 40: 1}, [7]),
    # the same with a lone 5 and 6 below that 7
    ({1: 2697, 2: 276, 3: 20, 5: 1, 6: 1, 7: 5, 40: 1}, [5, 6, 7]),
    # caravan's PVRAAUT: a sparse count, a lone 4 below the 6 that two rows share
    ({0: 2997, 4: 1, 6: 2, 40: 1}, [4, 6]),
])
def test_rare_values_several_rows_share_and_lone_values_short_of_them_are_evidence(
        tmp_path, counts, spared):
    df = make_frame(sum(counts.values()))
    values = np.repeat(list(counts), list(counts.values()))
    np.random.default_rng(0).shuffle(values)
    df["count"] = values
    kept = np.flatnonzero(np.isin(values, spared))
    alone = int(np.flatnonzero(values == 40)[0])  # beyond every recurring value: set apart
    res = _scan(tmp_path, df, checks=["bounds"])
    rows = set(res.suspects["row"])
    assert alone in rows
    assert not rows & set(kept.tolist())
    scores = res.scores().set_index("row")["bounds"]
    assert (scores.loc[kept] > scores.median()).all()  # still evidence


def test_a_spread_of_values_beyond_the_reach_that_meet_by_chance_stays_set_apart(tmp_path):
    """Inserted outliers in an integer column: mostly lone values, two of them meeting by
    chance. The pairs are no recurring rare value that the lone ones lead up to."""
    rng = np.random.default_rng(0)
    df = make_frame(3000)
    values = rng.integers(1, 11, size=3000)
    cloud = np.array([30, 33, 38, 41, 45, 45, 52, 60, 60, 66])
    rows = rng.choice(3000, size=cloud.size, replace=False)
    values[rows] = cloud
    df["count"] = values
    res = _scan(tmp_path, df, checks=["bounds"])
    lone = rows[~np.isin(cloud, [45, 60])]
    suspects = res.suspects.set_index("row")
    assert set(lone.tolist()) <= set(suspects.index)
    assert res.scores().set_index("row").loc[lone, "score"].min() >= 1.5  # hard, set apart


def test_values_of_the_wrong_sign_do_not_widen_the_range_of_a_sparse_count(tmp_path):
    """caravan's PVRAAUT with gross outliers inserted: 0 in almost every row, a 4 and two
    6s, and three inserted values, two of them negative. The range of a column one value
    dominates is learned from its other values; the negative ones made five of them, and
    the range they gave reached 33, past the inserted 15."""
    counts = {-25: 1, -11: 1, 0: 3024, 4: 1, 6: 2, 15: 1}
    df = make_frame(sum(counts.values()))
    values = np.repeat(list(counts), list(counts.values()))
    np.random.default_rng(1).shuffle(values)
    df["count"] = values
    res = _scan(tmp_path, df, checks=["bounds"])
    scores = res.scores().set_index("row")["score"]
    assert int(res.summary["checks"]["bounds"]["learned"]["ranges"]["count"]["max"]) < 15
    assert (scores.loc[np.flatnonzero(values < 0)] >= 1.5).all()  # the wrong sign: hard
    assert 0.5 < scores.loc[int(np.flatnonzero(values == 15)[0])] < 1.5   # now evidence


def test_the_heavy_tail_of_a_sparse_count_is_its_own(tmp_path):
    """Zero in 99% of rows, and a Zipf-like tail in the others (1s, 2s, 3s, then 4 to 52):
    its far values are the column's own, not set apart (a gap test among the few values
    beside the zeros quarantined the 31 and the 52)."""
    values = np.zeros(3000, dtype=np.int64)
    values[np.random.default_rng(3).choice(3000, 27, replace=False)] = \
        [1] * 14 + [2] * 4 + [3] * 3 + [4, 5, 6, 9, 31, 52]
    res = poisonscan.scan(pd.DataFrame({"count": values}), out=tmp_path / "o", quiet=True,
                          checks=["bounds"])
    assert res.summary["rows"]["quarantined"] == 0


def test_a_small_fraction_of_a_never_negative_column_is_set_apart(tmp_path):
    """penguins' bill length with a gross outlier inserted: 4.0 mm where the column runs
    from 32 to 60 is a gap of only one inner width on the column's linear scale, but an
    eighth of its smallest value. A value a little below that smallest one is at most
    evidence."""
    rng = np.random.default_rng(0)
    df = make_frame(340)
    values = np.round(np.clip(rng.normal(43.9, 5.5, size=340), 32.1, 59.6), 1)
    values[[5, 9]] = [4.0, 28.0]
    df["bill"] = values
    res = _scan(tmp_path, df, checks=["bounds"])
    scores = res.scores().set_index("row")["score"]
    assert scores.loc[5] >= 1.5 and set(res.suspects["row"]) == {5}   # hard, set apart
    assert scores.loc[9] < 1.0


def test_a_left_tail_running_towards_zero_is_not_set_apart_by_ratio(tmp_path):
    """A battery level: 100 in most rows, a long tail down to 0 in the others. Its low
    side is its long side, so rows beyond the sampled ones' reach (a sample of 1,000 of
    5,000 rows) are judged on its linear scale alone, not as small fractions of it."""
    rng = np.random.default_rng(2)
    level = np.where(rng.random(5000) < 0.95, 100.0, np.clip(100 - rng.exponential(15, 5000),
                                                            0, 100))
    res = poisonscan.scan(pd.DataFrame({"battery": level}), out=tmp_path / "o",
                          sample_rows=1000, quiet=True, checks=["bounds"])
    assert res.summary["rows"]["quarantined"] == 0


def test_a_code_spanning_less_than_a_decade_is_fenced_linearly(tmp_path):
    """caravan's 0-9 codes: skewed, but a log1p fence would admit ten times their maximum
    (an inserted 40 among codes up to 9 passed as in range)."""
    rng = np.random.default_rng(2)
    df = make_frame(3000)
    df["code"] = np.minimum(rng.geometric(0.35, 3000) - 1, 9)
    df["amount"] = np.round(rng.lognormal(3, 1.2, 3000), 2)   # spans decades: log1p
    _, ranges = _learned(tmp_path, df)
    assert "scale" not in ranges["code"] and float(ranges["code"]["max"]) < 40
    assert ranges["amount"].get("scale") == "log1p"
    df.loc[11, "code"] = 40
    res, _ = _learned(tmp_path, df, "poisoned")
    assert 11 in set(res.suspects["row"])


def test_a_scale_that_piles_up_at_its_ends_is_walled_there(tmp_path):
    """biopsy's 1-10 scores: most rows at 1, a pile at 10. The skewed fence reaches 28, and
    inserted values bridge each other's gaps (22, 25, 33), so the fence and the gap walk
    pass most of them; the scale's ends do not."""
    rng = np.random.default_rng(4)
    n = 1000
    df = make_frame(n)
    score = np.minimum(rng.geometric(0.45, n), 10)
    score[rng.choice(n, 90, replace=False)] = 10  # the scale's top holds many rows
    inserted = np.array([22, 25, 33, 41, 55, -8, -9, -20, -37, 19])
    rows = rng.choice(n, inserted.size, replace=False)
    score[rows] = inserted
    df["score"] = score
    # a reading clipped at -20 (2% of rows there): its fence reaches below -70
    temp = np.round(np.maximum(rng.normal(10, 15, n), -20), 1)
    cold = rng.choice(np.setdiff1d(np.arange(n), rows), 2, replace=False)
    temp[cold] = [-55.0, -70.0]
    df["temp"] = temp
    res = _scan(tmp_path, df)
    suspects = res.suspects.set_index("row")
    # every inserted value, nothing else
    assert set(suspects.index) == set(rows.tolist()) | set(cold.tolist())
    top = int(rows[inserted == 22][0])
    assert "score=22>max(10) (learned: the column piles up at 10" in suspects.loc[top, "reason"]
    assert "temp=-70<min(-20) (learned: the column piles up at -20" in \
        suspects.loc[int(cold[1]), "reason"]
    ranges = res.summary["checks"]["bounds"]["learned"]["ranges"]
    assert (ranges["score"]["floor"], ranges["score"]["ceiling"]) == ("1", "10")
    assert (ranges["temp"]["floor"], "ceiling" in ranges["temp"]) == ("-20", False)
    scores = res.scores().set_index("row")["bounds"]
    assert scores[int(rows[inserted == 55][0])] > scores[top]  # farther beyond, more severe
    assert scores[int(cold[1])] > scores[int(cold[0])]
    plot = res.to_html()
    plot = plot[plot.index("<h3>score</h3>"):]
    assert "learned floor 1, learned ceiling 10" in plot[:plot.index("</figure>")]


@pytest.mark.parametrize("values, walls", [
    # a count thins out towards its end: its top value is no pile-up, nothing is walled
    (np.repeat([0, 1, 2, 3, 4, 5, 6], [300, 300, 200, 120, 50, 20, 10]), (0.0, np.inf)),
    # a pile-up that the column continues just beyond (a 4 after the 3) is no ceiling,
    # even where the step is longer than PILE_GAP of the distance from the median
    # (caravan's PPERSAUT: its median 5 next to the pile-up at 6, and twenty-one 7s and 8s)
    (np.repeat([0, 5, 6, 7, 8], [1462, 327, 1190, 20, 1]), (0.0, np.inf)),
    (np.repeat([0, 1, 2, 3, 4], [300, 300, 150, 200, 3]), (0.0, np.inf)),
    # a clipped measurement: the clip is the ceiling, and 4% of values set apart beyond
    # it do not move it (inserted outliers); a continuous tail has no floor
    (np.r_[np.clip(np.random.default_rng(0).normal(0, 1, 960), -9, 1.0),
           np.linspace(20, 60, 40)], (-np.inf, 1.0)),
    # more than MAX_DETACHED beyond it: the column goes on, no ceiling
    (np.r_[np.clip(np.random.default_rng(0).normal(0, 1, 930), -9, 1.0),
           np.linspace(20, 60, 70)], (-np.inf, np.inf)),
    # a value beyond it that is itself a pile-up (a sentinel in 4% of rows) is the top
    # pile-up, and holds fewer rows than the clip: no ceiling
    (np.r_[np.clip(np.random.default_rng(0).normal(0, 1, 960), -9, 1.0), np.full(40, 99.0)],
     (-np.inf, np.inf)),
    # a sparse column whose tail goes on with more values than its top pile-up holds
    # (digits' pixel_7_7, with 18 copies of 0.016 inserted below its 29 ones)
    # (its 0 is its median: no span below it either)
    (np.repeat([0, 0.016, 1, 2, 3, 5, 8, 12, 16], [1687, 18, 29, 10, 10, 8, 6, 5, 5]),
     (-np.inf, np.inf)),
    # a year held by thirds, with inserted years before it: both ends are walls although
    # 2007 holds a little fewer rows than 2008 (PILE_RISE)
    (np.repeat([1997, 2001, 2004, 2007, 2008, 2009], [1, 1, 2, 110, 114, 120]),
     (2007.0, 2009.0)),
    # a Poisson count's thinning tail ends nowhere
    (np.random.default_rng(0).poisson(50, 100_000), (-np.inf, np.inf)),
    # one value covering almost everything (a sparse count): no span, no walls
    (np.repeat([0, 4, 6], [990, 4, 6]), (-np.inf, np.inf)),
])
def test_pile_up_walls_need_a_pile_a_rise_into_it_and_a_gap_beyond(values, walls):
    from poisonscan.checks.bounds import _pile_walls
    assert _pile_walls(np.asarray(values, dtype=float)) == walls


def test_a_log_scale_fence_beyond_float64_is_unbounded_without_a_warning():
    """Values spread evenly over 300 decades: the fence's log1p end lies past float64."""
    import warnings

    from poisonscan.checks.bounds import BoundsCheck
    values = 10.0 ** np.random.default_rng(0).uniform(0, 300, 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fence = BoundsCheck().learn_fence(values)
    assert fence.log and fence.high == np.inf and 0 <= fence.low < 10


def test_a_value_far_beyond_a_zero_width_range_scores_without_a_warning(tmp_path):
    """A column at 5 but for 2% of rows at 2**53: its learned range is the one value 5,
    and the position of 2**53 overflowed (a RuntimeWarning on stderr under --quiet)."""
    import warnings

    n = 300
    df = make_frame(n)
    df["edge"] = np.where(np.arange(n) % 50 == 7, 2 ** 53 + 1, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _scan(tmp_path, df)
    bounds = res.scores().sort_values("row")["bounds"].to_numpy()
    far = np.arange(n) % 50 == 7  # a recurring value: evidence, at the position's cap
    assert np.isfinite(bounds).all() and bounds[far].min() >= bounds[~far].max()


def test_negative_values_near_the_float_limit_learn_without_a_warning(tmp_path):
    """The median of two negative values near -1.8e308 overflowed while the check asked
    whether the column is never negative (a RuntimeWarning under --quiet)."""
    import warnings

    x = [0.0] * 300 + [-1.7e308, 1.7e308, -1e308, 1e308, 5, 6, 7, 8, 9, 10]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = poisonscan.scan(pd.DataFrame({"x": x}), out=tmp_path / "o", quiet=True,
                              checks=["bounds"])
    assert set(res.suspects["row"]) == {300, 301, 302, 303}  # the four extreme values


@pytest.mark.parametrize("kind", ["codes", "text"])
def test_one_common_value_among_one_off_values_makes_no_value_rare(tmp_path, kind):
    """Identifiers or free text beside a common default (87% one-off values): no value of
    the column is rare; it quarantined 1,299 of 1,500 rows."""
    rng = np.random.default_rng(0)
    n = 1500
    df = pd.DataFrame({"c": [f"u{i}" if kind == "codes" else f"note {i} about item {i * 7}"
                             for i in range(n)],
                       "x": rng.normal(0, 1, n), "y": np.where(rng.random(n) > 0.5, "p", "q")})
    df.loc[:200, "c"] = "A"
    res = _scan(tmp_path, df)
    assert "c" not in res.summary["checks"]["bounds"]["violations_by_column"]
    assert res.summary["rows"]["quarantined"] <= 0.01 * n
