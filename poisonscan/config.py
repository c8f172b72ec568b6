"""Scan configuration: one declarative table of options for the CLI, the TOML file and the API.

Every option is declared once in :data:`OPTIONS`. The CLI builds its arguments from this
table, the TOML loader validates keys and values against it, and :func:`poisonscan.scan`
accepts the same names as keyword arguments. Precedence: defaults < config file < explicit
arguments (the command line, or the API's keywords).

This module must stay cheap to import: ``poisonscan --help`` imports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

CONFIG_FILE_NAME = "poisonscan.toml"


@dataclasses.dataclass(frozen=True)
class Option:
    """Declaration of one scan option.

    Parameters
    ----------
    name : str
        Key in the config file and keyword of :func:`poisonscan.scan`; the CLI flag is
        ``--name`` with dashes.
    kind : {"int", "float", "str", "bool", "list", "weights"}
        Value type. ``"weights"`` maps names to positive numbers: a table in the config
        file (``{labels = 0.3}``), ``"labels=0.3,outliers=2"`` on the command line.
    default : object
        Value when nobody sets it.
    help : str
        One line for ``--help``.
    low, high : float, optional
        Inclusive bounds for numbers (``low_open`` / ``high_open`` make them strict).
    choices : tuple of str, optional
        Allowed values of a string option.
    family : str, optional
        The option is a shortcut for the parameter of the same name of this check family
        (``--detectors`` sets ``[outliers] detectors``); when given, it wins over the table.
    nullable : bool
        Whether ``None`` (unset) is a valid value.
    """

    name: str
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    metavar: str | None = None
    short: str | None = None
    family: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def validate(self, value: Any, where: str = "") -> Any:
        """Return ``value`` checked (and lightly normalised) or raise :class:`ConfigError`."""
        prefix = f"{where}: " if where else ""
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{prefix}{self.name} must be set")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{prefix}{self.name} must be true or false, not {value!r}")
            return value
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{prefix}{self.name} must be an integer, not {value!r}")
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{prefix}{self.name} must be a number, not {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{prefix}{self.name} must be finite, not {value!r}")
        elif self.kind == "str":
            if not isinstance(value, (str, Path)):
                raise ConfigError(f"{prefix}{self.name} must be a string, not {value!r}")
            value = str(value)
            if self.choices is not None and value not in self.choices:
                raise ConfigError(
                    f"{prefix}{self.name} must be one of {', '.join(self.choices)}, not {value!r}")
        elif self.kind == "list":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{prefix}{self.name} must be a list of names, not {value!r}")
            value = tuple(value)
        elif self.kind == "weights":
            value = self._weights(value, prefix)
        if self.kind in ("int", "float"):
            self._check_range(value, prefix)
        return value

    def _weights(self, value: Any, prefix: str) -> dict[str, float]:
        """``{name: weight}`` from a mapping or ``"name=w,name=w"``; weights finite, > 0."""
        if isinstance(value, str):
            pairs = [item.partition("=") for item in value.split(",") if item.strip()]
            if any(not sep for _, sep, _ in pairs):
                raise ConfigError(f"{prefix}{self.name} takes NAME=WEIGHT pairs separated by "
                                  f"commas, not {value!r}")
            try:
                value = {name.strip(): float(weight) for name, _, weight in pairs}
            except ValueError:
                raise ConfigError(f"{prefix}{self.name}: every weight must be a number, "
                                  f"not {value!r}") from None
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(f"{prefix}{self.name} must map names to weights, not {value!r}")
        weights = {}
        for name, weight in value.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{prefix}{self.name}: {name!r} is no name")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not (math.isfinite(weight) and weight > 0):
                raise ConfigError(f"{prefix}{self.name}: the weight of {name} must be a "
                                  f"finite number > 0, not {weight!r}")
            weights[name] = float(weight)
        return weights

    def _check_range(self, value: float, prefix: str) -> None:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            op = ">" if self.low_open else ">="
            raise ConfigError(f"{prefix}{self.name} must be {op} {self.low}, not {value!r}")
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            op = "<" if self.high_open else "<="
            raise ConfigError(f"{prefix}{self.name} must be {op} {self.high}, not {value!r}")


OPTIONS: tuple[Option, ...] = (
    Option("label", "str", None, "label column (omit to skip label-dependent checks)",
           nullable=True, metavar="COL"),
    Option("out", "str", "poisonscan-out", "output directory (default: poisonscan-out)",
           metavar="DIR", short="-o"),
    Option("id_column", "str", None, "column carried through every output as the row's id",
           nullable=True, metavar="COL"),
    Option("chunk_rows", "int", 100_000, "rows per streamed chunk (bounds memory)",
           low=1, metavar="N"),
    Option("sample_rows", "int", 100_000,
           "rows in the seeded sample that checks are fitted on", low=10, metavar="N"),
    Option("seed", "int", 0, "seed of every random choice", low=0, high=2**32 - 1,
           metavar="S"),
    Option("format", "str", None, "format of clean/quarantine files (default: as the input)",
           choices=("csv", "parquet"), nullable=True),
    Option("text_columns", "list", None,
           "columns to encode as free text (hashed words, tf-idf, SVD) whatever they look "
           "like; long, mostly distinct text columns are detected without it",
           nullable=True, metavar="A,B"),
    Option("ignore_columns", "list", None,
           "columns no check reads (they are still carried to every output)",
           nullable=True, metavar="A,B"),
    Option("checks", "list", None, "check families to run (default: all default-on families)",
           nullable=True, metavar="A,B"),
    Option("max_suspects", "int", None, "quarantine at most K rows (the K highest ranked)",
           low=0, nullable=True, metavar="K"),
    Option("contamination", "float", None,
           "quarantine this fraction of rows, the highest ranked, none without evidence "
           "(replaces the default rule)",
           low=0.0, high=0.5, low_open=True, nullable=True, metavar="F"),
    Option("fusion", "str", "min",
           "how a row's calibrated p-values of the families become its soft score: the "
           "smallest (a single family that fired is not diluted), the Cauchy combination "
           "(robust to dependence) or Fisher's method (independent families)",
           choices=("min", "cauchy", "fisher")),
    Option("family_weights", "weights", None,
           "prior weight of each family's evidence in the fusion (weighted p-values p / w, "
           "normalised to a mean of 1, default 1 each): e.g. labels=0.3 when the labels are "
           "noisy by nature and inserted rows are the threat, labels=10 when flipped labels "
           "are", nullable=True, metavar="FAMILY=W,..."),
    Option("fdr", "float", None,
           "also quarantine the rows whose soft evidence passes Benjamini-Hochberg at this "
           "false discovery rate (calibrated tail p-values, Bonferroni over families)",
           low=0.0, high=0.5, low_open=True, nullable=True, metavar="Q"),
    Option("fail_above", "float", None,
           "exit 1 when the quarantined fraction exceeds RATE (outputs are still written)",
           low=0.0, high=1.0, nullable=True, metavar="RATE"),
    Option("fail_on", "list", None,
           "exit 1 when any quarantined row was flagged by one of these check families "
           "(outputs are still written)", nullable=True, metavar="FAMILY,FAMILY"),
    Option("detectors", "list", None, "outlier detectors to run (default subspace,ellipsoid,pairs; also iforest,hbos,pca,ecod,copod,knn,sphere,slab)",
           nullable=True, metavar="A,B", family="outliers"),
    Option("reference", "str", None, "trusted reference profile (JSON) to check bounds against",
           nullable=True, metavar="FILE", family="bounds"),
    Option("allowlist", "str", None,
           "decisions.csv of an earlier review: rows a reviewer kept are not quarantined "
           "(matched by id, else by feature fingerprint)", nullable=True, metavar="FILE"),
    Option("report_top", "int", 500,
           "suspects listed in report.html (all of them are in suspects.csv)", low=0,
           metavar="N"),
    Option("overwrite", "bool", False, "replace a scan already in the output directory"),
    Option("quiet", "bool", False, "no progress and no terminal summary (errors still print)",
           short="-q"),
    Option("json", "bool", False, "print summary.json to stdout"),
    Option("verbose", "bool", False,
           "more detail on stderr: per-check timings and learned bound counts", short="-v"),
    Option("engine", "str", "local",
           "where the passes run: this process, or a Dask cluster (pip install "
           "'poisonscan[dask]')", choices=("local", "dask")),
    Option("scheduler", "str", None,
           "Dask scheduler address (tcp://host:8786) of an existing cluster; default: a local "
           "cluster sized to this machine", nullable=True, metavar="ADDRESS"),
    Option("workers", "int", 1,
           "processes scoring pass 2 on the local engine (the outputs are the same; each "
           "extra one costs memory, about 300 MB at the defaults)", low=1, metavar="N"),
    Option("partition_rows", "int", 1_000_000,
           "rows per Dask partition, at least (whole Parquet row groups; a CSV file is one "
           "partition)", low=1, metavar="N"),
)
OPTION_BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


@dataclasses.dataclass(frozen=True)
class ScanConfig:
    """The effective configuration of one scan.

    Build it with :meth:`resolve`; fields are the names of :data:`OPTIONS` plus
    ``families`` (per-family parameter tables, e.g. ``{"bounds": {"margin": 2.0}}``),
    ``config_file`` (where the file values came from), ``origins`` (option -> one of
    ``"default"``, ``"config"``, ``"argument"``) and ``family_origins`` (the key path of
    every leaf of ``families``, e.g. ``("bounds", "age", "min")`` -> ``"config"`` or
    ``"argument"``). :meth:`provenance` turns these into ``"config FILE:LINE"``.
    """

    label: str | None = None
    out: str = "poisonscan-out"
    id_column: str | None = None
    chunk_rows: int = 100_000
    sample_rows: int = 100_000
    seed: int = 0
    format: str | None = None
    text_columns: tuple[str, ...] | None = None
    ignore_columns: tuple[str, ...] | None = None
    checks: tuple[str, ...] | None = None
    max_suspects: int | None = None
    contamination: float | None = None
    fusion: str = "min"
    family_weights: Mapping[str, float] | None = None
    fdr: float | None = None
    fail_above: float | None = None
    fail_on: tuple[str, ...] | None = None
    detectors: tuple[str, ...] | None = None
    reference: str | None = None
    allowlist: str | None = None
    report_top: int = 500
    overwrite: bool = False
    quiet: bool = False
    json: bool = False
    verbose: bool = False
    engine: str = "local"
    scheduler: str | None = None
    workers: int = 1
    partition_rows: int = 1_000_000
    families: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    config_file: str | None = None
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)
    family_origins: Mapping[tuple[str, ...], str] = dataclasses.field(default_factory=dict)

    @classmethod
    def resolve(cls, arguments: Mapping[str, Any] | None = None, *,
                config_file: str | Path | None = None) -> "ScanConfig":
        """Combine defaults, a config file and explicit arguments into one validated config.

        Parameters
        ----------
        arguments : mapping, optional
            Explicitly given options (``None`` values mean "not given").
        config_file : path, optional
            A TOML file to read (a file named ``pyproject.toml`` is read from its
            ``[tool.poisonscan]`` table). See :func:`discover_config_file`.

        Raises
        ------
        ConfigError
            An unknown key, a bad value, or an unreadable config file.
        """
        arguments = dict(arguments or {})
        path, table = load_config_table(config_file)
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        families: dict[str, dict[str, Any]] = {}
        family_origins: dict[tuple[str, ...], str] = {}
        text = path.read_text(encoding="utf-8") if path is not None else ""
        scope = "tool.poisonscan" if path is not None and path.name == "pyproject.toml" else None
        for key, value in table.items():
            if isinstance(value, dict) and getattr(OPTION_BY_NAME.get(key), "kind", "") \
                    != "weights":  # a table is a family's parameters, unless an option's
                families[key] = dict(value)
                family_origins.update(dict.fromkeys(_leaf_paths(value, (key,)), "config"))
                continue
            option = OPTION_BY_NAME.get(key)
            if option is None:
                raise ConfigError(f"{path}{_line_of(text, key, scope)}: unknown key {key!r}")
            values[key] = option.validate(value, f"{path}{_line_of(text, key, scope)}")
            origins[key] = "config"
        for key, value in arguments.items():
            if key == "families":
                for family, params in (value or {}).items():
                    families.setdefault(family, {}).update(params)
                    family_origins.update(
                        dict.fromkeys(_leaf_paths(dict(params), (family,)), "argument"))
                continue
            option = OPTION_BY_NAME.get(key)
            if option is None:
                raise ConfigError(f"unknown option {key!r}")
            if value is None:
                continue
            values[key] = option.validate(value)
            origins[key] = "argument"
        for option in OPTIONS:
            origins.setdefault(option.name, "default")
            if option.family is not None and values.get(option.name) is not None:
                value = values[option.name]
                families.setdefault(option.family, {})[option.name] = \
                    list(value) if isinstance(value, tuple) else value
                family_origins[(option.family, option.name)] = origins[option.name]
        if values.get("max_suspects") is not None and values.get("contamination") is not None \
                and origins["max_suspects"] == origins["contamination"] == "argument":
            raise ConfigError("give at most one of max_suspects and contamination")
        if values.get("fdr") is not None and values.get("contamination") is not None:
            raise ConfigError("give at most one of fdr and contamination (contamination "
                              "replaces the rule that fdr extends)")
        return cls(**values, families=families,
                   config_file=str(path) if path is not None else None, origins=origins,
                   family_origins=family_origins)

    def source_of(self, key_path) -> str:
        """Where one value came from: ``"default"``, ``"argument"`` or ``"config FILE:LINE"``.

        Parameters
        ----------
        key_path : str or tuple of str
            An option name (``"chunk_rows"``) or the key path of a family parameter
            (``("bounds", "age", "min")``).
        """
        if isinstance(key_path, str):
            origin = self.origins.get(key_path, "default")
            key_path = (key_path,)
        else:
            key_path = tuple(key_path)
            origin = self.family_origins.get(key_path, "default")
            shortcut = OPTION_BY_NAME.get(key_path[-1]) if len(key_path) == 2 else None
            if shortcut is not None and shortcut.family == key_path[0] \
                    and getattr(self, shortcut.name) is not None:
                return self.source_of(shortcut.name)  # set by the top-level shortcut
        if origin != "config":
            return origin
        if len(key_path) == 1 and self.config_file is not None:
            path = Path(self.config_file)
            scope = "tool.poisonscan" if path.name == "pyproject.toml" else None
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
            return f"config {path}{_line_of(text, key_path[0], scope)}"
        where = locate_key(self.config_file, key_path)
        return f"config {where or self.config_file}"

    def provenance(self, family_defaults: Mapping[str, Mapping[str, Any]] | None = None
                   ) -> dict[str, Any]:
        """The effective configuration with where each value came from.

        Parameters
        ----------
        family_defaults : mapping, optional
            Default parameters per check family (``{"bounds": {"margin": 1.0, ...}}``);
            shown as ``"default"`` where the configuration does not set them.

        Returns
        -------
        dict
            ``{"config_file": ..., "options": {name: {"value", "source"}},
            "families": {family: {"dotted.key": {"value", "source"}}}}`` with plain
            JSON values (tuples as lists).
        """
        options = {}
        for option in OPTIONS:
            value = getattr(self, option.name)
            options[option.name] = {"value": list(value) if isinstance(value, tuple) else value,
                                    "source": self.source_of(option.name)}
        families: dict[str, dict[str, Any]] = {}
        for family, params in (family_defaults or {}).items():
            for path, value in _leaf_items(dict(params), ()):
                families.setdefault(family, {})[".".join(path)] = {
                    "value": value, "source": "default"}
        for family, params in self.families.items():
            for path, value in _leaf_items(dict(params), ()):
                families.setdefault(family, {})[".".join(path)] = {
                    "value": list(value) if isinstance(value, tuple) else value,
                    "source": self.source_of((family, *path))}
        return {"config_file": self.config_file, "options": options, "families": families}

    def as_dict(self) -> dict[str, Any]:
        """The options as plain JSON-able values (for ``summary.json``)."""
        out = {o.name: getattr(self, o.name) for o in OPTIONS}
        for option in OPTIONS:
            if option.kind == "list" and out[option.name] is not None:
                out[option.name] = list(out[option.name])
            elif option.kind == "weights" and out[option.name] is not None:
                out[option.name] = dict(out[option.name])
        out["families"] = {k: dict(v) for k, v in self.families.items()}
        out["config_file"] = self.config_file
        return out


def _leaf_items(table: Mapping[str, Any], prefix: tuple[str, ...]):
    """``(key_path, value)`` of every non-table value of a nested table."""
    for key, value in table.items():
        if isinstance(value, dict) and value:
            yield from _leaf_items(value, prefix + (str(key),))
        else:
            yield prefix + (str(key),), value


def _leaf_paths(table: Mapping[str, Any], prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [path for path, _ in _leaf_items(table, prefix)]


def discover_config_file(cwd: str | Path | None = None) -> Path | None:
    """The config file a CLI run in ``cwd`` uses when none is named.

    ``poisonscan.toml`` if present, else ``pyproject.toml`` if it has a
    ``[tool.poisonscan]`` table, else ``None``.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    candidate = base / CONFIG_FILE_NAME
    if candidate.is_file():
        return candidate
    pyproject = base / "pyproject.toml"
    if pyproject.is_file() and _read_toml(pyproject, tool_table=True):
        return pyproject
    return None


def load_config_table(config_file: str | Path | None) -> tuple[Path | None, dict[str, Any]]:
    """Parse a config file; return ``(path, table)`` (``(None, {})`` without a file)."""
    if config_file is None:
        return None, {}
    path = Path(config_file)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    return path, _read_toml(path, tool_table=path.name == "pyproject.toml")


def _read_toml(path: Path, *, tool_table: bool) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if tool_table:
        data = data.get("tool", {}).get("poisonscan", {})
    return data


def _line_of(text: str, key: str, table: str | None = None) -> str:
    """``":LINE"`` of the line that assigns ``key`` in one table of TOML ``text``.

    ``table=None`` means the top level (the lines before the first table header);
    otherwise the key is looked up under ``[table]`` only (``tool.poisonscan`` for a
    ``pyproject.toml``), so that a same-named key of another table is never reported.
    Returns ``""`` when the key is not found there (e.g. written as a dotted key).
    """
    header = re.compile(r"^\s*\[")
    wanted = None if table is None else re.compile(
        r"^\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, table.split("."))) + r"\s*\]\s*(#.*)?$")
    assign = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    in_scope = table is None
    for number, line in enumerate(text.split("\n"), start=1):
        if header.match(line):
            if wanted is None:
                break
            in_scope = wanted.match(line) is not None
            continue
        if in_scope and assign.match(line):
            return f":{number}"
    return ""


def check_family_names(cfg: ScanConfig, known) -> None:
    """Every family that ``fail_on`` or ``family_weights`` names is one of ``known``.

    Raises
    ------
    ConfigError
        ``[FILE:LINE: ]OPTION: unknown check family 'NAME' (known: ...)`` (exit 2).
    """
    for option in ("fail_on", "family_weights"):
        unknown = [family for family in getattr(cfg, option) or () if family not in known]
        if unknown:
            source = cfg.source_of(option)
            where = source[len("config "):] + ": " if source.startswith("config ") else ""
            raise ConfigError(f"{where}{option}: unknown check family {unknown[0]!r} "
                              f"(known: {', '.join(known)})")


@contextlib.contextmanager
def located(cfg: "ScanConfig"):
    """Prefix a :class:`ConfigError` about a config-file key (its ``key_path``) raised in
    the block with ``FILE:LINE``."""
    try:
        yield
    except ConfigError as exc:
        where = locate_key(cfg.config_file, getattr(exc, "key_path", None))
        if where and not str(exc).startswith(where):
            raise ConfigError(f"{where}: {exc}") from None
        raise


def locate_key(config_file: str | Path | None, key_path) -> str:
    """``"FILE:LINE"`` where a (possibly nested) key is set in a config file, else ``""``.

    ``key_path`` is the key's path below the poisonscan table, e.g. ``("bounds", "age",
    "min")`` or ``("bounds", "by_label", "spam", "links", "max")``. The key is looked up
    under the header of its table (``[bounds.age]``), then, walking up, as a dotted or
    inline-table key of a parent table (``age = {min = 0}`` or ``age.min = 0`` under
    ``[bounds]``); when no line assigns the key itself, the line of its nearest table
    header is reported.
    """
    if config_file is None or not key_path:
        return ""
    path = Path(config_file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    prefix = ["tool", "poisonscan"] if path.name == "pyproject.toml" else []
    keys = [str(k) for k in key_path]
    for split in range(len(keys) - 1, -1, -1):
        table = ".".join(_toml_key(k) for k in prefix + keys[:split]) or None
        line = _line_of_dotted(text, keys[split:], table)
        if line:
            return f"{path}{line}"
    for split in range(len(keys), 0, -1):
        line = _header_line(text, prefix + keys[:split])
        if line:
            return f"{path}{line}"
    return ""


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f'"{key}"'


def _key_pattern(key: str) -> str:
    return rf"""(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""


def _header_line(text: str, keys: list[str]) -> str:
    """``":LINE"`` of the ``[a.b.c]`` header of a table, or ``""``."""
    header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(_key_pattern(k) for k in keys)
                        + r"\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.split("\n"), start=1):
        if header.match(line):
            return f":{number}"
    return ""


def _line_of_dotted(text: str, keys: list[str], table: str | None) -> str:
    """``":LINE"`` of the line assigning ``keys[0]`` (or dotted ``keys[0].keys[1]...``) in
    ``[table]``; an inline table counts when the remaining keys appear on that line."""
    if len(keys) == 1:
        return _line_of(text, keys[0], table)
    header = re.compile(r"^\s*\[")
    wanted = None if table is None else re.compile(
        r"^\s*\[\s*" + r"\s*\.\s*".join(
            _key_pattern(k.strip('"')) for k in _split_table(table)) + r"\s*\]\s*(#.*)?$")
    dotted = re.compile(r"^\s*" + r"\s*\.\s*".join(_key_pattern(k) for k in keys) + r"\s*=")
    inline = re.compile(r"^\s*" + _key_pattern(keys[0]) + r"\s*=\s*\{")
    in_scope = table is None
    for number, line in enumerate(text.split("\n"), start=1):
        if header.match(line):
            if wanted is None:
                break
            in_scope = wanted.match(line) is not None
            continue
        if not in_scope:
            continue
        if dotted.match(line):
            return f":{number}"
        if inline.match(line) and re.search(_key_pattern(keys[-1]) + r"\s*=", line):
            return f":{number}"
    return ""


def _split_table(table: str) -> list[str]:
    return re.findall(r'"[^"]*"|[^.]+', table)
