"""The library entry points: :func:`scan` (and its :class:`ScanResult`) and :func:`profile`."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from . import pipeline
from .checks.registry import REGISTRY, build_checks
from .config import ScanConfig, check_family_names, located
from .engines.local import PASS2_FILE, ScanRun
from .errors import ConfigError, InputError, OutputExistsError
from .io.schema import ScanSchema
from .io.sinks import QUARANTINE_COLUMNS, RESULT_COLUMNS, OutputDir, TableWriter
from .io.sources import open_source
from .io import storage
from .report import html as html_report
from .report.details import collect_details
from .report.summary import build_summary, write_json

#: The library's logger; poisonscan adds no handlers (the CLI attaches one to stderr).
logger = logging.getLogger("poisonscan")


@dataclasses.dataclass
class ScanResult:
    """What a scan found.

    Attributes
    ----------
    summary : dict
        The content of ``summary.json``.
    suspects : pandas.DataFrame
        The ranked suspects (the content of ``suspects.csv``).
    out : pathlib.Path or str
        The directory holding every output file: a local path, or the URL the scan
        wrote to (``s3://bucket/scan``), which the methods below read through fsspec.
    """

    summary: dict
    suspects: pd.DataFrame
    out: Path | str
    _tmp: Any = dataclasses.field(default=None, repr=False)

    def _file(self, name: str) -> Path | str:
        return storage.join(self.out, name) if storage.is_url(self.out) else Path(self.out) / name

    @property
    def policy_exceeded(self) -> bool:
        """Whether the exit policy tripped: the quarantined fraction broke ``fail_above`` or
        a quarantined row was flagged by a ``fail_on`` family (the CLI then exits 1)."""
        return bool(self.summary["policy_exceeded"])

    @property
    def policy_tripped(self) -> list[str]:
        """The policy rules that tripped (``"fail_above"``, ``"fail_on"``), may be empty."""
        return list(self.summary.get("policy", {}).get("tripped", []))

    def to_html(self) -> str:
        """The review report (the content of ``report.html``) as a string."""
        with storage.open_input(self._file("report.html")) as handle:
            return handle.read().decode("utf-8")

    def scores(self) -> pd.DataFrame:
        """One row per input row: ``row``, ``score``, ``suspect`` and the family scores."""
        return _read_table(self._file("scores.parquet"), "parquet").to_pandas()

    def _data(self, stem: str) -> pd.DataFrame:
        fmt = self.summary["output_format"]
        return _read_table(self._file(f"{stem}.{fmt}"), fmt).to_pandas()

    def clean(self) -> pd.DataFrame:
        """The clean rows (reads ``clean.<fmt>``).

        Works for in-memory inputs too: without ``out=`` the outputs live in a temporary
        directory as long as this result; a DataFrame or Table input is written as Parquet,
        so column types survive.
        """
        return self._data("clean")

    def quarantine(self) -> pd.DataFrame:
        """The quarantined rows with ``_row``, ``_score`` and ``_reason``."""
        return self._data("quarantine")


def _read_table(location: Path | str, fmt: str) -> pa.Table:
    """An output file (Parquet, or CSV as pass 3 wrote it) at a local path or a URL."""
    if fmt != "parquet":
        with storage.open_input(location) as handle:
            return pacsv.read_csv(handle)
    if storage.is_url(location):
        fs, inner = storage.filesystem(location)
        return pq.read_table(inner, filesystem=fs)
    return pq.read_table(location)


def _bounds_tally(plan, outdir: OutputDir, schema: ScanSchema) -> dict | None:
    """Rows per column and broken bound, read back from the pass-2 reasons."""
    check = next((c for c in plan.checks if c.name == "bounds"), None)
    path = outdir.file(PASS2_FILE)
    if check is None or not path.exists() or not hasattr(check, "tally"):
        return None
    reasons = pq.read_table(path, columns=["reason"]).column("reason").drop_null()
    reasons = pc.filter(reasons, pc.match_substring(reasons, "bounds:"))
    return check.tally(reasons.to_pylist(), schema.columns)


def scan(source, label: str | None = None, out: str | Path | None = None, *,
         config: str | Path | None = None,
         progress: Callable[[str, int, int | None], None] | None = None,
         **options: Any) -> ScanResult:
    """Scan a dataset for poisoned rows and write the outputs.

    Parameters
    ----------
    source : path, glob, directory, list of those, pandas.DataFrame or pyarrow.Table
        The data. Files may be CSV (``.csv``, ``.csv.gz``, ``.csv.zst``) or Parquet.
    label : str, optional
        Label column; without it, label-dependent checks are skipped.
    out : path or URL, optional
        Output directory (a URL such as ``s3://bucket/scan`` writes through fsspec).
        Without it, the config file's ``out``; without either, a temporary directory
        that lives as long as the returned result.
    config : path, optional
        A TOML file to read options from (``poisonscan.toml``, or a ``pyproject.toml``
        with a ``[tool.poisonscan]`` table). Keyword options override it.
    progress : callable, optional
        ``progress(stage, rows_done, rows_total_or_None)`` after every chunk.
    **options
        Any option of :data:`poisonscan.config.OPTIONS` (``id_column``, ``chunk_rows``,
        ``sample_rows``, ``seed``, ``format``, ``max_suspects``, ``contamination``,
        ``fail_above``, ``fail_on``, ``overwrite``, ``checks``, ``verbose``,
        ``allowlist`` (a reviewer's ``decisions.csv``: the rows it kept are not
        quarantined), ``report_top`` (suspects listed in ``report.html``)), and
        ``families`` (per-family parameters).

    Returns
    -------
    ScanResult

    Raises
    ------
    ConfigError, InputError, OutputExistsError
        Bad options, unreadable or unsuitable input, an output directory holding a scan.
    """
    started = time.perf_counter()
    arguments = dict(options, label=label, out=None if out is None else str(out))
    cfg = ScanConfig.resolve(arguments, config_file=config)
    tmp = None
    if cfg.origins["out"] == "default":  # neither out= nor the config file's out
        tmp = tempfile.TemporaryDirectory(prefix="poisonscan-")
        cfg = ScanConfig.resolve(dict(arguments, out=tmp.name), config_file=config)
    check_family_names(cfg, REGISTRY)

    _check_out_outside_inputs(source, cfg.out)
    source, schema = _open(source, cfg)
    logger.info("scanning %s (%d features, label %s) into %s", ", ".join(source.names[:3]),
                len(schema.features), cfg.label or "none", cfg.out)
    with located(cfg):
        checks, skipped = build_checks(cfg.checks, cfg.families, has_label=cfg.label is not None)
        for check in checks:
            validate = getattr(check, "validate_schema", None)
            if validate is not None:
                validate(schema)  # declared columns and the reference, before any pass
    _check_output_names(source, cfg, checks)
    if cfg.label is None:
        skipped.setdefault("label-dependent checks", "no label column given")
    idle = [f for f in cfg.fail_on or () if f not in {c.name for c in checks}]
    if idle:  # the policy holds (0 rows), but a pipeline step guarding on it is idle
        logger.warning("fail_on %s: not run in this scan (%s), so it quarantines nothing",
                       ", ".join(idle), "; ".join(
                           f"{f}: {skipped[f]}" if f in skipped else f"{f}: not in checks"
                           for f in idle))
    fmt = cfg.format or source.fmt
    if fmt == "csv":
        nested = [f.name for f in source.arrow_schema if _not_text(f.type)]
        if nested:
            kind = source.arrow_schema.field(nested[0]).type
            raise ConfigError(f"format: column {nested[0]!r} holds {kind}, which CSV cannot "
                              "carry: write the outputs as Parquet (--format parquet)")
    exempt = None
    if cfg.allowlist is not None:
        from .review import allowlist_rows, read_decisions
        exempt = allowlist_rows(read_decisions(cfg.allowlist),
                                source.chunks(cfg.chunk_rows, schema), schema.id_column,
                                path=cfg.allowlist)

    check_seconds: dict[str, float] = {}
    with OutputDir(cfg.out, overwrite=cfg.overwrite) as outdir:
        engine = _engine(cfg)(source, schema, checks, cfg, outdir, fmt, progress, exempt=exempt)
        timed = checks if cfg.verbose and cfg.engine == "local" else []  # Dask: on workers
        with located(cfg), _timed_checks(timed, check_seconds):
            run = engine.run()
        if run.get("bounds_tally") is None:  # the Dask engine counts them on the workers
            run["bounds_tally"] = _bounds_tally(run["plan"], outdir, schema)
        suspects: pa.Table = run["suspects"]
        with TableWriter(outdir.file("suspects.csv"), suspects.schema, "csv",
                         guard_formulas=True) as writer:
            writer.write(suspects)
        outputs = ["scores.parquet", "suspects.csv", f"quarantine.{fmt}", f"clean.{fmt}",
                   "summary.json", "report.html"]
        timings = dict(engine.timings, total=round(time.perf_counter() - started, 3))
        for name, seconds in getattr(engine, "check_seconds", {}).items():  # worker processes
            check_seconds[name] = check_seconds.get(name, 0.0) + seconds
        timings.update({f"check:{name}": round(seconds, 3)
                        for name, seconds in check_seconds.items()})
        summary = build_summary(config=cfg, source=source, schema=schema, fmt=fmt, run=run,
                                checks_skipped=skipped, timings=timings, outputs=outputs)
        details = collect_details(outdir, summary, suspects, run["plan"], source,
                                  top=cfg.report_top)
        outdir.file("report.html").write_text(
            html_report.render(summary, suspects, top=cfg.report_top, details=details),
            encoding="utf-8")
        write_json(summary, outdir.file("summary.json"))
        outdir.commit()
    _log_summary(summary)
    out = cfg.out if storage.is_url(cfg.out) else Path(cfg.out)
    return ScanResult(summary=summary, suspects=suspects.to_pandas(), out=out, _tmp=tmp)


def _not_text(kind: pa.DataType) -> bool:
    """Whether values of this type have no text of their own: nested values (structs,
    lists, maps) and bytes (which need not be UTF-8)."""
    return pa.types.is_nested(kind) or pa.types.is_binary(kind) \
        or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)


def _check_out_outside_inputs(source, out: str) -> None:
    """Refuse an output directory inside an input directory: the next scan of that
    directory would read the outputs as data (local paths and ``file://`` URLs; other
    stores are not compared)."""
    target = storage.local_path(out)
    if target is None:
        return
    items = source if isinstance(source, (list, tuple)) else [source]
    for item in items:
        directory = storage.local_path(item) if isinstance(item, (str, os.PathLike)) \
            else None
        if directory is not None and directory.is_dir():
            if target == directory or directory in target.parents:
                raise ConfigError(f"out: {out} is inside the input directory {item}; a scan "
                                  "of that directory would read the outputs as data: write "
                                  "them elsewhere")


def _check_output_names(source, cfg: ScanConfig, checks) -> None:
    """Refuse names the outputs would hold twice: an input column named like a column
    ``quarantine.<fmt>`` adds, and an id column named like a column of ``scores.parquet``
    or ``suspects.csv`` (they carry it next to their own)."""
    taken = [c for c in QUARANTINE_COLUMNS if c in source.arrow_schema.names]
    if taken:
        raise InputError(f"column {taken[0]!r} has the name of a column the quarantine file "
                         f"adds ({', '.join(QUARANTINE_COLUMNS)}): rename or drop "
                         "it (a quarantine file scanned again)", path=source.names[0])
    results = RESULT_COLUMNS + tuple(check.name for check in checks)
    if cfg.id_column in results:
        raise ConfigError(f"id_column: {cfg.id_column!r} is also a column of scores.parquet "
                          f"and suspects.csv ({', '.join(results)}): rename it in the data")


def _engine(cfg: ScanConfig):
    """The engine class of ``cfg.engine`` (only the Dask engine imports Dask)."""
    if cfg.engine == "dask":
        from .engines.dask import DaskRun
        return DaskRun
    return ScanRun


@contextlib.contextmanager
def _timed_checks(checks, seconds: dict[str, float]):
    """Time every call of each check's ``summarize``, ``merge``, ``fit`` and ``score``
    (summed per family into ``seconds``) while the block runs; used with ``verbose``."""
    patched = []
    for check in checks:
        seconds[check.name] = 0.0
        for method in pipeline.CONTRACT_METHODS:
            original = getattr(check, method, None)
            if original is None:
                continue
            setattr(check, method, pipeline.timed(original, check.name, seconds))
            patched.append((check, method))
    try:
        yield
    finally:
        for check, method in patched:
            vars(check).pop(method, None)


def _log_summary(summary: dict) -> None:
    """INFO: counts and the policy; DEBUG: timings and per-check detail."""
    rows = summary["rows"]
    logger.info("scanned %d rows: %d clean, %d quarantined", rows["in"], rows["clean"],
                rows["quarantined"])
    for stage, seconds in summary["timings_seconds"].items():
        logger.debug("timing %s: %.3f s", stage, seconds)
    for name, check in summary["checks"].items():
        learned = check.get("learned") or {}
        bounds = len(learned.get("ranges") or {}) + sum(
            len(v) for v in (learned.get("ranges_by_label") or {}).values()
            if isinstance(v, dict))
        logger.debug("check %s: %d rows flagged, %d quarantined%s", name,
                     check["rows_flagged"], check["rows_quarantined"],
                     f", {bounds} learned bounds" if bounds else "")
    for name, why in summary["checks_skipped"].items():
        logger.info("check %s skipped: %s", name, why)
    if summary["policy_exceeded"]:
        logger.warning("exit policy tripped: %s", ", ".join(summary["policy"]["tripped"]))


def profile(source, label: str | None = None, out: str | os.PathLike | None = None, *,
            config: str | Path | None = None,
            progress: Callable[[str, int, int | None], None] | None = None,
            **options: Any) -> dict:
    """Profile trusted data into a reference for later scans (``scan(..., reference=...)``).

    Streams ``source`` through pass 1 (the same sources, chunking and keyed sample as a
    scan), fits the bounds check on it and returns the profile document of
    :mod:`poisonscan.reference`: per column its type, robust range (the bound a scan
    applies), quantiles, categories with frequencies and null rate; the same per class; a
    layout version. The document is plain JSON, meant to be read, edited and committed.

    Parameters
    ----------
    source : path, glob, directory, list of those, pandas.DataFrame or pyarrow.Table
        The trusted data.
    label : str, optional
        Label column (per-class ranges and the class mix are recorded).
    out : path, optional
        Write the profile there (refused if it exists, unless ``overwrite=True``).
    config : path, optional
        A TOML file; its ``[bounds]`` parameters (``quantile``, ``margin``, ...) shape the
        learned ranges.
    progress : callable, optional
        ``progress(stage, rows_done, rows_total_or_None)`` after every chunk.
    **options
        ``id_column``, ``chunk_rows``, ``sample_rows``, ``seed``, ``overwrite`` and
        ``families`` as for :func:`scan`.

    Returns
    -------
    dict
        The profile document.

    Raises
    ------
    ConfigError, InputError, OutputExistsError
    """
    from . import reference
    from .checks.bounds import BoundsCheck

    arguments = dict(options, label=label)
    cfg = ScanConfig.resolve(arguments, config_file=config)
    if out is not None and Path(out).exists() and not cfg.overwrite:
        raise OutputExistsError(f"{out}: already exists; use --overwrite to replace it")
    source, schema = _open(source, cfg)
    params = {k: v for k, v in cfg.families.get("bounds", {}).items()
              if k not in ("reference", "columns", "by_label") and not isinstance(v, dict)}
    with located(cfg):
        check = BoundsCheck(**params)
        check._validate_params()
    engine = ScanRun(source, schema, [check], cfg, None, None, progress)
    state = engine.pass_one()
    check.fit(state.states[check.name], state.profile)
    doc = reference.build(check, state.profile, inputs=source.names, seed=cfg.seed)
    if out is not None:
        reference.write(doc, out, overwrite=cfg.overwrite)
    logger.info("profiled %d rows, %d columns%s", state.profile.n_rows, len(doc["columns"]),
                f" -> {out}" if out is not None else "")
    return doc


def _open(source, cfg: ScanConfig):
    """Open ``source`` and check that the label and id columns exist; ``(source, schema)``."""
    source = open_source(source, text_columns=[c for c in (cfg.label, cfg.id_column) if c]
                         + list(cfg.text_columns or ()))
    for role, column in (("label", cfg.label), ("id", cfg.id_column)):
        if column is not None and column not in source.arrow_schema.names:
            raise InputError(f"{role} column {column!r} not found (columns: "
                             f"{', '.join(source.arrow_schema.names[:20])})", path=source.names[0])
        if column is not None and _not_text(source.arrow_schema.field(column).type):
            raise InputError(f"{role} column {column!r} holds "
                             f"{source.arrow_schema.field(column).type}: a {role} must be text, "
                             "a number, a boolean or a date", path=source.names[0])
    return source, ScanSchema.build(source.arrow_schema, label=cfg.label, id_column=cfg.id_column,
                                    text_columns=cfg.text_columns or (),
                                    ignore_columns=cfg.ignore_columns or ())
