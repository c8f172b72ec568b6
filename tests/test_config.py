"""Configuration: poisonscan.toml, [tool.poisonscan] in pyproject.toml, --config FILE.

Precedence is defaults < config file < command line (DESIGN.md §5); an unknown key or a
bad value is exit 2 with one line naming it. End-to-end tests run the CLI in-process in
an empty working directory and read the effective values back from ``summary.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from poisonscan.cli import main
from poisonscan.config import (OPTION_BY_NAME, OPTIONS, Option, ScanConfig,
                               discover_config_file, load_config_table)
from poisonscan.errors import ConfigError, UsageError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOANS_CSV = FIXTURES / "loans.csv"


def run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def scan(capsys, *args) -> tuple[int, str, str]:
    return run(["scan", LOANS_CSV, "-o", "out", *args], capsys)


def summary_of(out: Path | str = "out") -> dict:
    return json.loads((Path(out) / "summary.json").read_text(encoding="utf-8"))


def error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("poisonscan: error: "), lines[0]
    return lines[0]


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


LOANS_TOML = 'label = "default"\nid_column = "application_id"\n'


# --------------------------------------------------------------------------- where it is read


def test_poisonscan_toml_in_working_directory_is_used(cwd, capsys):
    write(cwd / "poisonscan.toml", LOANS_TOML + "max_suspects = 2\nseed = 7\nquiet = true\n")
    code, out, err = scan(capsys)
    assert code == 0, err
    assert err == "" and out == ""  # quiet = true took effect
    summary = summary_of()
    assert summary["config"]["config_file"].endswith("poisonscan.toml")
    assert summary["label"]["column"] == "default"
    assert summary["seed"] == 7
    assert summary["rows"]["quarantined"] == 2
    assert "max_suspects" in summary["decision"]["policy"]  # the cap bound: more were flagged
    assert "application_id" in pq.read_table(cwd / "out" / "scores.parquet").column_names


def test_pyproject_tool_table_is_used(cwd, capsys):
    write(cwd / "pyproject.toml",
          '[project]\nname = "mydata"\nversion = "1"\n\n'
          '[tool.other]\nmax_suspects = 99\n\n'
          '[tool.poisonscan]\n' + LOANS_TOML + 'max_suspects = 3\n')
    code, _, err = scan(capsys, "-q")
    assert code == 0, err
    summary = summary_of()
    assert summary["config"]["config_file"].endswith("pyproject.toml")
    assert summary["config"]["max_suspects"] == 3
    assert summary["rows"]["quarantined"] == 3
    assert summary["id_column"] == "application_id"


def test_pyproject_without_tool_table_is_ignored(cwd, capsys):
    write(cwd / "pyproject.toml", '[project]\nname = "mydata"\nlabel = "nonsense"\n')
    code, _, err = scan(capsys, "-q")
    assert code == 0, err
    summary = summary_of()
    assert summary["config"]["config_file"] is None
    assert summary["label"] is None


def test_poisonscan_toml_wins_over_pyproject(cwd, capsys):
    write(cwd / "pyproject.toml", "[tool.poisonscan]\n" + LOANS_TOML + "max_suspects = 3\n")
    write(cwd / "poisonscan.toml", LOANS_TOML + "max_suspects = 1\n")
    code, _, err = scan(capsys, "-q")
    assert code == 0, err
    summary = summary_of()
    assert summary["config"]["config_file"].endswith("poisonscan.toml")
    assert summary["rows"]["quarantined"] == 1


def test_config_option_names_a_file_elsewhere(cwd, capsys):
    write(cwd / "poisonscan.toml", LOANS_TOML + "max_suspects = 5\n")  # not read
    conf = write(cwd / "settings" / "scan.toml", LOANS_TOML + "max_suspects = 2\n")
    code, _, err = scan(capsys, "-q", "--config", conf)
    assert code == 0, err
    summary = summary_of()
    assert summary["config"]["config_file"] == str(conf)
    assert summary["rows"]["quarantined"] == 2


def test_config_option_reads_the_tool_table_of_a_pyproject(cwd, capsys):
    conf = write(cwd / "elsewhere" / "pyproject.toml",
                 '[project]\nname = "x"\n[tool.poisonscan]\n' + LOANS_TOML + "max_suspects = 4\n")
    code, _, err = scan(capsys, "-q", "--config", conf)
    assert code == 0, err
    assert summary_of()["rows"]["quarantined"] == 4


def test_config_option_with_missing_file_is_an_error(cwd, capsys):
    code, _, err = scan(capsys, "--config", "nope.toml")
    assert code == 2
    line = error_line(err)
    assert "nope.toml" in line and "not found" in line
    assert not (cwd / "out").exists()


def test_broken_pyproject_in_working_directory_is_an_error(cwd, capsys):
    write(cwd / "pyproject.toml", "[tool.poisonscan\nlabel = 1\n")
    code, _, err = scan(capsys)
    assert code == 2
    line = error_line(err)
    assert "pyproject.toml" in line and "invalid TOML" in line


# --------------------------------------------------------------------------- precedence


def test_command_line_wins_over_the_file(cwd, capsys):
    write(cwd / "poisonscan.toml",
          LOANS_TOML + "max_suspects = 2\nseed = 7\nchunk_rows = 500\nsample_rows = 300\n")
    code, _, err = scan(capsys, "-q", "--max-suspects", "4", "--seed", "3")
    assert code == 0, err
    config = summary_of()["config"]
    assert config["max_suspects"] == 4  # argument
    assert config["seed"] == 3  # argument
    assert config["chunk_rows"] == 500  # file (not overridden)
    assert config["sample_rows"] == 300  # file
    assert config["label"] == "default"  # file
    assert summary_of()["rows"]["quarantined"] == 4
    assert summary_of()["sample_rows"] == 300


def test_command_line_label_wins(cwd, capsys):
    write(cwd / "poisonscan.toml", 'label = "no_such_column"\n')
    code, _, err = scan(capsys, "-q", "--label", "default")
    assert code == 0, err
    assert summary_of()["label"]["column"] == "default"


def test_boolean_options_from_the_file(cwd, capsys):
    write(cwd / "poisonscan.toml", LOANS_TOML + "json = true\nquiet = true\noverwrite = true\n")
    code, out, err = scan(capsys)
    assert code == 0, err
    assert json.loads(out) == summary_of()
    assert err == ""
    code, out, err = scan(capsys, "--max-suspects", "1")  # overwrite = true allows a re-scan
    assert code == 0, err
    assert summary_of()["rows"]["quarantined"] == 1


def test_command_line_can_switch_off_booleans_set_in_the_file(cwd, capsys):
    write(cwd / "poisonscan.toml", LOANS_TOML + "json = true\nquiet = true\noverwrite = true\n")
    code, out, err = scan(capsys, "--no-json", "--no-quiet")
    assert code == 0, err
    assert out == ""  # --no-json beat json = true
    assert "rows scanned" in err  # --no-quiet beat quiet = true
    config = summary_of()["config"]
    assert (config["json"], config["quiet"], config["overwrite"]) == (False, False, True)
    code, _, err = scan(capsys, "--no-overwrite")  # beats overwrite = true: refused
    assert code == 2
    assert "--overwrite" in error_line(err)


def test_fail_above_from_the_file_sets_the_exit_code(cwd, capsys):
    write(cwd / "poisonscan.toml", LOANS_TOML + "fail_above = 0.0\nquiet = true\n")
    code, _, err = scan(capsys)
    assert code == 1, err
    assert summary_of()["policy_exceeded"] is True
    assert summary_of()["config"]["fail_above"] == 0.0


# --------------------------------------------------------------------------- errors


def test_unknown_top_level_key_names_key_and_line(cwd, capsys):
    write(cwd / "poisonscan.toml", LOANS_TOML + "\nmax_suspect = 3\n")
    code, _, err = scan(capsys)
    assert code == 2
    line = error_line(err)
    assert "'max_suspect'" in line
    assert "poisonscan.toml:4" in line
    assert not (cwd / "out").exists()


def test_unknown_key_in_pyproject_names_the_line_in_the_tool_table(cwd, capsys):
    # "name" also appears in [project]: the message must point into [tool.poisonscan]
    write(cwd / "pyproject.toml",
          '[project]\nname = "mydata"\n\n[tool.poisonscan]\nlabel = "default"\nname = "x"\n')
    code, _, err = scan(capsys)
    assert code == 2
    line = error_line(err)
    assert "'name'" in line
    assert "pyproject.toml:6:" in line


def test_bad_value_in_pyproject_names_the_line_in_the_tool_table(cwd, capsys):
    write(cwd / "pyproject.toml",
          '[tool.other]\nseed = 1\n\n[tool.poisonscan]\nlabel = "default"\nseed = -1\n')
    code, _, err = scan(capsys)
    assert code == 2
    line = error_line(err)
    assert "seed" in line and "pyproject.toml:6:" in line


BAD_VALUES = [
    ("chunk_rows", '"big"', "integer"),
    ("chunk_rows", "1.5", "integer"),
    ("chunk_rows", "0", ">= 1"),
    ("sample_rows", "5", ">= 10"),
    ("seed", "-1", ">= 0"),
    ("max_suspects", "true", "integer"),
    ("max_suspects", "-1", ">= 0"),
    ("contamination", "0.0", "> 0"),
    ("contamination", "0.9", "<= 0.5"),
    ("contamination", "nan", "finite"),
    ("fail_above", "1.5", "<= 1"),
    ("fail_above", '"high"', "number"),
    ("format", '"xlsx"', "csv, parquet"),
    ("label", "5", "string"),
    ("out", "[1, 2]", "string"),
    ("quiet", '"yes"', "true or false"),
    ("overwrite", "1", "true or false"),
    ("checks", "[1, 2]", "list"),
]


@pytest.mark.parametrize("key,value,why", BAD_VALUES,
                         ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_bad_value_names_the_key(cwd, capsys, key, value, why):
    lines = [] if key == "label" else ['label = "default"']
    lines.append(f"{key} = {value}")
    write(cwd / "poisonscan.toml", "\n".join(lines) + "\n")
    code, _, err = scan(capsys)
    assert code == 2
    line = error_line(err)
    assert f"poisonscan.toml:{len(lines)}: {key} " in line, line
    assert why in line
    assert not (cwd / "out").exists()


def test_bad_value_in_config_option_file_names_the_file(cwd, capsys):
    conf = write(cwd / "conf" / "scan.toml", 'label = "default"\nseed = "zero"\n')
    code, _, err = scan(capsys, "--config", conf)
    assert code == 2
    line = error_line(err)
    assert f"{conf}:2: seed" in line


def test_unknown_check_family_in_checks_list(cwd, capsys):
    write(cwd / "poisonscan.toml", 'checks = ["bounds", "sorcery"]\n')
    code, _, err = scan(capsys)
    assert code == 2
    assert "'sorcery'" in error_line(err)


@pytest.mark.parametrize("toml,names", [
    ("[bounds]\nbogus = 1\n", ["bounds.bogus"]),
    ("[sorcery]\nlevel = 3\n", ["'sorcery'"]),
    ("[bounds]\nmargin = -1\n", ["bounds", "margin", ">= 0"]),
    ("[bounds]\nmargin = \"wide\"\n", ["bounds", "margin", "number"]),
    ("[bounds]\nquantile = 0.5\n", ["bounds", "quantile", "<= 0.25"]),
    ("[bounds]\nrare_fraction = true\n", ["bounds", "rare_fraction"]),
], ids=["unknown-parameter", "unknown-family", "negative-margin", "text-margin",
        "quantile-out-of-range", "bool-fraction"])
def test_bad_family_table_names_it(cwd, capsys, toml, names):
    write(cwd / "poisonscan.toml", LOANS_TOML + toml)
    code, _, err = scan(capsys)
    assert code == 2
    line = error_line(err)
    for name in names:
        assert name in line, line
    assert not (cwd / "out").exists()


@pytest.mark.parametrize("text", [
    'label = "default\n',  # unterminated string
    "label = default\n",  # bare word
    "[bounds\nmargin = 1\n",  # broken header
    'seed = 1\nseed = 2\n',  # duplicate key
])
def test_invalid_toml_is_an_error(cwd, capsys, text):
    write(cwd / "poisonscan.toml", text)
    code, _, err = scan(capsys)
    assert code == 2
    line = error_line(err)
    assert "poisonscan.toml" in line and "invalid TOML" in line
    assert not (cwd / "out").exists()


def test_config_that_is_not_utf8_is_an_error(cwd, capsys):
    (cwd / "poisonscan.toml").write_bytes(b'label = "d\xe9faut"\n')
    code, _, err = scan(capsys)
    assert code == 2
    assert "poisonscan.toml" in error_line(err)


# --------------------------------------------------------------------------- family parameters


def test_family_parameter_changes_the_scan(cwd, capsys):
    code, _, err = run(["scan", LOANS_CSV, "-o", "default", "-q", "--label", "default"], capsys)
    assert code == 0, err
    write(cwd / "poisonscan.toml", "[bounds]\nmargin = 0.0\n")
    code, _, err = run(["scan", LOANS_CSV, "-o", "tight", "-q", "--label", "default"], capsys)
    assert code == 0, err
    default, tight = summary_of("default"), summary_of("tight")
    assert default["checks"]["bounds"]["params"]["margin"] == 1.0
    assert tight["checks"]["bounds"]["params"]["margin"] == 0.0
    assert tight["config"]["families"] == {"bounds": {"margin": 0.0}}
    # a zero margin leaves no allowance beyond the inner quantiles: more rows break a learned
    # bound (learned violations are evidence, so the quarantine need not grow)
    assert tight["checks"]["bounds"]["rows_flagged"] > default["checks"]["bounds"]["rows_flagged"]
    ranges = tight["checks"]["bounds"]["learned"]
    assert ranges != default["checks"]["bounds"]["learned"]


# --------------------------------------------------------------------------- unit level


def test_every_option_has_a_cli_flag_and_a_config_field():
    fields = {f.name for f in ScanConfig.__dataclass_fields__.values()}
    for option in OPTIONS:
        assert option.flag == "--" + option.name.replace("_", "-")
        assert option.name in fields
        if option.default is not None:
            assert option.validate(option.default) == option.default
    defaults = ScanConfig.resolve()
    for option in OPTIONS:
        assert getattr(defaults, option.name) == option.default
        assert defaults.origins[option.name] == "default"


@pytest.mark.parametrize("name,value,expected", [
    ("chunk_rows", 5, 5),
    ("contamination", 0.5, 0.5),  # inclusive upper bound
    ("fail_above", 0, 0.0),  # int accepted for a float, as a float
    ("fail_above", 1, 1.0),
    ("checks", "bounds, outliers", ("bounds", "outliers")),  # comma list from the CLI
    ("checks", ["bounds"], ("bounds",)),
    ("format", "parquet", "parquet"),
    ("out", Path("x/y"), "x/y"),
    ("label", None, None),  # nullable
    ("quiet", True, True),
    ("family_weights", "labels=0.5, outliers=2", {"labels": 0.5, "outliers": 2.0}),
    ("family_weights", {"labels": 3}, {"labels": 3.0}),  # a TOML table; ints as floats
])
def test_option_validate_accepts(name, value, expected):
    result = OPTION_BY_NAME[name].validate(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("name,value", [
    ("chunk_rows", 0),
    ("chunk_rows", True),
    ("chunk_rows", 2.0),
    ("chunk_rows", "10"),
    ("contamination", 0.0),  # open lower bound
    ("contamination", 0.5000001),
    ("contamination", math.inf),
    ("fail_above", -0.1),
    ("fail_above", float("nan")),
    ("format", "CSV"),
    ("checks", [1]),
    ("quiet", 1),
    ("quiet", "true"),
    ("seed", None),  # not nullable
    ("family_weights", "labels"),  # no weight
    ("family_weights", "labels=high"),
    ("family_weights", "labels=0"),
    ("family_weights", {"labels": -1}),
    ("family_weights", {"labels": True}),
    ("family_weights", {"labels": math.inf}),
    ("family_weights", {}),
    ("family_weights", ["labels=2"]),
])
def test_option_validate_rejects(name, value):
    with pytest.raises(ConfigError, match=name):
        OPTION_BY_NAME[name].validate(value)


def test_option_validate_prefixes_where():
    option = Option("n", "int", 1, "a number", low=1)
    with pytest.raises(ConfigError, match=r"^f\.toml:3: n must be >= 1, not 0$"):
        option.validate(0, "f.toml:3")
    with pytest.raises(ConfigError, match=r"^n must be < 2"):
        Option("n", "int", 1, "", high=2, high_open=True).validate(2)


def test_resolve_precedence_and_origins(tmp_path):
    conf = write(tmp_path / "c.toml", 'seed = 5\nchunk_rows = 50\nlabel = "y"\n'
                                      '[bounds]\nmargin = 2.0\nquantile = 0.05\n')
    cfg = ScanConfig.resolve({"seed": 9, "chunk_rows": None, "quiet": None,
                              "families": {"bounds": {"margin": 0.5}}}, config_file=conf)
    assert (cfg.seed, cfg.chunk_rows, cfg.label, cfg.quiet) == (9, 50, "y", False)
    assert cfg.origins["seed"] == "argument"
    assert cfg.origins["chunk_rows"] == "config"  # None means "not given"
    assert cfg.origins["quiet"] == "default"
    assert cfg.families == {"bounds": {"margin": 0.5, "quantile": 0.05}}
    assert cfg.config_file == str(conf)
    as_dict = cfg.as_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict  # plain JSON values
    assert as_dict["seed"] == 9 and as_dict["families"]["bounds"]["margin"] == 0.5


def test_resolve_rejects_unknown_argument_and_both_limits():
    with pytest.raises(ConfigError, match="'bogus'"):
        ScanConfig.resolve({"bogus": 1})
    with pytest.raises(ConfigError, match="max_suspects and contamination"):
        ScanConfig.resolve({"max_suspects": 3, "contamination": 0.1})
    assert issubclass(ConfigError, UsageError) and ConfigError.exit_code == 2


def test_resolve_unknown_key_reports_first_top_level_line(tmp_path):
    conf = write(tmp_path / "c.toml", "# comment\nseed = 1\n\n  colour = 'blue'\n"
                                      "[bounds]\ncolour = 1\n")
    with pytest.raises(ConfigError, match=r"c\.toml:4: unknown key 'colour'$"):
        ScanConfig.resolve(config_file=conf)


def test_discover_config_file(tmp_path):
    assert discover_config_file(tmp_path) is None
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert discover_config_file(tmp_path) is None
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.poisonscan]\nseed = 1\n')
    assert discover_config_file(tmp_path) == tmp_path / "pyproject.toml"
    write(tmp_path / "poisonscan.toml", "seed = 2\n")
    assert discover_config_file(tmp_path) == tmp_path / "poisonscan.toml"
    os.mkdir(tmp_path / "sub")
    assert discover_config_file(tmp_path / "sub") is None  # only the working directory


def test_load_config_table(tmp_path):
    assert load_config_table(None) == (None, {})
    conf = write(tmp_path / "pyproject.toml", '[tool.poisonscan]\nseed = 3\n[tool.x]\nseed = 4\n')
    assert load_config_table(conf) == (conf, {"seed": 3})
    with pytest.raises(ConfigError, match="not found"):
        load_config_table(tmp_path / "missing.toml")


def test_every_option_is_a_config_field_and_a_cli_flag():
    import dataclasses
    from poisonscan.cli import build_parser
    from poisonscan.config import OPTIONS, ScanConfig
    fields = {f.name for f in dataclasses.fields(ScanConfig)}
    assert {o.name for o in OPTIONS} <= fields
    scan_help = build_parser()._subparsers._group_actions[0].choices["scan"].format_help()
    for option in OPTIONS:
        assert option.flag in scan_help


def test_family_shortcut_options_feed_the_family_table():
    from poisonscan.config import ScanConfig
    cfg = ScanConfig.resolve({"detectors": "iforest,hbos", "families": {"outliers": {"x": 1}}})
    assert cfg.families["outliers"] == {"x": 1, "detectors": ["iforest", "hbos"]}
