"""Security: no code execution on input or config, attacker content neutralised (issue 13).

Escaping of hostile cell values in report.html and the formula guard of quarantine.csv are
covered in ``tests/test_scan.py``; this file adds the static scan of the package source
and the places attacker text reaches that are not cells (column names, the id column in
``suspects.csv``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pytest

import poisonscan

PACKAGE = Path(poisonscan.__file__).resolve().parent

#: Calls that run code or build objects from bytes; none may appear in the package.
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "pickle.load", "pickle.loads",
                   "cPickle.load", "cPickle.loads", "dill.load", "dill.loads", "joblib.load",
                   "marshal.load", "marshal.loads", "shelve.open", "yaml.load",
                   "yaml.unsafe_load", "yaml.full_load", "pandas.read_pickle", "pd.read_pickle", "os.system", "subprocess.call",
                   "subprocess.run", "subprocess.Popen", "subprocess.check_output"}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _violations(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS:
                found.append(f"{filename}:{node.lineno}: {name}()")
            if name in ("np.load", "numpy.load") or (name or "").endswith(".load"):
                for kw in node.keywords:  # np.load(..., allow_pickle=True) anywhere
                    if kw.arg == "allow_pickle" and not (
                            isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        found.append(f"{filename}:{node.lineno}: allow_pickle")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            module = getattr(node, "module", None) or ""
            for name in names + [module]:
                if name.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve"):
                    found.append(f"{filename}:{node.lineno}: import {name}")
    return found


def test_the_package_never_evaluates_or_unpickles():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    found = [v for f in files for v in _violations(f.read_text(encoding="utf-8"),
                                                    str(f.relative_to(PACKAGE.parent)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("snippet", [
    "eval(x)", "exec(x)", "import pickle", "from pickle import loads", "pickle.loads(b)",
    "yaml.load(s)", "np.load(p, allow_pickle=True)", "numpy.load(p, allow_pickle=flag)", "pd.read_pickle(p)", "os.system(c)",
])
def test_the_scanner_catches_each_forbidden_form(snippet):
    assert _violations(snippet, "<snippet>")


def test_config_is_toml_only():
    config = (PACKAGE / "config.py").read_text(encoding="utf-8")
    assert "tomllib" in config or "tomli" in config
    assert "yaml" not in config


def _scan(df, tmp_path, **kw):
    return poisonscan.scan(df, label="y", out=tmp_path / "out", format="csv", **kw)


def test_hostile_column_names_are_escaped_in_the_report(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"<img src=x onerror=alert(1)>": rng.normal(size=300),
                       "y": ["a", "b"] * 150})
    df.iloc[7, 0] = 1e9  # makes the hostile column appear in a reason
    res = _scan(df, tmp_path)
    assert 7 in set(res.suspects["row"])
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_hostile_id_values_are_guarded_in_suspects_csv(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"id": [f"r{i}" for i in range(300)], "v": rng.normal(size=300),
                       "y": ["a", "b"] * 150})
    df.loc[9, "id"] = '=HYPERLINK("http://evil","click")'
    df.loc[9, "v"] = 1e9
    res = _scan(df, tmp_path, id_column="id")
    assert 9 in set(res.suspects["row"])
    suspects = pacsv.read_csv(tmp_path / "out" / "suspects.csv").to_pandas()
    cell = suspects.loc[suspects["row"] == 9, "id"].item()
    assert cell.startswith("'="), cell


def test_output_names_are_fixed_whatever_the_input_is_called(tmp_path):
    sneaky = tmp_path / "in"
    sneaky.mkdir()
    path = sneaky / "..%2F..%2Fetc%2Fpasswd.csv"
    path.write_text("a,y\n" + "".join(f"{i},{'p' if i % 2 else 'q'}\n" for i in range(50)))
    poisonscan.scan(str(path), label="y", out=tmp_path / "out")
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {"scores.parquet", "suspects.csv", "quarantine.csv", "clean.csv",
                       "summary.json", "report.html"}
    assert {p.name for p in tmp_path.iterdir()} == {"in", "out"}


def test_formula_column_names_are_guarded_in_review_csv_but_not_in_clean(tmp_path):
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"=cmd|' /C calc'!A0": rng.normal(size=300), "y": ["a", "b"] * 150})
    df.iloc[3, 0] = 1e9
    res = _scan(df, tmp_path)
    assert 3 in set(res.suspects["row"])
    out = tmp_path / "out"
    assert (out / "quarantine.csv").read_text().startswith('"\'=cmd')
    assert (out / "clean.csv").read_text().startswith('"=cmd')  # training data: unaltered


@pytest.mark.parametrize("key, value", [("format", '"../../escape"'),
                                        ("checks", '["../../escape"]'),
                                        ("detectors", '["../../escape"]')])
def test_config_values_cannot_name_paths_outside_the_output_directory(tmp_path, key, value,
                                                                     monkeypatch, capsys):
    from poisonscan.cli import main
    root = Path(__file__).resolve().parents[1]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "poisonscan.toml").write_text(f"{key} = {value}\n", encoding="utf-8")
    code = main(["scan", str(root / "fixtures" / "loans.csv"), "--label", "default",
                 "-o", "out", "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert key in err or "escape" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["poisonscan.toml", "work"]


def test_a_scan_writes_only_inside_its_output_directory(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    poisonscan.scan(str(root / "fixtures" / "loans.csv"), label="default", out="out")
    assert (tmp_path / "out" / "summary.json").exists()
    outside = [p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "out")]
    assert outside == []
