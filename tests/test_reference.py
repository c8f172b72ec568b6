"""Reference profiles: ``poisonscan profile``, ``scan --reference``, editing, drift, errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import poisonscan
from poisonscan import reference
from poisonscan.cli import main
from poisonscan.errors import ConfigError

from conftest import make_frame


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _trusted(tmp_path, rows=3000, seed=0) -> Path:
    path = tmp_path / "trusted.csv"
    df = make_frame(rows, seed)
    df["when"] = pd.date_range("2024-01-01", periods=rows, freq="h").strftime(
        "%Y-%m-%d %H:%M:%S")
    df.to_csv(path, index=False)
    return path


@pytest.fixture
def profiled(tmp_path, capsys):
    data = _trusted(tmp_path)
    out = tmp_path / "profile.json"
    code, _, err = _cli(["profile", data, "--label", "y", "--id-column", "uid", "-o", out,
                         "-q"], capsys)
    assert code == 0, err
    return data, out


def test_profile_is_readable_json_with_ranges_quantiles_categories_and_classes(profiled):
    _, out = profiled
    text = out.read_text(encoding="utf-8")
    assert text.startswith("{\n  ")  # indented for people and diffs
    doc = json.loads(text)
    assert doc["poisonscan_profile"] == reference.PROFILE_VERSION
    assert doc["rows"] == 3000 and doc["label"] == "y"
    assert set(doc["columns"]) == {"x", "count", "colour", "when"}  # not the id column
    x = doc["columns"]["x"]
    assert x["type"] == "numeric" and x["null_rate"] == 0.0 and x["nullable"] is False
    assert x["range"]["min"] < x["quantiles"]["0.01"] < x["quantiles"]["0.99"] < x["range"]["max"]
    assert len(x["bins"]["shares"]) == len(x["bins"]["edges"]) + 1
    assert doc["columns"]["count"]["integer"] is True
    colour = doc["columns"]["colour"]
    assert set(colour["categories"]) == {"red", "green", "blue"}
    assert abs(sum(c["share"] for c in colour["categories"].values()) - 1) < 1e-6
    assert doc["columns"]["when"]["range"]["min"].startswith("20")  # dates as ISO text
    classes = doc["labels"]["classes"]
    assert set(classes) == {"pos", "neg"} and sum(c["rows"] for c in classes.values()) == 3000
    assert set(doc["by_label"]) == {"pos", "neg"}
    assert "range" in doc["by_label"]["pos"]["columns"]["x"]


def test_profile_refuses_to_overwrite_without_the_flag(profiled, capsys):
    data, out = profiled
    code, _, err = _cli(["profile", data, "--label", "y", "-o", out], capsys)
    assert code == 2 and "--overwrite" in err
    code, _, err = _cli(["profile", data, "--label", "y", "-o", out, "--overwrite", "-q"], capsys)
    assert code == 0, err


def test_scanning_the_trusted_data_against_its_own_profile_finds_nothing(profiled, tmp_path):
    data, out = profiled
    res = poisonscan.scan(str(data), label="y", id_column="uid", out=tmp_path / "scan",
                          reference=str(out), checks=["bounds"])
    assert res.summary["rows"]["quarantined"] <= 3
    drift = res.summary["drift"]
    assert drift["flagged"] is False
    assert drift["labels"]["psi"] < 1e-9
    assert all(c["psi"] < 1e-6 for c in drift["columns"].values())


def test_a_profile_of_other_data_is_refused(profiled, tmp_path, capsys):
    _, out = profiled
    other = tmp_path / "other.csv"
    pd.DataFrame({"p": np.arange(50.0), "z": ["a", "b"] * 25}).to_csv(other, index=False)
    code, _, err = _cli(["scan", other, "--label", "z", "--reference", out, "-o",
                         tmp_path / "scan", "-q"], capsys)
    assert code == 2 and "describes none of the data's columns" in err
    assert not (tmp_path / "scan").exists()
    shared = tmp_path / "shared.csv"  # one column in common is enough: data may grow
    pd.DataFrame({"x": np.linspace(40, 60, 50), "z": ["a", "b"] * 25}).to_csv(shared,
                                                                          index=False)
    code, _, err = _cli(["scan", shared, "--label", "z", "--reference", out, "-o",
                         tmp_path / "scan", "-q"], capsys)
    assert code == 0, err


def test_profile_edit_scan_round_trip(profiled, tmp_path, capsys):
    data, out = profiled
    doc = json.loads(out.read_text(encoding="utf-8"))
    doc["columns"]["x"]["range"] = {"min": 0, "max": 60}  # the user tightens a range
    del doc["columns"]["colour"]["categories"]["blue"]  # and retires a category
    doc["by_label"]["pos"]["columns"]["count"]["range"] = {"min": None, "max": 5}
    out.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    new = make_frame(1000, seed=1)
    new.loc[3, "x"] = 61.5
    new.to_csv(tmp_path / "new.csv", index=False)
    code, _, err = _cli(["scan", tmp_path / "new.csv", "--label", "y", "--id-column", "uid",
                         "-o", tmp_path / "scan", "--reference", out, "-q", "--checks",
                         "bounds"], capsys)
    assert code == 0, err
    suspects = pd.read_csv(tmp_path / "scan" / "suspects.csv")
    reasons = dict(zip(suspects["row"], suspects["reason"]))
    assert "bounds:x=61.5>max(60) (reference)" in reasons[3]
    blue = set(np.flatnonzero(new["colour"].to_numpy() == "blue"))
    assert blue <= set(reasons)
    assert all("bounds:colour='blue' not allowed (reference)" in reasons[r] for r in blue)
    many = set(np.flatnonzero((new["count"].to_numpy() > 5) & (new["y"].to_numpy() == "pos")))
    assert many and many <= set(reasons)
    row = min(many)
    assert f"bounds:count={new.loc[row, 'count']}>max(5) for label 'pos' (reference)" \
        in reasons[row]
    summary = json.loads((tmp_path / "scan" / "summary.json").read_text(encoding="utf-8"))
    counts = summary["checks"]["bounds"]["violations_by_column"]
    assert counts["colour"]["allowed (reference)"] == len(blue)
    assert counts["count"]["max (reference, per class)"] == len(many)
    assert summary["checks"]["bounds"]["learned"]["reference"] == str(out)


def test_unseen_label_and_missing_in_a_never_null_column_break_the_reference(profiled, tmp_path):
    data, out = profiled
    new = make_frame(500, seed=2)
    new.loc[4, "y"] = "maybe"
    new.loc[5, "x"] = None
    res = poisonscan.scan(new, label="y", id_column="uid", reference=str(out),
                          checks=["bounds"])
    reasons = dict(zip(res.suspects["row"], res.suspects["reason"]))
    assert "bounds:label 'y'='maybe' not allowed (reference)" in reasons[4]
    assert "bounds:x missing, not nullable (reference)" in reasons[5]
    assert res.summary["drift"]["new_columns"] == []
    assert res.summary["drift"]["missing_columns"] == ["when"]


def test_removing_most_of_one_class_raises_the_drift_flag(tmp_path, capsys):
    full = make_frame(4000, seed=3)
    full.to_csv(tmp_path / "full.csv", index=False)
    code, _, err = _cli(["profile", tmp_path / "full.csv", "--label", "y", "-o",
                         tmp_path / "p.json", "-q"], capsys)
    assert code == 0, err
    pos = np.flatnonzero(full["y"].to_numpy() == "pos")
    removed = full.drop(index=pos[: int(0.9 * len(pos))])
    removed.to_csv(tmp_path / "removed.csv", index=False)
    code, _, err = _cli(["scan", tmp_path / "removed.csv", "--label", "y", "-o",
                         tmp_path / "scan", "--reference", tmp_path / "p.json", "--checks",
                         "bounds"], capsys)
    assert code == 0, err
    assert "drift against the reference" in err and "labels (PSI" in err
    summary = json.loads((tmp_path / "scan" / "summary.json").read_text(encoding="utf-8"))
    drift = summary["drift"]
    assert drift["flagged"] is True and drift["labels"]["flag"] is True
    assert drift["labels"]["psi"] > drift["threshold"]
    pos_class = drift["labels"]["classes"]["pos"]
    assert pos_class["reference_rows"] == len(pos)
    assert pos_class["rows"] == len(pos) - int(0.9 * len(pos))
    assert pos_class["ratio"] < 0.5
    assert drift["columns"]["x"]["flag"] is True  # x decides the label: it shifts too
    assert drift["columns"]["colour"]["flag"] is False
    page = (tmp_path / "scan" / "report.html").read_text(encoding="utf-8")
    assert "Drift against the reference" in page and "flagged" in page
    # the same cut under a looser threshold is not flagged
    res = poisonscan.scan(str(tmp_path / "removed.csv"), label="y", reference=str(
        tmp_path / "p.json"), families={"bounds": {"drift_threshold": 5.0}}, checks=["bounds"])
    assert res.summary["drift"]["flagged"] is False


def test_profile_api_returns_the_document_and_writes_only_when_asked(tmp_path):
    df = make_frame(500)
    doc = poisonscan.profile(df, label="y")
    assert doc["rows"] == 500 and not list(tmp_path.iterdir())
    json.dumps(doc, allow_nan=False)  # plain JSON values
    poisonscan.profile(df, label="y", out=tmp_path / "p.json", families={"bounds": {"margin": 3}})
    wide = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert wide["columns"]["x"]["range"]["max"] > doc["columns"]["x"]["range"]["max"]
    with pytest.raises(poisonscan.OutputExistsError):
        poisonscan.profile(df, label="y", out=tmp_path / "p.json")


def test_profile_file_gets_the_mode_of_any_file_under_the_umask(tmp_path, capsys):
    data = _trusted(tmp_path, rows=300)
    previous = os.umask(0o022)  # a usual umask: a private (0600) profile would differ
    try:
        code, _, err = _cli(["profile", data, "--label", "y", "-o", tmp_path / "p.json",
                             "-q"], capsys)
        with open(tmp_path / "plain.txt", "w", encoding="utf-8"):
            pass
    finally:
        os.umask(previous)
    assert code == 0, err
    mode = stat.S_IMODE((tmp_path / "p.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_identifier_like_columns_get_no_category_bound(tmp_path):
    df = make_frame(500)
    doc = poisonscan.profile(df, label="y")  # uid is not declared as the id column
    assert doc["columns"]["uid"]["categories"] is None
    res = poisonscan.scan(make_frame(300, seed=9).assign(uid=lambda d: "new" + d["uid"]),
                          label="y", reference=_write(tmp_path, doc), checks=["bounds"])
    assert res.summary["rows"]["quarantined"] <= 3


def _write(tmp_path, doc) -> str:
    path = tmp_path / "ref.json"
    reference.write(doc, path, overwrite=True)
    return str(path)


@pytest.mark.parametrize("mutate,words", [
    (lambda d: d.update(poisonscan_profile=99), ["poisonscan_profile", "99"]),
    (lambda d: d.pop("columns"), ["columns"]),
    (lambda d: d["columns"]["x"]["range"].update(min="low"), ["columns.x.range.min", "'low'"]),
    (lambda d: d["columns"]["x"]["range"].update(min=10, max=1), ["columns.x.range", "above"]),
    (lambda d: d["columns"]["x"].update(type="text"), ["columns.x.type"]),
    (lambda d: d["columns"]["colour"].update(categories=["red"]), ["columns.colour.categories"]),
    (lambda d: d["columns"]["x"].update(nullable="no"), ["columns.x.nullable"]),
    (lambda d: d["labels"]["classes"].update(pos={"rows": -1}), ["labels.classes.pos.rows"]),
    (lambda d: d["columns"]["x"]["bins"].update(shares=[1]), ["columns.x.bins"]),
], ids=["version", "no-columns", "text-min", "min-above-max", "bad-type", "list-categories",
        "bad-nullable", "negative-rows", "bad-bins"])
def test_bad_profile_is_an_error_naming_file_and_key(tmp_path, capsys, mutate, words):
    df = make_frame(300)
    df.to_csv(tmp_path / "d.csv", index=False)
    doc = poisonscan.profile(df, label="y")
    mutate(doc)
    path = _write(tmp_path, doc)
    code, _, err = _cli(["scan", tmp_path / "d.csv", "--label", "y", "-o", tmp_path / "out",
                         "--reference", path, "--checks", "bounds"], capsys)
    assert code == 2
    line = err.strip()
    assert line.startswith(f"poisonscan: error: {path}: ") and "\n" not in line
    for word in words:
        assert word in line, line
    assert not (tmp_path / "out").exists()


def test_profile_that_is_not_json_or_missing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"poisonscan_profile": 1,\n  "columns": {,}\n}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.json:2: reference profile is not valid JSON"):
        reference.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        reference.load(tmp_path / "missing.json")


def test_psi_and_ks_helpers():
    assert reference.psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert reference.psi([0.5, 0.5], [0.9, 0.1]) > 0.2
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 50_000)
    quantiles = list(zip(reference.QUANTILES, np.quantile(base, reference.QUANTILES)))
    assert reference.numeric_psi(quantiles, rng.normal(0, 1, 20_000)) < 0.01
    assert reference.numeric_psi(quantiles, rng.normal(1, 1, 20_000)) > 0.2
    assert reference.quantile_ks(quantiles, rng.normal(1, 1, 20_000)) > 0.3


def test_profile_json_flag_prints_the_document(tmp_path, capsys):
    data = _trusted(tmp_path, rows=300)
    code, out, err = _cli(["profile", data, "--label", "y", "-o", tmp_path / "p.json",
                           "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert "profiled 300 rows" in err


def test_profile_errors_exit_2(tmp_path, capsys):
    data = _trusted(tmp_path, rows=100)
    code, _, err = _cli(["profile", data, "--label", "nope", "-o", tmp_path / "p.json"], capsys)
    assert code == 2 and "label column 'nope' not found" in err
    assert not (tmp_path / "p.json").exists()
