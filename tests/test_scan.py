"""End to end: the output contract, conservation, determinism, atomicity, hostile cells."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import poisonscan
from poisonscan.checks.bounds import BoundsCheck
from poisonscan.cli import main
from poisonscan.io.sinks import CONTRACT_FILES

from conftest import FIXTURES, POISONS, make_frame, poisoned_frame

OUTPUT_FILES = ("scores.parquet", "suspects.csv", "summary.json", "report.html")


def _run(source, out, **kw):
    kw.setdefault("label", "y")
    return poisonscan.scan(str(source) if not isinstance(source, pd.DataFrame) else source,
                           out=out, **kw)


def _bytes(out, fmt="csv"):
    return {name: (out / name).read_bytes()
            for name in ("scores.parquet", "suspects.csv", f"clean.{fmt}", f"quarantine.{fmt}")}


def test_output_contract_files_and_schemas(tmp_path, poisoned_csv):
    out = tmp_path / "out"
    res = _run(poisoned_csv, out, id_column="uid")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["scores.parquet", "suspects.csv", "quarantine.csv", "clean.csv", "summary.json",
         "report.html"])
    scores = pq.read_table(out / "scores.parquet")
    families = list(res.summary["checks"])
    assert families[0] == "bounds"
    assert scores.schema.names == ["row", "score", "suspect", *families, "uid"]
    assert [str(t) for t in scores.schema.types[:-1]] == \
        ["int64", "double", "bool"] + ["double"] * len(families)
    assert scores.column("row").to_pylist() == list(range(600))
    suspects = pd.read_csv(out / "suspects.csv")
    assert list(suspects.columns) == ["rank", "row", "uid", "score", "checks", "reason"]
    assert suspects["rank"].tolist() == list(range(1, len(suspects) + 1))
    assert suspects["score"].is_monotonic_decreasing
    original = list(poisoned_frame().columns)
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str)
    assert list(quarantine.columns) == original + ["_row", "_score", "_reason"]
    assert list(pd.read_csv(out / "clean.csv", nrows=1).columns) == original
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary == res.summary
    assert summary["poisonscan_version"] == poisonscan.__version__
    assert set(summary["outputs"]) == {p.name for p in out.iterdir()}


def test_every_row_lands_in_exactly_one_of_clean_and_quarantine(tmp_path, poisoned_csv):
    out = tmp_path / "out"
    res = _run(poisoned_csv, out, chunk_rows=50)
    original = pd.read_csv(poisoned_csv, dtype=str, keep_default_na=False)
    clean = pd.read_csv(out / "clean.csv", dtype=str, keep_default_na=False)
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)
    q_rows = quarantine["_row"].astype(int).tolist()
    assert sorted(q_rows) == sorted(POISONS)
    assert len(clean) + len(quarantine) == len(original) == res.summary["rows"]["in"]
    rows = res.summary["rows"]
    assert rows["clean"] + rows["quarantined"] == rows["in"]
    # clean holds the other rows, unchanged and in input order
    expected_clean = original.drop(index=q_rows).reset_index(drop=True)
    pd.testing.assert_frame_equal(clean, expected_clean)
    # quarantine holds the suspects' original cells
    pd.testing.assert_frame_equal(quarantine[original.columns].reset_index(drop=True),
                                  original.loc[q_rows].reset_index(drop=True))
    scores = res.scores()
    assert scores.loc[scores.suspect, "row"].tolist() == sorted(q_rows)
    assert set(res.suspects["row"]) == set(q_rows)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 599, 100_000])
def test_results_are_identical_for_any_chunk_size(tmp_path, poisoned_csv, chunk_rows):
    ref = tmp_path / "ref"
    _run(poisoned_csv, ref, chunk_rows=1000, sample_rows=150)
    out = tmp_path / "out"
    _run(poisoned_csv, out, chunk_rows=chunk_rows, sample_rows=150)
    assert _bytes(out) == _bytes(ref)


def test_results_are_identical_for_any_file_split(tmp_path):
    df = poisoned_frame()
    whole = tmp_path / "whole.csv"
    df.to_csv(whole, index=False)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, (lo, hi) in enumerate([(0, 5), (5, 333), (333, 600)]):
        df.iloc[lo:hi].to_csv(parts / f"p{i}.csv", index=False)
    a = _run(whole, tmp_path / "a", sample_rows=100).scores()
    b = _run(parts, tmp_path / "b", sample_rows=100).scores()
    pd.testing.assert_frame_equal(a, b)


def test_same_seed_same_bytes_and_the_seed_is_used(tmp_path, poisoned_csv):
    runs = [_run(poisoned_csv, tmp_path / name, sample_rows=100, seed=seed)
            for name, seed in (("a", 7), ("b", 7), ("c", 8))]
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert not np.array_equal(runs[0].scores()["score"], runs[2].scores()["score"])
    assert runs[0].summary["seed"] == 7


def test_id_column_is_carried_through(tmp_path, poisoned_csv):
    out = tmp_path / "out"
    res = _run(poisoned_csv, out, id_column="uid")
    expected = [f"u{r:05d}" for r in res.suspects["row"]]
    assert res.suspects["uid"].tolist() == expected
    scores = res.scores()
    assert scores["uid"].tolist() == [f"u{i:05d}" for i in range(600)]
    assert "uid" not in res.summary["columns"]  # an id is not a feature


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_output_format_follows_input_unless_told(tmp_path, fmt):
    df = make_frame(300)
    df.loc[4, "x"] = -1e6
    src = tmp_path / ("d.parquet" if fmt == "csv" else "d.csv")
    df.to_parquet(src) if fmt == "csv" else df.to_csv(src, index=False)
    default = _run(src, tmp_path / "default")
    assert default.summary["output_format"] == ("parquet" if fmt == "csv" else "csv")
    told = _run(src, tmp_path / "told", format=fmt)
    assert (tmp_path / "told" / f"clean.{fmt}").exists()
    assert (tmp_path / "told" / f"quarantine.{fmt}").exists()
    assert len(told.clean()) == 299 and told.quarantine()["_row"].tolist() == [4]


def test_csv_integer_columns_stay_integers_in_parquet_outputs(tmp_path):
    """A CSV is read with float64 numbers (a later cell may be "3.5"); written as Parquet,
    a column pass 1 saw holding integers only is int64 again, with the same values."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"count": rng.poisson(3, n), "x": rng.normal(size=n),
                          "whole": np.round(rng.normal(size=n) * 10).astype(int),
                          "late": np.arange(n), "huge": np.arange(n) + 2 ** 60,
                          "edge": np.where(np.arange(n) % 50 == 7, 2 ** 53 + 1, 5),
                          "hex": np.arange(n).astype(object), "y": rng.choice(["a", "b"], n)})
    frame.loc[9, "hex"] = "0x10"  # not a number: the cell is lost as a number either way
    text = frame.to_csv(index=False).splitlines()
    text[-1] = text[-1].replace(f",{n - 1},", ",299.5,")  # 'late': a fraction in its last row
    src = tmp_path / "d.csv"
    src.write_text("\n".join(text) + "\n", encoding="utf-8")
    res = _run(src, tmp_path / "out", format="parquet")
    for name in ("clean", "quarantine"):
        types = {f.name: str(f.type) for f in pq.read_schema(tmp_path / "out" / f"{name}.parquet")}
        assert types["count"] == types["whole"] == "int64"
        # 2**60 is not exact in float64, nor is 2**53 + 1 (it reads as 2**53)
        assert types["x"] == types["late"] == types["huge"] == types["edge"] == "double"
        assert types["hex"] == "double"
    out = pd.concat([res.clean(), res.quarantine()]).sort_values(["late"])
    assert len(out) == n and (out["count"].to_numpy() == frame["count"].to_numpy()).all()
    assert (out["whole"].to_numpy() == frame["whole"].to_numpy()).all()


def test_compressed_csv_outputs_are_plain_csv(tmp_path):
    import gzip
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(poisoned_frame().to_csv(index=False).encode()))
    _run(path, tmp_path / "out")
    assert (tmp_path / "out" / "clean.csv").read_bytes().startswith(b'"uid"')


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_empty_quarantine_still_has_header_or_schema(tmp_path, fmt):
    res = _run(make_frame(300), tmp_path / "out", format=fmt)
    assert res.summary["rows"]["quarantined"] == 0
    path = tmp_path / "out" / f"quarantine.{fmt}"
    if fmt == "csv":
        assert path.read_text(encoding="utf-8").strip().split(",")[-1] == '"_reason"'
    else:
        table = pq.read_table(path)
        assert table.num_rows == 0 and table.schema.names[-3:] == ["_row", "_score", "_reason"]
    assert pd.read_csv(tmp_path / "out" / "suspects.csv").empty


def test_dataframe_source_without_out_uses_a_temporary_directory():
    df = make_frame(300)
    df.loc[8, "count"] = 10_000
    res = poisonscan.scan(df, label="y")
    assert res.suspects["row"].tolist() == [8]
    assert len(res.scores()) == 300 and res.out.exists()
    assert res.summary["output_format"] == "parquet"


def test_hostile_cells_are_escaped_in_html_and_guarded_in_review_csv(tmp_path):
    df = make_frame(3000)
    df.loc[5, "colour"] = "<script>alert(1)</script>"
    df.loc[6, "colour"] = '=HYPERLINK("http://evil","x")'
    df["note"] = [f"n{i}" for i in range(3000)]  # high-cardinality text: not a feature finding
    df.loc[7, "note"] = "=1+1"
    df.loc[8, "note"] = "-42"
    out = tmp_path / "out"
    res = _run(df, out, format="csv")
    assert set(res.suspects["row"]) == {5, 6}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "Content-Security-Policy" in html and "http://evil" not in html.split("<body>")[0]
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str)
    assert quarantine.loc[quarantine["_row"] == "6", "colour"].item().startswith("'=HYPERLINK")
    clean = pd.read_csv(out / "clean.csv", dtype=str)
    # the clean file is training data: never altered
    assert clean.loc[clean["note"].isin(["=1+1", "-42"]), "note"].tolist() == ["=1+1", "-42"]


class _Boom(RuntimeError):
    pass


def _fail_on_second_chunk(monkeypatch):
    calls = {"n": 0}
    original = BoundsCheck.score

    def score(self, chunk):
        if chunk.source != "<sample>":
            calls["n"] += 1
            if calls["n"] == 2:
                raise _Boom("disk on fire")
        return original(self, chunk)

    monkeypatch.setattr(BoundsCheck, "score", score)


def test_a_failure_mid_scan_leaves_nothing_behind(tmp_path, poisoned_csv, monkeypatch):
    _fail_on_second_chunk(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(_Boom):
        _run(poisoned_csv, out, chunk_rows=100)
    assert not out.exists()


def test_a_failed_rescan_keeps_the_previous_outputs(tmp_path, poisoned_csv, monkeypatch):
    out = tmp_path / "out"
    _run(poisoned_csv, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fail_on_second_chunk(monkeypatch)
    with pytest.raises(_Boom):
        _run(poisoned_csv, out, chunk_rows=100, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_finished_scan_is_not_overwritten_without_permission(tmp_path, poisoned_csv):
    out = tmp_path / "out"
    _run(poisoned_csv, out)
    with pytest.raises(poisonscan.OutputExistsError, match="--overwrite"):
        _run(poisoned_csv, out)
    _run(poisoned_csv, out, overwrite=True, format="parquet")
    names = {p.name for p in out.iterdir()}
    assert "clean.parquet" in names and "clean.csv" not in names  # stale outputs removed
    assert names <= set(CONTRACT_FILES)


def test_bundled_fixture_finds_every_bounds_poison():
    truth = pd.read_csv(FIXTURES / "loans_truth.csv")
    res = poisonscan.scan(str(FIXTURES / "loans.csv"), label="default",
                          id_column="application_id")
    bounds_truth = set(truth.loc[truth.attack != "label_flip", "row"])
    assert set(res.suspects["row"]) == bounds_truth


def test_no_label_skips_label_checks_and_says_so(tmp_path, poisoned_csv):
    res = poisonscan.scan(str(poisoned_csv), out=tmp_path / "out")
    assert res.summary["label"] is None
    assert res.summary["checks_skipped"]
    assert set(res.suspects["row"]) == set(POISONS)


def test_max_suspects_and_contamination(tmp_path, poisoned_csv):
    capped = _run(poisoned_csv, tmp_path / "a", max_suspects=2)
    assert len(capped.suspects) == 2
    full = _run(poisoned_csv, tmp_path / "b")
    assert capped.suspects["row"].tolist() == full.suspects["row"].tolist()[:2]
    cont = _run(poisoned_csv, tmp_path / "c", contamination=0.05)
    assert len(cont.suspects) == 30  # ceil(0.05 * 600)
    assert set(full.suspects["row"]) <= set(cont.suspects["row"])


@pytest.mark.parametrize("columns, label", [(["y"], "y"), (["c", "y"], "y"), (["c"], None)],
                         ids=["label only", "one constant column", "one constant, no label"])
def test_a_scan_with_no_usable_feature_finishes_and_says_why(tmp_path, capsys, columns, label):
    """Families that compare rows by their features have nothing to check; the label
    column's own bounds still apply (a missing label is quarantined)."""
    df = make_frame(300)
    df["c"] = 7
    df.loc[5, "y"] = None
    df[columns].to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "out"
    argv = ["scan", str(tmp_path / "d.csv"), "--out", str(out), "--quiet"]
    assert main(argv + (["--label", label] if label else [])) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["rows"]["in"] == 300
    assert pd.read_csv(out / "suspects.csv")["row"].tolist() == ([5] if label else [])
    assert len(pd.read_csv(out / "clean.csv")) == 300 - len([5] if label else [])
    learned = {name: family["learned"] for name, family in summary["checks"].items()}
    assert learned["outliers"]["inactive"].startswith("no encod")
    for name in ("labels", "duplicates", "backdoor") if label else ("duplicates",):
        assert learned[name]["note"].startswith("nothing to check: "), (name, learned[name])
