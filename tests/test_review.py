"""Reviewer decisions: ``decisions.csv``, ``poisonscan apply`` and ``scan --allowlist``."""

from __future__ import annotations

import csv
import json
import re

import jsonschema
import pandas as pd
import pyarrow.parquet as pq
import pytest

import poisonscan
from poisonscan.cli import main
from poisonscan.errors import InputError
from poisonscan.io.sinks import OutputWriteError, _guard_text
from poisonscan.report.summary import load_schema
from poisonscan.review import apply_decisions, read_decisions, unguard_text

from conftest import make_frame

#: rows poisoned by :func:`_frame`, all found by the bounds check
POISONED = (3, 10, 40, 41, 77)


def _frame(rows: int = 300) -> pd.DataFrame:
    df = make_frame(rows, seed=1)
    df.loc[3, "x"] = -9000.0
    df.loc[10, "x"] = 9000.0
    df.loc[40, "colour"] = "=cmd|' /C calc'!A0"
    df.loc[41, "colour"] = "-ultraviolet"
    df.loc[41, "uid"] = "@evil"
    df.loc[77, "x"] = 1e9
    return df


def _scan(tmp_path, *, fmt="csv", name="scan", id_column="uid", **options):
    data = tmp_path / "data.csv"
    if not data.exists():
        _frame().to_csv(data, index=False)
    return poisonscan.scan(str(data), label="y", out=tmp_path / name, id_column=id_column,
                           checks=["bounds"], format=fmt, seed=0, **options)


def _decisions(path, lines, header="row,id,decision,note"):
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _read(path, fmt):
    if fmt == "parquet":
        return pq.read_table(path).to_pandas()
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# ============================================================================ apply


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_apply_puts_kept_rows_back_in_input_order(tmp_path, fmt):
    res = _scan(tmp_path, fmt=fmt)
    assert set(res.suspects["row"]) == set(POISONED)
    before = {f: (res.out / f).read_bytes() for f in ("scores.parquet", "suspects.csv",
                                                      "report.html")}
    decisions = _decisions(tmp_path / "d.csv", ["10,u00010,keep,looks fine", "3,,drop,",
                                                "41,'@evil,keep,\"'=2+2\""])
    summary = apply_decisions(res.out, decisions)
    clean = _read(res.out / f"clean.{fmt}", fmt)
    quarantine = _read(res.out / f"quarantine.{fmt}", fmt)
    original = pd.read_csv(tmp_path / "data.csv", dtype=str, keep_default_na=False)
    expected = [u for i, u in enumerate(original["uid"]) if i not in (3, 40, 77)]
    assert clean["uid"].tolist() == expected                     # kept rows, in input order
    assert sorted(map(int, quarantine["_row"])) == [3, 40, 77]
    assert list(clean.columns) == list(original.columns)
    row41 = clean.loc[clean["uid"] == "@evil"].iloc[0]           # unguarded again: training data
    assert row41["colour"] == "-ultraviolet"
    if fmt == "csv":
        assert quarantine.loc[quarantine["_row"] == "40", "colour"].item() == "'=cmd|' /C calc'!A0"
    assert summary["rows"] == {"in": 300, "clean": 297, "quarantined": 3,
                               "quarantined_fraction": 0.01}
    record = summary["decisions"][-1]
    assert record["kept_rows"] == [10, 41] and record["dropped_rows"] == [3]
    assert (record["decided"], record["undecided"]) == (3, 2)
    jsonschema.validate(json.loads((res.out / "summary.json").read_text()), load_schema())
    for name, content in before.items():                          # the rest is untouched
        assert (res.out / name).read_bytes() == content
    assert not [p for p in res.out.iterdir() if p.name.startswith(".")]  # no staging left


def test_apply_without_kept_rows_leaves_the_clean_file_byte_identical(tmp_path):
    res = _scan(tmp_path)
    clean = (res.out / "clean.csv").read_bytes()
    quarantine = (res.out / "quarantine.csv").read_bytes()
    apply_decisions(res.out, _decisions(tmp_path / "d.csv", ["3,u00003,drop,bad"]))
    assert (res.out / "clean.csv").read_bytes() == clean
    assert (res.out / "quarantine.csv").read_bytes() == quarantine


def test_apply_keeping_everything_gives_the_input_back(tmp_path):
    res = _scan(tmp_path)
    rows = [f"{r},,keep," for r in POISONED]
    apply_decisions(res.out, _decisions(tmp_path / "d.csv", rows), tmp_path / "all")
    original = (tmp_path / "data.csv").read_text().splitlines()
    clean = list(csv.reader((tmp_path / "all" / "clean.csv").read_text().splitlines()))
    assert clean == list(csv.reader(original))
    assert len(pd.read_csv(tmp_path / "all" / "quarantine.csv")) == 0


def test_apply_to_out_leaves_the_scan_alone_and_copies_every_file(tmp_path):
    res = _scan(tmp_path)
    snapshot = {p.name: p.read_bytes() for p in res.out.iterdir()}
    target = tmp_path / "reviewed"
    assert main(["apply", str(res.out), "--decisions",
                 str(_decisions(tmp_path / "d.csv", ["10,,keep,"])), "--out", str(target),
                 "--quiet"]) == 0
    assert {p.name: p.read_bytes() for p in res.out.iterdir()} == snapshot
    assert {p.name for p in target.iterdir()} == set(snapshot)
    # a second apply into the same --out needs --overwrite
    code = main(["apply", str(res.out), "--decisions", str(tmp_path / "d.csv"),
                 "--out", str(target), "--quiet"])
    assert code == 2


@pytest.mark.parametrize("lines, header, expected", [
    (["3,u00003,maybe,"], "row,id,decision,note",
     r"d\.csv: row 2: column 'decision': expected 'drop' or 'keep', got 'maybe'"),
    (["x3,u00003,drop,"], "row,id,decision,note", r"d\.csv: row 2: column 'row'"),
    (["3,u00003,drop,", "3,u00003,keep,"], "row,id,decision,note",
     r"d\.csv: row 3: column 'row': row 3 is decided twice \(also on line 2\)"),
    (["3,drop"], "row,verdict", r"d\.csv: row 1: missing column 'decision'"),
    (["3,u00004,drop,"], "row,id,decision,note",
     r"d\.csv: row 2: column 'id': row 3 has id 'u00003' in the scan, not 'u00004'"),
    (["5,,drop,"], "row,id,decision,note",
     r"d\.csv: row 2: column 'row': row 5 was not quarantined by this scan"),
    (["300,,keep,"], "row,id,decision,note",
     r"d\.csv: row 2: column 'row': row 300 is not in the scan \(300 rows\)"),
    (["3,,drop,,xyz"], "row,id,decision,note,fingerprint",
     r"d\.csv: row 2: column 'fingerprint': expected 16 hex digits"),
])
def test_a_bad_decisions_file_is_one_line_naming_file_row_and_column(tmp_path, capsys, lines,
                                                                    header, expected):
    res = _scan(tmp_path)
    snapshot = {p.name: p.read_bytes() for p in res.out.iterdir()}
    decisions = _decisions(tmp_path / "d.csv", lines, header)
    assert main(["apply", str(res.out), "--decisions", str(decisions)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(expected, err), err
    assert {p.name: p.read_bytes() for p in res.out.iterdir()} == snapshot


def test_formula_column_names_survive_apply(tmp_path):
    df = _frame().rename(columns={"colour": "=colour", "count": "@count"})
    df.to_csv(tmp_path / "data.csv", index=False)
    res = _scan(tmp_path)
    header = (tmp_path / "data.csv").read_text().splitlines()[0].split(",")
    quarantine_header = (res.out / "quarantine.csv").read_text().splitlines()[0]
    assert '"\'=colour"' in quarantine_header                   # guarded in the review file
    apply_decisions(res.out, _decisions(tmp_path / "d.csv", ["40,,keep,", "3,,drop,"]))
    clean = pd.read_csv(res.out / "clean.csv", dtype=str, keep_default_na=False)
    assert list(clean.columns) == header                         # training data: as given
    assert clean.loc[clean["uid"] == "u00040", "=colour"].item() == "=cmd|' /C calc'!A0"
    assert '"\'=colour"' in (res.out / "quarantine.csv").read_text().splitlines()[0]


def test_a_failing_apply_leaves_the_scan_as_it_was(tmp_path, monkeypatch):
    res = _scan(tmp_path)
    snapshot = {p.name: p.read_bytes() for p in res.out.iterdir()}
    import poisonscan.review as review

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(review, "write_json", broken)  # the last file written
    with pytest.raises(OutputWriteError, match="nothing was written"):
        apply_decisions(res.out, _decisions(tmp_path / "d.csv", ["10,,keep,"]))
    assert {p.name: p.read_bytes() for p in res.out.iterdir()} == snapshot


def test_apply_refuses_a_directory_that_is_no_scan(tmp_path, capsys):
    decisions = _decisions(tmp_path / "d.csv", ["1,,keep,"])
    assert main(["apply", str(tmp_path), "--decisions", str(decisions)]) == 2
    assert "not a scan directory" in capsys.readouterr().err


def test_undecided_lines_are_skipped_and_guards_removed(tmp_path):
    path = _decisions(tmp_path / "d.csv", ["1,'=A1,,ignored", "2,'-x,KEEP,\"'@note\""],
                      "row,id,decision,note")
    (decision,) = read_decisions(path)
    assert (decision.row, decision.decision, decision.note) == (2, "keep", "@note")
    assert unguard_text(decision.id) == "-x"


def test_a_note_may_span_lines_and_errors_name_the_right_line(tmp_path):
    path = _decisions(tmp_path / "d.csv", ['3,u00003,drop,"two\nlines"', "10,u00010,maybe,"])
    with pytest.raises(InputError, match=r"d\.csv: row 4: column 'decision'"):
        read_decisions(path)
    path = _decisions(tmp_path / "d.csv", ['3,u00003,drop,"two\nlines"'])
    assert read_decisions(path)[0].note == "two\nlines"


def test_an_id_holding_a_carriage_return_survives_the_decisions_file(tmp_path, capsys):
    df = _frame()
    df.loc[3, "uid"] = "u\r00003"
    df.to_csv(tmp_path / "data.csv", index=False, quoting=csv.QUOTE_ALL)
    res = _scan(tmp_path)
    # as the review page exports it: CRLF line ends, the id's CR inside a quoted cell
    decisions = tmp_path / "d.csv"
    decisions.write_bytes(b'row,id,decision,note,fingerprint\r\n3,"u\r00003",keep,"",\r\n')
    assert read_decisions(decisions)[0].id == "u\r00003"
    assert main(["apply", str(res.out), "--decisions", str(decisions), "--out",
                 str(tmp_path / "applied")]) == 0, capsys.readouterr().err
    clean = _read(tmp_path / "applied" / "clean.csv", "csv")
    assert clean["uid"].tolist()[3] == "u\r00003"
    again = _scan(tmp_path, name="again", allowlist=str(decisions))
    assert again.summary["decision"]["allowlisted"] == 1
    # an error names the first line of the record (a CR in a quoted cell is a line break)
    decisions.write_bytes(b'row,id,decision\r\n3,"u\r00003",maybe\r\n10,u00010,maybe\r\n')
    with pytest.raises(InputError, match=r"d\.csv: row 2: column 'decision'"):
        read_decisions(decisions)
    decisions.write_bytes(b'row,id,decision\r\n3,"u\r00003",keep\r\n10,u00010,maybe\r\n')
    with pytest.raises(InputError, match=r"d\.csv: row 4: column 'decision'"):
        read_decisions(decisions)


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1.5", "-x", "@SUM(A1)", "\tx", "\rx",
                                  "plain", "", "'quoted", "1e5", "-", "=", "'-3"])
def test_unguard_undoes_the_guard(text):
    assert unguard_text(_guard_text(text)) == text or text.startswith("'")


# ============================================================================ allowlist


def test_allowlist_by_id_keeps_reviewed_rows_out_of_the_quarantine(tmp_path):
    first = _scan(tmp_path)
    decisions = _decisions(tmp_path / "d.csv", ["10,u00010,keep,", "41,'@evil,keep,",
                                                "3,u00003,drop,"])
    res = _scan(tmp_path, name="again", allowlist=str(decisions))
    assert set(res.suspects["row"]) == set(first.suspects["row"]) - {10, 41}
    assert res.summary["decision"]["allowlisted"] == 2
    assert res.summary["rows"]["quarantined"] == len(POISONED) - 2
    jsonschema.validate(res.summary, load_schema())


def test_allowlist_by_fingerprint_follows_the_row_when_rows_move(tmp_path):
    res = _scan(tmp_path, id_column=None)
    page = (res.out / "report.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="poisonscan-data">(.*?)</script>', page, re.S).group(1))
    prints = {s["row"]: s["fingerprint"] for s in data["suspects"]}
    decisions = _decisions(tmp_path / "d.csv", [f"10,,keep,,{prints[10]}"],
                           "row,id,decision,note,fingerprint")
    # the next delivery: two new rows in front, so row 10 is now row 12
    shifted = pd.concat([_frame().iloc[:2], _frame()], ignore_index=True)
    shifted.to_csv(tmp_path / "next.csv", index=False)
    again = poisonscan.scan(str(tmp_path / "next.csv"), label="y", out=tmp_path / "next",
                            checks=["bounds"], allowlist=str(decisions))
    assert 12 not in set(again.suspects["row"]) and 5 in set(again.suspects["row"])
    assert again.summary["decision"]["allowlisted"] == 1


def test_allowlist_needs_something_to_match_on(tmp_path):
    decisions = _decisions(tmp_path / "d.csv", ["10,u00010,keep,"])
    with pytest.raises(InputError, match=r"d\.csv: row 2: column 'fingerprint': a kept row "
                                         r"needs an id"):
        _scan(tmp_path, id_column=None, allowlist=str(decisions))


def test_allowlist_is_a_declared_option():
    from poisonscan.config import OPTION_BY_NAME, ScanConfig

    assert OPTION_BY_NAME["allowlist"].flag == "--allowlist"
    assert ScanConfig.resolve({"allowlist": "d.csv"}).allowlist == "d.csv"

