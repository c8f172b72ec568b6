"""A corpus of hostile and broken inputs, made by code (issue 13).

Every case ends one of two ways, never a third:

* ``error``: exit 2, exactly one ``poisonscan: error:`` line naming the file (and the row
  and column where known), and nothing written to the output directory;
* ``quarantine``: exit 0, every readable row accounted for (clean + quarantine = rows in,
  ``_row`` ids unique), the bad rows in the quarantine file with a reason, and every output
  file valid UTF-8.

Cases already covered by ``tests/test_cli.py`` (missing label column, zero-row Parquet,
corrupt/truncated Parquet, a ``.csv.gz`` that is not gzip, a ragged row after the first MiB,
differing headers/schemas in a directory) are not repeated here.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import zstandard

from poisonscan.cli import main
from poisonscan.io import sources

CONTRACT = {"scores.parquet", "suspects.csv", "quarantine.csv", "quarantine.parquet",
            "clean.csv", "clean.parquet", "summary.json", "report.html"}


def body(rows: int = 40, start: int = 0) -> str:
    """Well-formed rows of ``a,b,y`` (a numeric, b numeric, y label)."""
    return "".join(f"{i},{(i * 7) % 13},{'yes' if i % 3 else 'no'}\n"
                   for i in range(start, start + rows))


def good(rows: int = 40) -> bytes:
    return ("a,b,y\n" + body(rows)).encode()


def csv_with(line: bytes, before: int = 30, after: int = 5) -> bytes:
    """A good file with ``line`` (bytes, newline included) as data row ``before``."""
    return ("a,b,y\n" + body(before)).encode() + line + body(after, before + 1).encode()


# ------------------------------------------------------------------------- error cases
# name -> (file name, bytes or writer, extra args, fragments the one line must name)

def _parquet_dir_second_truncated(tmp: Path) -> str:
    d = tmp / "parts"
    d.mkdir()
    table = pa.table({"a": [float(i) for i in range(50)], "y": ["u", "v"] * 25})
    pq.write_table(table, d / "0.parquet")
    pq.write_table(table, d / "1.parquet")
    data = (d / "1.parquet").read_bytes()
    (d / "1.parquet").write_bytes(data[: len(data) // 2])
    return "parts"


def _parquet_renamed_column_mid_directory(tmp: Path) -> str:
    d = tmp / "parts"
    d.mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": ["u", "v"]}), d / "0.parquet")
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": ["u", "v"]}), d / "1.parquet")
    pq.write_table(pa.table({"A": [1.0, 2.0], "y": ["u", "v"]}), d / "2.parquet")
    return "parts"


def _parquet_label_of(kind: str):
    """A Parquet file whose label column ``y`` holds structs or bytes that are not UTF-8."""
    def write(tmp: Path) -> str:
        y = pa.array([{"v": i % 2} for i in range(40)]) if kind == "struct" else \
            pa.array([b"\xff" if i % 2 else b"u" for i in range(40)], pa.binary())
        pq.write_table(pa.table({"a": [float(i) for i in range(40)], "y": y}),
                       tmp / "in.parquet")
        return "in.parquet"
    return write


def _many_columns(n: int) -> bytes:
    header = ",".join(f"c{i}" for i in range(n)) + ",y\n"
    row = ",".join("1" for _ in range(n))
    return (header + "".join(f"{row},{'yes' if r % 2 else 'no'}\n" for r in range(5))).encode()


ERRORS = {
    "ragged row in the first block": (
        "in.csv", csv_with(b"1,2\n"), ["in.csv", "data row 30", "expected 3 fields, got 2"]),
    "unbalanced quote": (
        "in.csv", csv_with(b'1,"2,yes\n'), ["in.csv", "data row 30"]),
    "duplicate column names": (
        "in.csv", b"a,a,y\n" + body().encode(), ["in.csv", "duplicate column name 'a'"]),
    "header only": ("in.csv", b"a,b,y\n", ["in.csv", "no data rows"]),
    "header only, no newline": ("in.csv", b"a,b,y", ["in.csv", "no data rows"]),
    "zero bytes": ("in.csv", b"", ["in.csv", "empty"]),
    "only a newline": ("in.csv", b"\n", ["in.csv"]),
    "gigantic text cell (5 MB)": (
        "in.csv", csv_with(b"1,2," + b"x" * 5_000_000 + b"\n"),
        ["in.csv", "row 30", "column 'y'", "MAX_CELL_BYTES"]),
    "gigantic numeric cell (5 MB)": (
        "in.csv", csv_with(b"1," + b"9" * 5_000_000 + b",yes\n"),
        ["in.csv", "row 30", "column 'b'"]),
    "10,000 columns": ("in.csv", _many_columns(10_000), ["in.csv", "10,001 columns", "MAX_COLUMNS"]),
    ".csv that is gzip": ("in.csv", gzip.compress(good()), ["in.csv", "gzip", ".csv.gz"]),
    ".csv that is zstd": ("in.csv", zstandard.ZstdCompressor().compress(good()),
                          ["in.csv", "zstd"]),
    ".csv that is Parquet": ("in.csv", None, ["in.csv", "parquet"]),
    ".csv that is a zip archive": ("in.csv", b"PK\x03\x04" + bytes(range(256)), ["in.csv", "zip"]),
    "binary junk named .csv": ("in.csv", bytes(range(256)) * 4, ["in.csv"]),
    ".csv.gz that is bzip2": ("in.csv.gz", bz2.compress(good()), ["in.csv.gz"]),
    ".csv.zst that is gzip": ("in.csv.zst", gzip.compress(good()), ["in.csv.zst"]),
    "truncated .csv.gz": ("in.csv.gz", gzip.compress(good(3000))[:-40], ["in.csv.gz", "truncated"]),
    "truncated .csv.zst": ("in.csv.zst", zstandard.ZstdCompressor().compress(good(3000))[:-40],
                           ["in.csv.zst", "truncated"]),
    ".parquet that is CSV": ("in.parquet", good(), ["in.parquet", "parquet"]),
    "parquet directory, second file truncated": (
        _parquet_dir_second_truncated, None, ["1.parquet"]),
    "parquet schema renamed mid-directory": (
        _parquet_renamed_column_mid_directory, None, ["2.parquet", "'A'"]),
    "label column of structs": (_parquet_label_of("struct"), None,
                                ["in.parquet", "label column 'y' holds struct"]),
    "label column of bytes that are not UTF-8": (_parquet_label_of("binary"), None,
                                                 ["in.parquet", "label column 'y' holds binary"]),
    "label column absent (header has no such name)": (
        "in.csv", b"a,b,z\n" + body().encode(), ["in.csv", "label column 'y' not found"]),
}


def _materialise(tmp: Path, spec) -> str:
    name, data = spec[0], spec[1]
    if callable(name):
        return name(tmp)
    if data is None:  # Parquet bytes behind a .csv name
        buf = io.BytesIO()
        pq.write_table(pa.table({"a": [1.0], "y": ["u"]}), buf)
        data = buf.getvalue()
    (tmp / name).write_bytes(data)
    return name


def run(argv, capsys):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_error_case_is_one_line_exit_2_and_nothing_written(cwd, capsys, case):
    target = _materialise(cwd, ERRORS[case])
    code, stdout, err = run(["scan", target, "--label", "y", "--out", "out", "--quiet"], capsys)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("poisonscan: error: ")
    for fragment in ERRORS[case][2]:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
    assert len(lines[0]) < 400, lines[0]
    assert stdout == ""
    assert not (cwd / "out").exists()


# -------------------------------------------------------------------- quarantine cases

def _quarantined(out: Path, fmt: str = "csv") -> dict[int, str]:
    path = out / f"quarantine.{fmt}"
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types={"_row": pa.int64()}, strings_can_be_null=False)) if fmt == "csv" \
        else pq.read_table(path)
    return dict(zip(table.column("_row").to_pylist(), table.column("_reason").to_pylist()))


def scan_ok(cwd: Path, capsys, name: str, data: bytes, *extra: str) -> tuple[dict, dict]:
    (cwd / name).write_bytes(data)
    code, _, err = run(["scan", name, "--label", "y", "--out", "out", "--quiet", *extra], capsys)
    assert code == 0, err
    assert err == ""
    out = cwd / "out"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = summary["rows"]
    assert rows["clean"] + rows["quarantined"] == rows["in"]
    for f in out.iterdir():  # outputs are UTF-8
        if f.suffix in (".csv", ".json", ".html"):
            f.read_bytes().decode("utf-8")
    assert not [n for n in os.listdir(out) if n.startswith(".poisonscan-staging")]
    quarantined = _quarantined(out)
    assert len(quarantined) == rows["quarantined"]
    clean_rows = pacsv.read_csv(out / "clean.csv").num_rows
    assert clean_rows == rows["clean"]
    return summary, quarantined


def test_invalid_utf8_in_a_numeric_cell_is_quarantined_as_unparseable(cwd, capsys):
    summary, q = scan_ok(cwd, capsys, "in.csv", csv_with(b"1,\xff2,yes\n"))
    assert summary["rows"]["in"] == 36
    assert 30 in q and "b unparseable" in q[30]


def test_latin1_text_is_read_with_replacement_and_quarantined(cwd, capsys):
    rows = "".join(f"{i},{'red' if i % 2 else 'blue'},{'yes' if i % 3 else 'no'}\n"
                   for i in range(200))
    data = ("a,colour,y\n" + rows).encode() + "7,caf\u00e9,yes\n".encode("latin-1")
    summary, q = scan_ok(cwd, capsys, "in.csv", data)
    assert summary["rows"]["in"] == 201
    assert 200 in q and "colour unparseable 'caf\ufffd'" in q[200]
    quarantine = (cwd / "out" / "quarantine.csv").read_text(encoding="utf-8")
    assert "caf\ufffd" in quarantine


def test_invalid_utf8_in_the_label_keeps_every_row(cwd, capsys):
    summary, q = scan_ok(cwd, capsys, "in.csv", csv_with(b"1,2,y\xffes\n"))
    assert summary["rows"]["in"] == 36 and 30 in q


def test_nul_byte_in_a_numeric_cell_is_quarantined(cwd, capsys):
    summary, q = scan_ok(cwd, capsys, "in.csv", csv_with(b"1,2\x003,yes\n"))
    assert 30 in q and "b unparseable" in q[30]


def test_embedded_newlines_in_quoted_cells_keep_rows_whole(cwd, capsys):
    rows = "".join(f'{i},"line one\nline two {i % 3}",{"yes" if i % 3 else "no"}\n'
                   for i in range(60))
    summary, _ = scan_ok(cwd, capsys, "in.csv", ("a,note,y\n" + rows).encode())
    assert summary["rows"]["in"] == 60
    clean = pacsv.read_csv(cwd / "out" / "clean.csv")
    assert all("\n" in v for v in clean.column("note").to_pylist())


def test_utf8_bom_is_not_part_of_the_first_column_name(cwd, capsys):
    (cwd / "in.csv").write_bytes(b"\xef\xbb\xbf" + ("id,b,y\n" + "".join(
        f"r{i},{i % 7},{'yes' if i % 2 else 'no'}\n" for i in range(40))).encode())
    code, _, err = run(["scan", "in.csv", "--label", "y", "--id-column", "id", "--out", "out",
                        "--quiet"], capsys)
    assert code == 0, err
    header = (cwd / "out" / "clean.csv").read_bytes().split(b"\n")[0]
    assert header == b'"id","b","y"'
    assert "id" in pq.read_schema(cwd / "out" / "scores.parquet").names


def test_empty_column_name_is_kept(cwd, capsys):
    # pandas writes its index as an unnamed first column: readable, kept as is
    summary, _ = scan_ok(cwd, capsys, "in.csv", b",b,y\n" + body().encode())
    assert summary["rows"]["in"] == 40
    assert (cwd / "out" / "clean.csv").read_bytes().startswith(b'"","b","y"')


NUMBER_SPELLINGS = {
    "1e999": "a=inf", "-1e999": "a=-inf", "1E+999": "a=inf", "NaN": "a is NaN",
    "nan": "a is NaN", "NAN": "a is NaN", "-nan": "a is NaN", "inf": "a=inf", "-inf": "a=-inf",
    "+inf": "a=inf", "INF": "a=inf", "Infinity": "a=inf", "-Infinity": "a=-inf",
    "infinity": "a=inf", "0x10": "unparseable", "1_000": "unparseable",
    "\u0661\u0662": "unparseable", "1,5": None, "1e": "unparseable", "--1": "unparseable",
}


def test_number_spellings_are_values_or_unparseable_never_a_crash(cwd, capsys):
    rows = "".join(f"{i % 17},{'yes' if i % 3 else 'no'}\n" for i in range(300))
    odd = [s for s, why in NUMBER_SPELLINGS.items() if why]
    data = ("a,y\n" + rows + "".join(f'"{s}",yes\n' for s in odd)).encode()
    summary, q = scan_ok(cwd, capsys, "in.csv", data)
    assert summary["rows"]["in"] == 300 + len(odd)
    for k, spelling in enumerate(odd):
        row = 300 + k
        assert row in q, (spelling, "not quarantined")
        assert NUMBER_SPELLINGS[spelling] in q[row], (spelling, q[row])


def test_tiny_exponent_is_a_plain_zero(cwd, capsys):
    rows = "".join(f"{i % 5},{'yes' if i % 3 else 'no'}\n" for i in range(100))
    summary, q = scan_ok(cwd, capsys, "in.csv", ("a,y\n" + rows + "1e-999,yes\n").encode())
    assert 100 not in q


def test_a_cell_just_under_the_cap_is_read(cwd, capsys, monkeypatch):
    monkeypatch.setattr(sources, "MAX_CELL_BYTES", 2000)
    summary, _ = scan_ok(cwd, capsys, "in.csv", csv_with(b"1,2," + b"x" * 2000 + b"\n"))
    assert summary["rows"]["in"] == 36


def test_column_cap_applies_to_parquet_and_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_COLUMNS", 10)
    table = pa.table({f"c{i}": [1.0, 2.0] for i in range(11)})
    pq.write_table(table, tmp_path / "wide.parquet")
    with pytest.raises(sources.InputError, match=r"wide\.parquet: 11 columns.*limit of 10"):
        sources.open_source(str(tmp_path / "wide.parquet"))
    with pytest.raises(sources.InputError, match="11 columns"):
        sources.open_source(table)


def test_cell_cap_applies_to_parquet(tmp_path, monkeypatch):
    import poisonscan

    monkeypatch.setattr(sources, "MAX_CELL_BYTES", 100)
    table = pa.table({"a": [float(i) for i in range(50)], "t": ["x"] * 49 + ["y" * 101],
                      "y": ["u", "v"] * 25})
    pq.write_table(table, tmp_path / "big.parquet")
    with pytest.raises(poisonscan.InputError,
                       match=r"big\.parquet: row 49: column 't': a cell of 101 bytes"):
        poisonscan.scan(str(tmp_path / "big.parquet"), label="y", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_label_column_with_no_values_quarantines_every_row_with_a_reason(cwd, capsys):
    data = ("a,y\n" + "".join(f"{i},\n" for i in range(50))).encode()
    summary, q = scan_ok(cwd, capsys, "in.csv", data)
    assert summary["rows"]["quarantined"] == 50
    assert all("label 'y' missing" in reason for reason in q.values())


def test_moderately_wide_input_scans(cwd, capsys):
    n = 150
    header = ",".join(f"c{i}" for i in range(n)) + ",y\n"
    rows = "".join(",".join(str((r * 31 + c) % 17) for c in range(n)) + f",{'yes' if r % 2 else 'no'}\n"
                   for r in range(80))
    summary, _ = scan_ok(cwd, capsys, "in.csv", (header + rows).encode())
    assert summary["rows"]["in"] == 80


# ------------------------------------------------------------------------------- faults

def _big_csv(path: Path, rows: int = 400_000) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    table = pa.table({"a": rng.normal(size=rows), "b": rng.integers(0, 100, rows),
                      "y": np.where(rng.random(rows) < 0.5, "yes", "no")})
    pacsv.write_csv(table, path)
    return path


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_mid_scan_leaves_nothing_and_says_so(tmp_path, signame):
    import signal
    import subprocess
    import sys
    import time

    data = _big_csv(tmp_path / "big.csv")
    out = tmp_path / "out"

    def default_signals():
        # a process that ignores SIGINT passes that on to its children (a shell's background
        # jobs do, and so may a test runner after starting a Dask cluster): the scan would
        # rightly ignore it too, so it starts with the default disposition, as in a terminal
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)

    proc = subprocess.Popen([sys.executable, "-m", "poisonscan", "scan", str(data), "--label",
                             "y", "--out", str(out), "--chunk-rows", "20000", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and any(p.name.startswith(".poisonscan-staging") for p in out.iterdir()):
            break
        time.sleep(0.05)
    time.sleep(0.5)  # well inside pass 1
    assert proc.poll() is None, "scan finished before it could be interrupted"
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["poisonscan: interrupted; no output was written"]
    assert not out.exists(), sorted(os.listdir(out))


def test_disk_full_leaves_nothing_half_written_and_a_rerun_gives_everything(
        cwd, capsys, monkeypatch):
    import errno

    from poisonscan.io import sinks

    (cwd / "in.csv").write_bytes(good(3000))
    out = cwd / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    original = sinks.TableWriter.write
    calls = {"n": 0}

    def write(self, table):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, table)

    monkeypatch.setattr(sinks.TableWriter, "write", write)
    argv = ["scan", "in.csv", "--label", "y", "--out", "out", "--quiet", "--chunk-rows", "500"]
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert err.strip().splitlines() == [
        "poisonscan: error: out: cannot write the outputs (No space left on device); "
        "nothing was written"]
    assert sorted(os.listdir(out)) == ["keep.txt"]
    monkeypatch.setattr(sinks.TableWriter, "write", original)
    code, _, err = run(argv, capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"]["in"] == 3000
    assert summary["rows"]["clean"] + summary["rows"]["quarantined"] == 3000
    # a second run over a finished scan needs --overwrite, then gives the full result again
    code, _, err = run(argv, capsys)
    assert code == 2 and "--overwrite" in err
    code, _, err = run(argv + ["--overwrite"], capsys)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["rows"] == summary["rows"]
    assert not [n for n in os.listdir(out) if n.startswith(".poisonscan-staging")]


def test_parquet_text_with_invalid_utf8_is_quarantined_not_a_crash(tmp_path):
    import poisonscan

    colour = pa.array([b"red", b"blue"] * 100 + [b"caf\xe9"], pa.binary()).view(pa.string())
    table = pa.table({"a": [float(i % 7) for i in range(201)], "colour": colour,
                      "y": ["u", "v", "v"] * 67})
    pq.write_table(table, tmp_path / "bad.parquet")
    res = poisonscan.scan(str(tmp_path / "bad.parquet"), label="y", out=tmp_path / "out")
    rows = res.summary["rows"]
    assert rows["in"] == 201 and rows["clean"] + rows["quarantined"] == 201
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pydict()
    at = q["_row"].index(200)
    assert "colour unparseable 'caf\ufffd'" in q["_reason"][at]


def test_parquet_integers_beyond_float64_precision_are_scanned_not_a_crash(cwd, capsys):
    """int64 and uint64 values past 2**53 (ids, hashes) have no exact float64: the checks
    read them rounded instead of refusing them; vectors of such integers too."""
    n = 300
    table = pa.table({
        "a": [float(i % 17) for i in range(n)],
        "big": pa.array([2 ** 60 + i for i in range(n)], pa.int64()),
        "few": pa.array([-2 ** 63 + i % 3 for i in range(n)], pa.int64()),
        "huge": pa.array([2 ** 64 - 1 - i * 1000 for i in range(n)], pa.uint64()),
        "vec": pa.array([[2 ** 62 + i, i] for i in range(n)], pa.list_(pa.int64(), 2)),
        "y": ["yes", "no", "no"] * (n // 3)})
    pq.write_table(table, cwd / "big.parquet")
    code, _, err = run(["scan", "big.parquet", "--label", "y", "--out", "out", "--quiet"],
                       capsys)
    assert code == 0, err
    summary = json.loads((cwd / "out" / "summary.json").read_text(encoding="utf-8"))
    rows = summary["rows"]
    assert rows["in"] == n and rows["clean"] + rows["quarantined"] == n
    assert summary["columns"]["huge"]["max"] == float(2 ** 64 - 1)
    assert pq.read_table(cwd / "out" / "clean.parquet").num_rows == rows["clean"]


def test_bytes_id_column_and_bytes_in_csv_outputs_are_refused_up_front(cwd, capsys):
    """Bytes need not be UTF-8: no text for suspects.csv (an id) or for CSV outputs."""
    table = pa.table({"a": [float(i % 7) for i in range(60)],
                      "b": pa.array([b"\xff\x00"] * 60, pa.binary()),
                      "y": ["u", "v", "v"] * 20})
    pq.write_table(table, cwd / "in.parquet")
    code, _, err = run(["scan", "in.parquet", "--label", "y", "--id-column", "b", "-o", "out",
                        "-q"], capsys)
    assert code == 2 and "id column 'b' holds binary" in err and len(err.splitlines()) == 1
    code, _, err = run(["scan", "in.parquet", "--label", "y", "--format", "csv", "-o", "out",
                        "-q"], capsys)
    assert code == 2 and "column 'b' holds binary" in err and "--format parquet" in err
    assert not (cwd / "out").exists()
    code, _, err = run(["scan", "in.parquet", "--label", "y", "-o", "out", "-q"], capsys)
    assert code == 0, err  # as Parquet, the bytes are carried through
    assert pq.read_table(cwd / "out" / "clean.parquet").column("b").type == pa.binary()
