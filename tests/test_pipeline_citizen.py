"""Issue 12, a good citizen of data pipelines: ``config --show``, the exit policy
(``--fail-on``), the summary's JSON Schema, logging, the Python API polish, the
scikit-learn step and shell completion. Exit codes 0/2/3 and ``--fail-above`` are in
test_cli.py; config precedence of scans in test_config.py."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
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
    # a family's table as a scan would take it: the same error, with its line
    ("label = 'y'\n[bounds]\nmargin = 2.0\nnosuch = 1\n", ["ps.toml:4", "bounds.nosuch"]),
    ("[labels]\nfoldz = 3\n", ["ps.toml:2", "labels.foldz"]),
    ("[nosuchfamily]\nx = 1\n", ["'nosuchfamily'"]),
    ("seed = 1\nfamily_weights = {label = 2}\n", ["ps.toml:2", "family_weights", "'label'"]),
    ("fail_on = ['bonds']\n", ["ps.toml:1", "fail_on", "'bonds'"]),
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
    # ... and says so: a pipeline step guarding on it would otherwise never trip
    warned = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warned) == 1 and "fail_on duplicates: not run in this scan" in warned[0]
    code, _, err = run(["scan", LOANS_CSV, *LOANS, "--checks", "bounds,duplicates", "-o", "out2",
                        "--fail-on", "duplicates"], capsys)
    assert code == 0 and "WARNING" not in err  # a family that ran and found nothing
    assert read_summary(cwd / "out2")["policy"]["fail_on_rows"] == {"duplicates": 0}


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


# --------------------------------------------------------------------------- summary schema


@pytest.fixture(scope="module")
def schema_validator():
    jsonschema = pytest.importorskip("jsonschema")
    from poisonscan.report.summary import load_schema
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def loans_profile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "profile.json"
    poisonscan.profile(LOANS_CSV, label="default", out=path)
    return path


@pytest.mark.parametrize("options", [
    {"label": "default", "id_column": "application_id"},            # every family
    {},                                                              # no label, no id
    {"label": "default", "reference": "REF", "checks": ["bounds"], "fail_on": ["bounds"]},
    {"id_column": "application_id", "contamination": 0.01,
     "fail_above": 0.001},
], ids=["label+id", "bare", "reference+fail_on", "id+contamination"])
def test_real_summaries_follow_the_schema(schema_validator, loans_profile, tmp_path, options):
    options = {k: (str(loans_profile) if v == "REF" else v) for k, v in options.items()}
    result = poisonscan.scan(LOANS_CSV, out=tmp_path / "out", **options)
    on_disk = read_summary(tmp_path / "out")
    errors = sorted(schema_validator.iter_errors(on_disk), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert on_disk == json.loads(json.dumps(result.summary))
    assert on_disk["policy_exceeded"] is bool(on_disk["policy"]["tripped"])
    if "reference" in options:
        assert on_disk["drift"] is not None


def test_schema_version_matches_the_builder_and_rejects_broken_summaries(schema_validator):
    from poisonscan.report.summary import SCHEMA_PATH, SUMMARY_SCHEMA_VERSION, load_schema
    schema = load_schema()
    assert schema["properties"]["summary_schema_version"] == {"const": SUMMARY_SCHEMA_VERSION}
    assert SCHEMA_PATH.name == "summary.schema.json"
    good = poisonscan.scan(LOANS_CSV, label="default", checks=["bounds"]).summary
    good = json.loads(json.dumps(good))
    assert schema_validator.is_valid(good)
    for broken in (
        {**good, "rows": {**good["rows"], "clean": -1}},
        {**good, "summary_schema_version": SUMMARY_SCHEMA_VERSION + 1},
        {k: v for k, v in good.items() if k != "policy"},
        {**good, "policy": {**good["policy"], "tripped": ["fail_sometimes"]}},
        {**good, "checks": {"bounds": {"rows_flagged": 1}}},
    ):
        assert not schema_validator.is_valid(broken)


# --------------------------------------------------------------------------- logging


def test_library_logs_without_adding_handlers(caplog):
    logger = logging.getLogger("poisonscan")
    assert logger.handlers == []
    with caplog.at_level(logging.DEBUG, logger="poisonscan"):
        poisonscan.scan(LOANS_CSV, label="default", checks=["bounds"])
    assert logger.handlers == []
    messages = [r.getMessage() for r in caplog.records if r.name == "poisonscan"]
    assert any(m.startswith("scanned 2000 rows") for m in messages)
    assert any(m.startswith("timing pass2") for m in messages)
    assert any("learned bounds" in m for m in messages)


def test_non_tty_verbose_logs_are_timestamped_lines_on_stderr(cwd, capsys):
    code, out, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "out", "--verbose"], capsys)
    assert code == 0, err
    assert out == ""
    assert "\r" not in err and "\033" not in err  # no terminal control codes off a TTY
    logs = [line for line in err.splitlines() if " poisonscan " in line]
    pattern = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ poisonscan (DEBUG|INFO|WARNING) \S"
    import re
    assert logs and all(re.match(pattern, line) for line in logs), logs
    assert any("timing pass1" in line for line in logs)
    assert any("timing check:bounds" in line for line in logs)  # per-check timings
    assert "check:bounds" in read_summary(cwd / "out")["timings_seconds"]
    assert any("check bounds:" in line and "learned bounds" in line for line in logs)
    assert any(line.startswith("pass 2/3: score: 2,000/2,000 rows") for line in err.splitlines())
    assert "timings: pass1" in err  # terminal summary gets the timings line
    assert logging.getLogger("poisonscan").handlers == []  # the CLI removed its handler


def test_default_run_shows_no_debug_and_quiet_shows_nothing(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "a"], capsys)
    assert code == 0 and " DEBUG " not in err and " INFO " not in err
    assert "rows scanned" in err
    code, _, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "b", "-q", "--fail-on",
                        "bounds"], capsys)
    assert code == 1 and err == ""  # the policy warning is silenced too; exit code says it


def test_policy_warning_is_logged_without_verbose(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, *LOANS, *FAST, "-o", "out", "--fail-on",
                        "bounds"], capsys)
    assert code == 1
    assert "poisonscan WARNING exit policy tripped: fail_on" in err


# --------------------------------------------------------------------------- Python API


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
def test_in_memory_input_gives_clean_dataframe_and_html_without_out(kind):
    frame = pd.read_csv(LOANS_CSV)
    data = frame if kind == "pandas" else pa.Table.from_pandas(frame, preserve_index=False)
    result = poisonscan.scan(data, label="default", checks=["bounds"])
    clean = result.clean()
    assert isinstance(clean, pd.DataFrame)
    assert list(clean.columns) == list(frame.columns)
    assert len(clean) + len(result.quarantine()) == len(frame)
    assert len(clean) == result.summary["rows"]["clean"]
    kept = frame.drop(index=result.suspects["row"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(clean.reset_index(drop=True), kept, check_dtype=False)
    html = result.to_html()
    assert html.lstrip().lower().startswith("<!doctype html")
    assert html == (result.out / "report.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- scikit-learn


def _poisoned_classification(rows: int = 300):
    from sklearn.datasets import make_classification
    X, y = make_classification(rows, n_features=5, n_informative=3, random_state=0)
    poisoned = [5, 50, 100]
    X[poisoned] = 1e6  # gross values: hard bounds findings
    return X, y, poisoned


def test_poison_filter_fits_on_the_clean_rows_only():
    from sklearn.linear_model import LogisticRegression
    from poisonscan.sklearn import PoisonFilter
    X, y, poisoned = _poisoned_classification()
    seen = {}

    class Spy(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            seen["rows"], seen["weights"] = len(X), sample_weight
            return super().fit(X, y, sample_weight=sample_weight)

    model = PoisonFilter(Spy(max_iter=1000), checks=["bounds"]).fit(X, y, sample_weight=np.ones(len(X)))
    assert model.n_removed_ == len(poisoned)
    assert sorted(model.suspects_["row"]) == poisoned
    assert model.suspect_mask_.sum() == len(poisoned) and model.suspect_mask_[poisoned].all()
    assert seen["rows"] == len(X) - len(poisoned) == len(seen["weights"])
    assert list(model.classes_) == [0, 1]
    assert model.predict(X).shape == (len(X),)
    assert model.predict_proba(X).shape == (len(X), 2)
    assert 0.5 < model.score(X, y) <= 1.0
    assert model.scan_summary_["rows"]["quarantined"] == len(poisoned)


def test_poison_filter_params_and_clone():
    from sklearn.base import clone, is_classifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from poisonscan.sklearn import PoisonFilter
    model = PoisonFilter(LogisticRegression(C=2.0), contamination=0.05, seed=3)
    params = model.get_params()
    assert params["contamination"] == 0.05 and params["estimator__C"] == 2.0
    model.set_params(estimator__C=0.5, checks=["bounds"])
    assert model.estimator.C == 0.5 and model.checks == ["bounds"]
    copy = clone(model)
    assert copy.get_params()["seed"] == 3 and copy is not model
    assert is_classifier(model) and not is_classifier(PoisonFilter(Ridge()))
    assert not hasattr(PoisonFilter(Ridge()), "predict_proba")


def test_poison_filter_family_weights_choose_the_rows_contamination_removes():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from poisonscan.sklearn import PoisonFilter
    X, y = make_classification(600, n_features=5, n_informative=3, random_state=1)
    flipped = np.arange(0, 600, 40)  # 15 labels flipped: label evidence
    y[flipped] = 1 - y[flipped]
    X[[7, 300]] += 6.0  # two rows far out: outlier evidence
    kw = dict(checks=["outliers", "labels"], contamination=0.03)
    removed = {name: set(np.flatnonzero(PoisonFilter(LogisticRegression(), **kw,
                                                     family_weights=weights)
                                        .fit(X, y).suspect_mask_))
               for name, weights in (("labels", {"labels": 100.0}),
                                     ("outliers", {"outliers": 100.0}))}
    # a prior on the outlier evidence takes both far rows; one on the labels does not
    assert {7, 300} <= removed["outliers"] and not {7, 300} <= removed["labels"]
    assert len(removed["labels"] & set(flipped)) >= len(removed["outliers"] & set(flipped))
    assert PoisonFilter(LogisticRegression(), family_weights={"labels": 2.0}) \
        .get_params()["family_weights"] == {"labels": 2.0}


def test_poison_filter_in_a_pipeline_with_cross_validation():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler
    from poisonscan.sklearn import PoisonFilter
    X, y, _ = _poisoned_classification()
    inner = make_pipeline(StandardScaler(), LogisticRegression())
    filtered = Pipeline([("impute", SimpleImputer()),
                         ("model", PoisonFilter(inner, checks=["bounds"]))])
    plain = Pipeline([("impute", SimpleImputer()), ("model", inner)])
    with_filter = cross_val_score(filtered, X, y, cv=3)
    without = cross_val_score(plain, X, y, cv=3)
    assert with_filter.shape == (3,)
    assert with_filter.mean() > without.mean()  # the poisons wreck the scaler and the model
    search = GridSearchCV(filtered, {"model__contamination": [None, 0.02]}, cv=2).fit(X, y)
    assert search.best_estimator_.named_steps["model"].n_removed_ >= 3


def test_poison_filter_default_families_with_a_dataframe():
    from sklearn.tree import DecisionTreeClassifier
    from poisonscan.sklearn import PoisonFilter
    frame = pd.read_csv(LOANS_CSV).dropna(subset=["default"])
    y = frame.pop("default")
    X = frame[["age", "income", "credit_score", "open_accounts"]].fillna(0)
    model = PoisonFilter(DecisionTreeClassifier(random_state=0)).fit(X, y)
    assert model.n_removed_ > 0
    assert model.estimator_.n_features_in_ == 4
    assert set(model.scan_summary_["checks"]) >= {"bounds", "outliers"}


def test_import_poisonscan_does_not_import_sklearn(tmp_path):
    import subprocess
    import sys
    code = ("import sys, poisonscan; poisonscan.ScanConfig; "
            "assert 'sklearn' not in sys.modules, 'sklearn imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


# --------------------------------------------------------------------------- completion


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_lists_commands_and_flags(capsys, shell):
    code, out, err = run(["completion", shell], capsys)
    assert code == 0, err
    for word in ("scan", "profile", "config", "completion", "--fail-on", "--fail-above",
                 "--verbose", "--label", "--show", "--version"):
        assert word in out
    assert "csv parquet" in out and "bash zsh" in out  # choices complete too


def test_bash_completion_completes(tmp_path, capsys):
    import shutil
    import subprocess
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    _, script, _ = run(["completion", "bash"], capsys)
    (tmp_path / "c.sh").write_text(script, encoding="utf-8")

    def complete(*words):
        line = " ".join(["poisonscan", *words])
        probe = (f"source {tmp_path / 'c.sh'}; COMP_WORDS=(poisonscan {' '.join(words)}); "
                 f"COMP_CWORD={len(words)}; COMP_LINE='{line}'; _poisonscan; "
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True,
                              check=True, cwd=tmp_path)
        return done.stdout.split()

    assert set(complete("con")) == {"config"}
    assert "--fail-on" in complete("scan", "--fail-o")
    assert set(complete("scan", "--format", "")) == {"csv", "parquet"}
    assert set(complete("completion", "")) == {"bash", "zsh"}


# --------------------------------------------------------------------------- README examples


def _readme_block(lang: str) -> str:
    import re
    text = (FIXTURES.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Use it in a pipeline"):]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def test_readme_shell_pipeline_example_runs(tmp_path):
    import shutil
    import subprocess
    if shutil.which("poisonscan") is None:
        pytest.skip("the console script is not installed")
    (tmp_path / "fixtures").symlink_to(FIXTURES)
    script = _readme_block("sh")
    done = subprocess.run(["sh", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "within policy" in done.stdout
    assert (tmp_path / "scan-out" / "clean.csv").exists()
    # the same step with a policy that trips exits 1 and prints the policy
    tripping = script.replace("--fail-on duplicates", "--fail-on bounds")
    done = subprocess.run(["sh", "-c", tripping], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert "'tripped': ['fail_on']" in done.stderr


def test_readme_python_pipeline_example_runs(capsys):
    exec(compile(_readme_block("python"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert 0.0 < float(printed[0]) <= 1.0 and printed[1] == "3"


def test_non_tty_progress_writes_one_final_line_per_pass_without_control_codes():
    import io
    from poisonscan.cli import StderrProgress
    stream = io.StringIO()  # not a terminal
    progress = StderrProgress(stream)
    progress("pass 1/3: profile", 0, None)
    progress("pass 1/3: profile", 500, None)
    progress("pass 2/3: score", 0, 1000)
    progress("pass 2/3: score", 1000, 1000)   # done: its final line is written at once
    progress("pass 2/3: score", 1000, 1000)   # a repeat writes nothing
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["pass 1/3", "pass 2/3"]
    assert lines[0].startswith("pass 1/3: profile: 500 rows, ")
    assert lines[1].startswith("pass 2/3: score: 1,000/1,000 rows, ") and "ETA" not in lines[1]
    assert "\r" not in stream.getvalue() and "\033" not in stream.getvalue()


def test_log_lines_on_a_terminal_clear_the_live_progress_line(monkeypatch):
    import io
    import sys
    from poisonscan.cli import log_to_stderr

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with log_to_stderr(quiet=False, verbose=True):
        logging.getLogger("poisonscan.test").info("hello")
    logging.getLogger("poisonscan.test").warning("after")  # handler gone: not written
    assert terminal.getvalue() == "\r\033[Kpoisonscan: hello\n"


def test_profile_verbose_logs(cwd, capsys):
    code, _, err = run(["profile", LOANS_CSV, "--label", "default", "-o", "p.json", "-v"],
                       capsys)
    assert code == 0, err
    assert "poisonscan INFO profiled 2000 rows, 8 columns -> p.json" in err


def test_config_show_family_shortcut_points_at_its_top_level_line(cwd, capsys):
    (cwd / "ps.toml").write_text('seed = 1\ndetectors = ["hbos"]\n\n[outliers]\nvariance = 0.8\n',
                                 encoding="utf-8")
    code, out, _ = run(["config", "--show", "--json", "--config", "ps.toml"], capsys)
    assert code == 0
    outliers = json.loads(out)["families"]["outliers"]
    assert outliers["detectors"] == {"value": ["hbos"], "source": "config ps.toml:2"}
    assert outliers["variance"] == {"value": 0.8, "source": "config ps.toml:5"}


def test_poison_filter_without_y_fits_an_unsupervised_estimator():
    from sklearn.cluster import KMeans
    from poisonscan.sklearn import PoisonFilter
    X, _, poisoned = _poisoned_classification()
    model = PoisonFilter(KMeans(2, n_init=2, random_state=0), checks=["bounds"]).fit(X)
    assert model.n_removed_ == len(poisoned)
    assert model.estimator_.cluster_centers_.max() < 100  # the 1e6 rows did not pull a centre
    assert model.predict(X).shape == (len(X),)
