"""Issue 12, a good citizen of data pipelines: ``config --show``, the exit policy
(``--fail-on``), the summary's JSON Schema, logging, the Python API polish, the
scikit-learn step and shell completion. Exit codes 0/2/3 and ``--fail-above`` are in
test_cli.py; config precedence of scans in test_config.py."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import poisonscan
from poisonscan.cli import main
from poisonscan.config import ScanConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOANS_CSV = FIXTURES / "loans.csv"
LOANS = ["--label", "default", "--id-column", "application_id"]
FAST = ["--checks", "bounds"]  # the cheap family: enough for policy and CLI tests


def run(argv, capsys) -> tuple[int, str, str]:
    """``main(argv)`` -> (exit code, stdout, stderr); argparse's SystemExit counts as a code."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


CONFIG = """\
label = "default"
chunk_rows = 500
seed = 4

[bounds]
margin = 2.0

[bounds.age]
min = 0
"""


# --------------------------------------------------------------------------- config --show


def test_config_show_names_the_source_of_every_value(cwd, capsys):
    (cwd / "ps.toml").write_text(CONFIG, encoding="utf-8")
    code, out, err = run(["config", "--show", "--config", "ps.toml", "--seed", "9",
                          "--detectors", "iforest"], capsys)
    assert code == 0, err
    lines = {line.split("=")[0].strip(): line for line in out.splitlines() if "=" in line}
    assert lines["label"].endswith("# config ps.toml:1")
    assert lines["chunk_rows"].startswith("chunk_rows = 500") and "ps.toml:2" in lines["chunk_rows"]
    assert lines["seed"].startswith("seed = 9") and lines["seed"].endswith("# argument")
    assert lines["sample_rows"].endswith("# default")
    assert "# id_column = (unset)" in out  # TOML has no null: unset values are comments
    assert "[bounds]" in out and "[bounds.age]" in out and "[outliers]" in out
    assert "margin = 2.0" in out and "ps.toml:6" in out
    assert "min = 0" in out and "ps.toml:9" in out
    assert 'detectors = ["iforest"]' in out


def test_config_show_json_and_discovered_pyproject(cwd, capsys):
    (cwd / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n[tool.poisonscan]\nmax_suspects = 7\n"
        "[tool.poisonscan.bounds.age]\nmax = 120\n", encoding="utf-8")
    code, out, err = run(["config", "--show", "--json", "--label", "y"], capsys)
    assert code == 0, err
    doc = json.loads(out.replace(str(cwd) + os.sep, ""))
    assert doc["config_file"] == "pyproject.toml"
    assert doc["options"]["max_suspects"] == {"value": 7, "source": "config pyproject.toml:5"}
    assert doc["options"]["label"] == {"value": "y", "source": "argument"}
    assert doc["options"]["out"]["source"] == "default"
    assert doc["families"]["bounds"]["age.max"] == {"value": 120,
                                                   "source": "config pyproject.toml:7"}
    assert doc["families"]["bounds"]["margin"]["source"] == "default"


def test_config_show_output_parses_as_toml_with_the_same_values(cwd, capsys):
    import tomllib  # noqa: PLC0415 - Python >= 3.11 only
    (cwd / "poisonscan.toml").write_text(CONFIG, encoding="utf-8")
    code, out, _ = run(["config", "--show"], capsys)
    assert code == 0
    shown = tomllib.loads(out)
    cfg = ScanConfig.resolve(config_file="poisonscan.toml")
    assert shown["label"] == cfg.label and shown["chunk_rows"] == 500
    assert shown["bounds"]["age"] == {"min": 0} and shown["bounds"]["margin"] == 2.0


@pytest.mark.parametrize("text, fragments", [
    ("chunk_rowz = 5\n", ["ps.toml:1", "chunk_rowz"]),
    ("label = 'y'\nseed = -1\n", ["ps.toml:2", "seed"]),
])
def test_config_show_bad_file_exits_2_naming_key_and_line(cwd, capsys, text, fragments):
    (cwd / "ps.toml").write_text(text, encoding="utf-8")
    code, out, err = run(["config", "--show", "--config", "ps.toml"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("poisonscan: error: ") and len(err.strip().splitlines()) == 1
    for fragment in fragments:
        assert fragment in err


def test_config_requires_show(cwd, capsys):
    code, _, err = run(["config"], capsys)
    assert code == 2 and "--show" in err


# --------------------------------------------------------------------------- exit policy


def test_fail_on_a_family_that_quarantined_exits_1_with_all_outputs(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "out", "--fail-on", "bounds"],
                       capsys)
    assert code == 1, err
    assert {"scores.parquet", "suspects.csv", "quarantine.csv", "clean.csv", "summary.json",
            "report.html"} <= set(os.listdir("out"))
    summary = read_summary(cwd / "out")
    assert summary["policy_exceeded"] is True
    assert summary["policy"]["tripped"] == ["fail_on"]
    assert summary["policy"]["fail_on"] == ["bounds"]
    assert summary["policy"]["fail_on_rows"]["bounds"] == summary["rows"]["quarantined"] > 0
    assert "--fail-on bounds" in err


def test_fail_on_a_family_that_found_nothing_exits_0(cwd, capsys):
    # duplicates is not run: nothing quarantined by it
    code, _, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "out",
                        "--fail-on", "duplicates"], capsys)
    assert code == 0, err
    summary = read_summary(cwd / "out")
    assert summary["policy_exceeded"] is False and summary["policy"]["tripped"] == []
    assert summary["policy"]["fail_on_rows"] == {"duplicates": 0}


def test_fail_on_and_fail_above_both_recorded(cwd, capsys):
    code, out, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "out", "--fail-on",
                          "bounds,duplicates", "--fail-above", "0.001", "--json", "-q"], capsys)
    assert code == 1, err
    assert err == ""  # quiet: no progress, no summary, no log lines
    summary = json.loads(out)
    assert summary["policy"]["tripped"] == ["fail_above", "fail_on"]
    assert summary == read_summary(cwd / "out")


def test_fail_on_from_the_config_file(cwd, capsys):
    (cwd / "poisonscan.toml").write_text('fail_on = ["bounds"]\n', encoding="utf-8")
    code, _, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "out"], capsys)
    assert code == 1, err
    assert read_summary(cwd / "out")["config"]["fail_on"] == ["bounds"]


def test_fail_on_unknown_family_exits_2_and_writes_nothing(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "-o", "out", "--fail-on", "bonds"], capsys)
    assert code == 2
    assert "bonds" in err and len(err.strip().splitlines()) == 1
    assert not (cwd / "out").exists()


def test_api_policy_tripped():
    result = poisonscan.scan(LOANS_CSV, label="default", checks=["bounds"], fail_on="bounds")
    assert result.policy_exceeded and result.policy_tripped == ["fail_on"]
