"""The ``poisonscan`` command line: exit codes, stderr/stdout discipline, no partial outputs.

Most tests drive :func:`poisonscan.cli.main` in-process (fast); a few run the real console
script and ``python -m poisonscan`` in a subprocess. See DESIGN.md §5 for the contract.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import poisonscan
from poisonscan.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOANS_CSV = FIXTURES / "loans.csv"
LOANS_PARQUET = FIXTURES / "loans.parquet"
LOANS = ["--label", "default", "--id-column", "application_id"]
CONTRACT_FILES = {"scores.parquet", "suspects.csv", "quarantine.csv", "quarantine.parquet",
                  "clean.csv", "clean.parquet", "summary.json", "report.html"}


def outputs(fmt: str) -> set[str]:
    """The six files of a finished scan whose clean/quarantine files are ``fmt``."""
    return {"scores.parquet", "suspects.csv", f"quarantine.{fmt}", f"clean.{fmt}",
            "summary.json", "report.html"}


def run(argv, capsys) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit code, stdout, stderr); argparse's SystemExit counts as a code."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *fragments: str) -> str:
    """stderr is exactly one ``poisonscan: error:`` line, with no traceback, naming fragments."""
    assert "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    line = lines[0]
    assert line.startswith("poisonscan: error: "), line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not named in: {line}"
    return line


def assert_nothing_written(out: Path, before: set[str] | None) -> None:
    """A failed scan leaves the output directory as it was (absent, or holding ``before``)."""
    if before is None:
        assert not out.exists(), f"failed scan left {out}: {sorted(os.listdir(out))}"
        return
    names = set(os.listdir(out))
    assert not [n for n in names if n.startswith(".poisonscan-staging-")], names
    assert not names & CONTRACT_FILES, names
    assert names == before


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    """Run in an empty directory (no config file is discovered)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def small_csv(path: Path, rows: int = 60) -> Path:
    lines = ["a,b,y"] + [f"{i},{(i * 7) % 13},{'yes' if i % 3 else 'no'}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- finished scans


def test_finished_scan_with_suspects_exits_0(cwd, capsys):
    code, out, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out"], capsys)
    assert code == 0, err
    assert set(os.listdir("out")) == outputs("csv")
    summary = read_summary(cwd / "out")
    assert summary["rows"]["quarantined"] > 0  # the fixture holds known poisons
    assert summary["policy_exceeded"] is False
    suspects = pacsv.read_csv(cwd / "out" / "suspects.csv")
    assert suspects.num_rows == summary["rows"]["quarantined"]
    assert out == ""  # nothing on stdout without --json
    assert f"{summary['rows']['in']:,} rows scanned" in err  # terminal summary on stderr
    assert "Traceback" not in err


def test_fail_above_exceeded_exits_1_and_writes_everything(cwd, capsys):
    # --max-suspects 2 pins the quarantined fraction at 2/2000 = 0.001
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out", "--max-suspects", "2",
                        "--fail-above", "0.0005"], capsys)
    assert code == 1, err
    out = cwd / "out"
    assert set(os.listdir(out)) == outputs("csv")
    summary = read_summary(out)
    assert summary["rows"]["quarantined"] == 2
    assert summary["policy_exceeded"] is True
    assert summary["fail_above"] == 0.0005
    assert pacsv.read_csv(out / "quarantine.csv").num_rows == 2
    assert pacsv.read_csv(out / "clean.csv").num_rows == 1998
    assert pq.read_table(out / "scores.parquet").num_rows == 2000
    assert "policy exceeded" in err


@pytest.mark.parametrize("rate", ["0.001", "0.5"])
def test_fail_above_not_exceeded_exits_0(cwd, capsys, rate):
    # 0.001 equals the quarantined fraction: only a fraction *above* RATE fails
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out", "--max-suspects", "2",
                        "--fail-above", rate], capsys)
    assert code == 0, err
    summary = read_summary(cwd / "out")
    assert summary["rows"]["quarantined_fraction"] == 0.001
    assert summary["policy_exceeded"] is False
    assert set(os.listdir("out")) == outputs("csv")


# --------------------------------------------------------------------------- input errors


def _missing_label(tmp):
    small_csv(tmp / "ok.csv")
    return ["ok.csv", "--label", "nope"], ["ok.csv", "label column", "'nope'"]


def _missing_id(tmp):
    small_csv(tmp / "ok.csv")
    return ["ok.csv", "--label", "y", "--id-column", "nope"], ["ok.csv", "id column", "'nope'"]


def _zero_byte_csv(tmp):
    (tmp / "empty.csv").write_bytes(b"")
    return ["empty.csv"], ["empty.csv", "empty"]


def _header_only_csv(tmp):
    (tmp / "header.csv").write_text("a,b,y\n", encoding="utf-8")
    return ["header.csv", "--label", "y"], ["header.csv", "no data rows"]


def _zero_row_parquet(tmp):
    pq.write_table(pa.table({"a": pa.array([], pa.float64()), "y": pa.array([], pa.string())}),
                   tmp / "empty.parquet")
    return ["empty.parquet", "--label", "y"], ["empty.parquet", "no data rows"]


def _no_such_file(tmp):
    return ["nope.csv"], ["nope.csv", "no such file"]


def _glob_matches_nothing(tmp):
    small_csv(tmp / "ok.csv")
    return ["data-*.csv"], ["data-*.csv", "no file matches"]


def _dir_without_data(tmp):
    (tmp / "data").mkdir()
    (tmp / "data" / "README.md").write_text("not data\n")
    (tmp / "data" / "notes.txt").write_text("a,b\n1,2\n")
    return ["data"], ["data", "no csv or parquet"]


def _txt_file(tmp):
    (tmp / "notes.txt").write_text("a,b,y\n1,2,x\n")
    return ["notes.txt"], ["notes.txt", "not a csv or parquet"]


def _corrupt_parquet(tmp):
    (tmp / "bad.parquet").write_bytes(b"this is not parquet at all, just some bytes\n")
    return ["bad.parquet"], ["bad.parquet", "parquet"]


def _truncated_parquet(tmp):
    pq.write_table(pa.table({"a": list(range(100)), "y": ["u", "v"] * 50}), tmp / "full.parquet")
    data = (tmp / "full.parquet").read_bytes()
    (tmp / "cut.parquet").write_bytes(data[: len(data) // 2])
    return ["cut.parquet"], ["cut.parquet", "parquet"]


def _csv_gz_not_gzip(tmp):
    small_csv(tmp / "plain.csv")
    shutil.copy(tmp / "plain.csv", tmp / "bad.csv.gz")
    (tmp / "plain.csv").unlink()
    return ["bad.csv.gz"], ["bad.csv.gz", "cannot read"]


def _ragged_row(tmp):
    (tmp / "ragged.csv").write_text("a,b,y\n1,2,x\n3,4\n5,6,z\n", encoding="utf-8")
    return ["ragged.csv", "--label", "y"], ["ragged.csv", "expected 3", "got 2"]


def _ragged_row_far_down(tmp):
    # beyond the first look (1 MiB) and beyond the first chunk: found mid-scan, once the
    # staged output directory exists
    rows = [f"{i},{i % 97}.5,{'yes' if i % 3 else 'no'}" for i in range(120_000)]
    head = "a,b,y\n" + "\n".join(rows[:110_000]) + "\n"
    assert len(head.encode()) > 1 << 20
    text = head + "1,2,3,4\n" + "\n".join(rows[110_000:]) + "\n"
    (tmp / "ragged.csv").write_text(text, encoding="utf-8")
    return (["ragged.csv", "--label", "y", "--chunk-rows", "10000", "--sample-rows", "200"],
            ["ragged.csv", "expected 3", "got 4"])


def _csv_headers_differ(tmp):
    small_csv(tmp / "a.csv")
    (tmp / "b.csv").write_text("a,c,y\n1,2,x\n", encoding="utf-8")
    return ["a.csv", "b.csv", "--label", "y"], ["b.csv", "a.csv", "header", "'c'"]


def _parquet_columns_differ(tmp):
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": ["u", "v"]}), tmp / "p1.parquet")
    pq.write_table(pa.table({"b": [1.0, 2.0], "y": ["u", "v"]}), tmp / "p2.parquet")
    return ["p1.parquet", "p2.parquet", "--label", "y"], ["p2.parquet", "p1.parquet", "'b'"]


def _parquet_types_differ(tmp):
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": ["u", "v"]}), tmp / "p1.parquet")
    pq.write_table(pa.table({"a": ["1", "2"], "y": ["u", "v"]}), tmp / "p2.parquet")
    return ["p1.parquet", "p2.parquet", "--label", "y"], ["p2.parquet", "column 'a'"]


def _parquet_directory_schemas_differ(tmp):
    (tmp / "parts").mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": ["u", "v"]}), tmp / "parts" / "0.parquet")
    pq.write_table(pa.table({"a": [1, 2], "y": ["u", "v"]}), tmp / "parts" / "1.parquet")
    return ["parts", "--label", "y"], ["1.parquet", "column 'a'"]


def _mixed_formats(tmp):
    small_csv(tmp / "ok.csv")
    pq.write_table(pa.table({"a": [1.0], "b": [2.0], "y": ["u"]}), tmp / "ok.parquet")
    return ["ok.csv", "ok.parquet", "--label", "y"], ["csv", "parquet"]


def _max_suspects_and_contamination(tmp):
    small_csv(tmp / "ok.csv")
    return (["ok.csv", "--label", "y", "--max-suspects", "3", "--contamination", "0.1"],
            ["max_suspects", "contamination"])


def _contamination_out_of_range(tmp):
    small_csv(tmp / "ok.csv")
    return ["ok.csv", "--label", "y", "--contamination", "0.9"], ["contamination", "0.9"]


def _sample_rows_too_small(tmp):
    small_csv(tmp / "ok.csv")
    return ["ok.csv", "--label", "y", "--sample-rows", "3"], ["sample_rows"]


def _unknown_check_family(tmp):
    small_csv(tmp / "ok.csv")
    return ["ok.csv", "--label", "y", "--checks", "bounds,nosuch"], ["'nosuch'"]


def _family_weight_of_an_unknown_family(tmp):
    small_csv(tmp / "ok.csv")
    return (["ok.csv", "--label", "y", "--family-weights", "labels=2,label=0.5"],
            ["family_weights", "'label'"])


def _family_weight_not_positive(tmp):
    small_csv(tmp / "ok.csv")
    return (["ok.csv", "--label", "y", "--family-weights", "outliers=0"],
            ["family_weights", "outliers", "> 0"])


def _family_weight_without_a_weight(tmp):
    small_csv(tmp / "ok.csv")
    return (["ok.csv", "--label", "y", "--family-weights", "labels"],
            ["family_weights", "NAME=WEIGHT"])


def _column_named_like_a_quarantine_column(tmp):
    # a quarantine file scanned again: its _row would be there twice
    lines = ["a,b,y,_row"] + [f"{i},{(i * 7) % 13},{'yes' if i % 3 else 'no'},{i}"
                              for i in range(60)]
    (tmp / "quarantine.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["quarantine.csv", "--label", "y"], ["quarantine.csv", "'_row'", "rename"]


def _id_column_named_score(tmp):
    lines = ["score,a,y"] + [f"s{i},{i},{'yes' if i % 3 else 'no'}" for i in range(60)]
    (tmp / "ids.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["ids.csv", "--label", "y", "--id-column", "score"], ["id_column", "'score'",
                                                                 "suspects.csv"]


def _only_label_checks_without_a_label(tmp):
    small_csv(tmp / "ok.csv")
    return ["ok.csv", "--checks", "labels,backdoor"], ["checks", "no label column given"]


def _seed_beyond_32_bits(tmp):
    small_csv(tmp / "ok.csv")
    return ["ok.csv", "--label", "y", "--seed", str(2 ** 32)], ["seed", "4294967295"]


ERROR_CASES = {
    "missing label column": _missing_label,
    "missing id column": _missing_id,
    "zero-byte csv": _zero_byte_csv,
    "header-only csv": _header_only_csv,
    "zero-row parquet": _zero_row_parquet,
    "file does not exist": _no_such_file,
    "glob matches nothing": _glob_matches_nothing,
    "directory without data files": _dir_without_data,
    "txt file": _txt_file,
    "corrupt parquet": _corrupt_parquet,
    "truncated parquet": _truncated_parquet,
    "csv.gz that is not gzip": _csv_gz_not_gzip,
    "csv row with wrong field count": _ragged_row,
    "csv row with wrong field count after the first MiB": _ragged_row_far_down,
    "two csv files with different headers": _csv_headers_differ,
    "two parquet files with different columns": _parquet_columns_differ,
    "two parquet files with different column types": _parquet_types_differ,
    "parquet directory with different schemas": _parquet_directory_schemas_differ,
    "csv and parquet mixed": _mixed_formats,
    "--max-suspects with --contamination": _max_suspects_and_contamination,
    "--contamination out of range": _contamination_out_of_range,
    "--sample-rows too small": _sample_rows_too_small,
    "unknown check family": _unknown_check_family,
    "family weight of an unknown family": _family_weight_of_an_unknown_family,
    "family weight not positive": _family_weight_not_positive,
    "family weight without a weight": _family_weight_without_a_weight,
    "column named like a quarantine column": _column_named_like_a_quarantine_column,
    "id column named like a results column": _id_column_named_score,
    "only label checks, no label": _only_label_checks_without_a_label,
    "seed beyond 32 bits": _seed_beyond_32_bits,
}


@pytest.mark.parametrize("out_exists", [False, True], ids=["new-out", "existing-out"])
@pytest.mark.parametrize("case", list(ERROR_CASES), ids=list(ERROR_CASES))
def test_input_error_exits_2_with_one_line_and_writes_nothing(cwd, capsys, case, out_exists):
    args, fragments = ERROR_CASES[case](cwd)
    out = cwd / "out"
    before = None
    if out_exists:
        out.mkdir()
        (out / "keep-me.txt").write_text("a file of the user's\n")
        before = {"keep-me.txt"}
    code, stdout, err = run(["scan", *args, "--out", out], capsys)
    assert code == 2, err
    assert_one_error_line(err, *fragments)
    assert stdout == ""
    assert_nothing_written(out, before)
    if out_exists:
        assert (out / "keep-me.txt").read_text() == "a file of the user's\n"


@pytest.mark.parametrize("name", ["row", "rank", "reason", "checks", "suspect", "labels"])
def test_an_id_column_named_like_any_results_column_is_refused(cwd, capsys, name):
    lines = [f"{name},a,y"] + [f"s{i},{i},{'yes' if i % 3 else 'no'}" for i in range(60)]
    (cwd / "ids.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = run(["scan", "ids.csv", "--label", "y", "--id-column", name, "-o", "out"],
                       capsys)
    assert code == 2
    assert_one_error_line(err, "id_column", repr(name))
    assert_nothing_written(cwd / "out", None)


@pytest.mark.parametrize("data, out", [("data", "data/scan"), ("data", "data"),
                                       ("file-url", "data/scan"), ("data", "file-url/scan")])
def test_an_output_directory_inside_an_input_directory_is_refused(cwd, capsys, data, out):
    # the next scan of data/ would read the outputs as data; file:// URLs are local paths
    (cwd / "data").mkdir()
    small_csv(cwd / "data" / "ok.csv")
    url = (cwd / "data").as_uri()
    data, out = data.replace("file-url", url), out.replace("file-url", url)
    code, _, err = run(["scan", data, "--label", "y", "-o", out], capsys)
    assert code == 2
    assert_one_error_line(err, "out", "inside the input directory")
    assert sorted(os.listdir(cwd / "data")) == ["ok.csv"]
    code, _, err = run(["scan", "data/ok.csv", "--label", "y", "-o", "data/scan", "-q"],
                       capsys)  # a file of it is no directory scan
    assert code == 0, err


def test_malformed_row_far_down_names_its_row(cwd, capsys):
    args, _ = _ragged_row_far_down(cwd)
    code, _, err = run(["scan", *args, "-o", "out"], capsys)
    assert code == 2
    line = assert_one_error_line(err, "ragged.csv")
    assert "110000" in line.replace(",", "") or "110002" in line.replace(",", ""), line


def test_valid_csv_gz_is_scanned(cwd, capsys):
    """Counterpart of the not-gzip case: a real .csv.gz scans and writes uncompressed CSV."""
    small_csv(cwd / "plain.csv")
    with gzip.open(cwd / "data.csv.gz", "wb") as fh:
        fh.write((cwd / "plain.csv").read_bytes())
    code, _, err = run(["scan", "data.csv.gz", "--label", "y", "-o", "out", "-q"], capsys)
    assert code == 0, err
    assert set(os.listdir("out")) == outputs("csv")
    assert pacsv.read_csv(cwd / "out" / "clean.csv").num_rows \
        + pacsv.read_csv(cwd / "out" / "quarantine.csv").num_rows == 60


def test_bad_flag_value_is_a_usage_error_without_traceback(cwd, capsys):
    small_csv(cwd / "ok.csv")
    code, _, err = run(["scan", "ok.csv", "--chunk-rows", "many", "-o", "out"], capsys)
    assert code == 2
    assert "Traceback" not in err
    assert "--chunk-rows" in err.strip().splitlines()[-1]
    assert not (cwd / "out").exists()


def test_bad_format_choice_is_a_usage_error(cwd, capsys):
    small_csv(cwd / "ok.csv")
    code, _, err = run(["scan", "ok.csv", "--format", "xlsx", "-o", "out"], capsys)
    assert code == 2
    assert "--format" in err.strip().splitlines()[-1]
    assert not (cwd / "out").exists()


def test_no_command_prints_help_and_exits_2(cwd, capsys):
    code, out, err = run([], capsys)
    assert code == 2
    assert "scan" in err and "usage" in err.lower()
    assert out == ""


# --------------------------------------------------------------------------- output directory


def test_output_directory_holding_a_scan_needs_overwrite(cwd, capsys):
    out = cwd / "out"
    code, _, err = run(["scan", LOANS_PARQUET, *LOANS, "-o", out, "-q"], capsys)
    assert code == 0, err
    first = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert set(first) == outputs("parquet")

    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", out, "-q"], capsys)
    assert code == 2
    assert_one_error_line(err, str(out), "--overwrite")
    # the earlier scan is untouched, and no staging directory is left behind
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == first

    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", out, "-q", "--overwrite"], capsys)
    assert code == 0, err
    assert err == ""
    # the stale parquet files of the first scan are gone, not mixed with the new ones
    assert set(os.listdir(out)) == outputs("csv")
    summary = read_summary(out)
    assert summary["input_format"] == "csv" and summary["output_format"] == "csv"
    assert summary["inputs"] == [str(LOANS_CSV)]


@pytest.mark.parametrize("leftover", ["summary.json", "clean.parquet", "report.html"])
def test_any_contract_file_counts_as_a_scan(cwd, capsys, leftover):
    out = cwd / "out"
    out.mkdir()
    (out / leftover).write_text("from an earlier scan\n")
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", out], capsys)
    assert code == 2
    assert_one_error_line(err, "--overwrite", leftover)
    assert os.listdir(out) == [leftover]
    assert (out / leftover).read_text() == "from an earlier scan\n"


def test_output_directory_with_unrelated_files_is_used_and_they_are_kept(cwd, capsys):
    out = cwd / "out"
    out.mkdir()
    (out / "notes.md").write_text("mine\n")
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", out, "-q"], capsys)
    assert code == 0, err
    assert set(os.listdir(out)) == outputs("csv") | {"notes.md"}
    assert (out / "notes.md").read_text() == "mine\n"


def test_without_out_the_outputs_stay_in_the_default_directory(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, *LOANS], capsys)
    assert code == 0, err
    assert set(os.listdir(cwd / "poisonscan-out")) == outputs("csv")
    assert "-> poisonscan-out" in err  # the directory the summary names is the one kept


def test_out_from_the_config_file_is_used_by_the_command_and_the_api(cwd, capsys):
    (cwd / "scan.toml").write_text('out = "from-config"\n', encoding="utf-8")
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "--config", "scan.toml", "-q"], capsys)
    assert code == 0, err
    assert set(os.listdir(cwd / "from-config")) == outputs("csv")
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "--config", "scan.toml", "-q", "-o", "cli"],
                       capsys)  # the command line wins
    assert code == 0 and set(os.listdir(cwd / "cli")) == outputs("csv"), err
    result = poisonscan.scan(LOANS_CSV, label="default", config="scan.toml", overwrite=True,
                             quiet=True)
    assert result.out.resolve() == (cwd / "from-config").resolve()
    result = poisonscan.scan(LOANS_CSV, label="default", quiet=True)  # neither: temporary
    assert result.out.resolve().parent != cwd.resolve() and result.out.exists()


def test_output_path_that_is_a_file_is_refused(cwd, capsys):
    (cwd / "out").write_text("I am a file\n")
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out"], capsys)
    assert code == 2
    assert_one_error_line(err, "out", "not a directory")
    assert (cwd / "out").read_text() == "I am a file\n"


# --------------------------------------------------------------------------- quiet and json


def test_quiet_silences_progress_and_summary(cwd, capsys):
    code, out, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out", "--quiet"], capsys)
    assert code == 0
    assert err == ""
    assert out == ""
    assert set(os.listdir("out")) == outputs("csv")


def test_without_quiet_progress_and_summary_go_to_stderr(cwd, capsys):
    code, out, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out"], capsys)
    assert code == 0
    assert out == ""
    summary = read_summary(cwd / "out")
    lines = err.strip().splitlines()
    assert len(lines) >= 2  # at least one progress line plus the summary
    assert any("2,000" in line and "rows/s" in line for line in lines)  # progress
    q = summary["rows"]["quarantined"]
    assert any(f"{q:,} quarantined" in line for line in lines)  # terminal summary


def test_quiet_still_prints_errors(cwd, capsys):
    code, out, err = run(["scan", "missing.csv", "-o", "out", "-q"], capsys)
    assert code == 2
    assert_one_error_line(err, "missing.csv")
    assert out == ""


@pytest.mark.parametrize("quiet", [False, True], ids=["loud", "quiet"])
def test_json_prints_the_summary_on_stdout(cwd, capsys, quiet):
    argv = ["scan", LOANS_CSV, *LOANS, "-o", "out", "--json"] + (["--quiet"] if quiet else [])
    code, out, err = run(argv, capsys)
    assert code == 0, err
    printed = json.loads(out)  # stdout holds the JSON document and nothing else
    assert printed == read_summary(cwd / "out")
    assert printed["rows"]["in"] == 2000
    if quiet:
        assert err == ""
    else:
        assert "rows scanned" in err  # the human summary stays on stderr


def test_json_with_fail_above_exceeded_still_prints_and_exits_1(cwd, capsys):
    code, out, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out", "--json", "-q",
                          "--max-suspects", "2", "--fail-above", "0"], capsys)
    assert code == 1
    assert json.loads(out)["policy_exceeded"] is True
    assert err == ""


# --------------------------------------------------------------------------- label omitted


def test_label_omitted_scans_and_says_label_checks_were_skipped(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, "--id-column", "application_id", "-o", "out"], capsys)
    assert code == 0, err
    summary = read_summary(cwd / "out")
    assert summary["rows"]["in"] == 2000
    assert summary["rows"]["clean"] + summary["rows"]["quarantined"] == 2000
    assert summary["label"] is None
    skipped = summary["checks_skipped"]
    assert any("label" in f"{name} {why}".lower() for name, why in skipped.items()), skipped
    assert "skipped" in err  # the terminal summary says so too
    # the label column is then an ordinary feature: it stays in the clean file
    assert "default" in pacsv.read_csv(cwd / "out" / "clean.csv").column_names


def test_label_given_has_no_label_skip(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out", "-q"], capsys)
    assert code == 0, err
    summary = read_summary(cwd / "out")
    assert summary["label"]["column"] == "default"
    assert not any("label" in f"{n} {w}".lower() for n, w in summary["checks_skipped"].items())


# --------------------------------------------------------------------------- other exits


def test_internal_error_exits_3_with_one_line(cwd, capsys, monkeypatch):
    import poisonscan.api

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.delenv("POISONSCAN_DEBUG", raising=False)
    monkeypatch.setattr(poisonscan.api, "scan", broken)
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out"], capsys)
    assert code == 3
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error" in lines[0] and "boom" in lines[0]
    assert "POISONSCAN_DEBUG" in lines[0]

    monkeypatch.setenv("POISONSCAN_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["scan", str(LOANS_CSV), "-o", "out"])


def test_keyboard_interrupt_exits_130(cwd, capsys, monkeypatch):
    import poisonscan.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(poisonscan.api, "scan", interrupted)
    code, _, err = run(["scan", LOANS_CSV, "-o", "out"], capsys)
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"poisonscan {poisonscan.__version__}"


# --------------------------------------------------------------------------- real processes


def _console_script() -> str:
    script = Path(sys.executable).with_name("poisonscan")
    found = str(script) if script.exists() else shutil.which("poisonscan")
    assert found, "the poisonscan console script is not installed"
    return found


def _run_process(argv, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("POISONSCAN_DEBUG", None)
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_console_script_help_and_version(tmp_path):
    script = _console_script()
    top = _run_process([script, "--help"], tmp_path)
    assert top.returncode == 0, top.stderr
    assert "scan" in top.stdout
    sub = _run_process([script, "scan", "--help"], tmp_path)
    assert sub.returncode == 0, sub.stderr
    for flag in ("--label", "--out", "--fail-above", "--max-suspects", "--contamination",
                 "--overwrite", "--quiet", "--json", "--config"):
        assert flag in sub.stdout
    version = _run_process([script, "--version"], tmp_path)
    assert version.returncode == 0
    assert version.stdout.strip() == f"poisonscan {poisonscan.__version__}"


def test_console_script_input_error(tmp_path):
    proc = _run_process([_console_script(), "scan", "missing.csv", "--label", "y",
                         "--out", "out"], tmp_path)
    assert proc.returncode == 2
    assert_one_error_line(proc.stderr, "missing.csv", "no such file")
    assert proc.stdout == ""
    assert not (tmp_path / "out").exists()


def test_python_m_policy_exceeded_with_json(tmp_path):
    proc = _run_process([sys.executable, "-m", "poisonscan", "scan", LOANS_PARQUET, *LOANS,
                         "--out", "out", "--max-suspects", "2", "--fail-above", "0.0005",
                         "--json", "--quiet"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    out = tmp_path / "out"
    assert set(os.listdir(out)) == outputs("parquet")
    assert json.loads(proc.stdout) == read_summary(out)
    assert pq.read_table(out / "quarantine.parquet").num_rows == 2


def test_help_does_not_import_heavy_libraries(tmp_path):
    code = (
        "import sys\n"
        "import poisonscan.cli\n"
        "for argv in (['--help'], ['scan', '--help']):\n"
        "    try:\n"
        "        poisonscan.cli.main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        "heavy = ('pandas', 'pyarrow', 'sklearn', 'pyod', 'scipy')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    proc = _run_process([sys.executable, "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "", f"imported: {proc.stdout.splitlines()[-1]}"
