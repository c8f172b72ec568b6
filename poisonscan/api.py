"""The library entry point: :func:`scan` and its :class:`ScanResult`."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .checks.registry import build_checks
from .config import ScanConfig
from .engines.local import ScanRun
from .errors import InputError
from .io.schema import ScanSchema
from .io.sinks import OutputDir, TableWriter
from .io.sources import open_source
from .report import html as html_report
from .report.summary import build_summary, write_json


@dataclasses.dataclass
class ScanResult:
    """What a scan found.

    Attributes
    ----------
    summary : dict
        The content of ``summary.json``.
    suspects : pandas.DataFrame
        The ranked suspects (the content of ``suspects.csv``).
    out : pathlib.Path
        The directory holding every output file.
    """

    summary: dict
    suspects: pd.DataFrame
    out: Path
    _tmp: Any = dataclasses.field(default=None, repr=False)

    @property
    def policy_exceeded(self) -> bool:
        """Whether the quarantined fraction broke ``fail_above`` (the CLI then exits 1)."""
        return bool(self.summary["policy_exceeded"])

    def scores(self) -> pd.DataFrame:
        """One row per input row: ``row``, ``score``, ``suspect`` and the family scores."""
        return pq.read_table(self.out / "scores.parquet").to_pandas()

    def _data(self, stem: str) -> pd.DataFrame:
        fmt = self.summary["output_format"]
        path = self.out / f"{stem}.{fmt}"
        if fmt == "parquet":
            return pq.read_table(path).to_pandas()
        return pacsv.read_csv(path).to_pandas()

    def clean(self) -> pd.DataFrame:
        """The clean rows (reads ``clean.<fmt>``)."""
        return self._data("clean")

    def quarantine(self) -> pd.DataFrame:
        """The quarantined rows with ``_row``, ``_score`` and ``_reason``."""
        return self._data("quarantine")


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
    out : path, optional
        Output directory. Without it the outputs go to a temporary directory that lives
        as long as the returned result.
    config : path, optional
        A TOML file to read options from (``poisonscan.toml``, or a ``pyproject.toml``
        with a ``[tool.poisonscan]`` table). Keyword options override it.
    progress : callable, optional
        ``progress(stage, rows_done, rows_total_or_None)`` after every chunk.
    **options
        Any option of :data:`poisonscan.config.OPTIONS` (``id_column``, ``chunk_rows``,
        ``sample_rows``, ``seed``, ``format``, ``max_suspects``, ``contamination``,
        ``fail_above``, ``overwrite``, ``checks``), and ``families`` (per-family parameters).

    Returns
    -------
    ScanResult

    Raises
    ------
    ConfigError, InputError, OutputExistsError
        Bad options, unreadable or unsuitable input, an output directory holding a scan.
    """
    started = time.perf_counter()
    arguments = dict(options, label=label)
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="poisonscan-")
        arguments["out"] = tmp.name
    else:
        arguments["out"] = str(out)
    cfg = ScanConfig.resolve(arguments, config_file=config)

    source = open_source(source, text_columns=[c for c in (cfg.label, cfg.id_column) if c])
    for role, column in (("label", cfg.label), ("id", cfg.id_column)):
        if column is not None and column not in source.arrow_schema.names:
            raise InputError(f"{role} column {column!r} not found (columns: "
                             f"{', '.join(source.arrow_schema.names[:20])})", path=source.names[0])
    schema = ScanSchema.build(source.arrow_schema, label=cfg.label, id_column=cfg.id_column)
    checks, skipped = build_checks(cfg.checks, cfg.families, has_label=cfg.label is not None)
    if cfg.label is None:
        skipped.setdefault("label-dependent checks", "no label column given")
    fmt = cfg.format or source.fmt

    with OutputDir(cfg.out, overwrite=cfg.overwrite) as outdir:
        engine = ScanRun(source, schema, checks, cfg, outdir, fmt, progress)
        run = engine.run()
        suspects: pa.Table = run["suspects"]
        with TableWriter(outdir.file("suspects.csv"), suspects.schema, "csv",
                         guard_formulas=True) as writer:
            writer.write(suspects)
        outputs = ["scores.parquet", "suspects.csv", f"quarantine.{fmt}", f"clean.{fmt}",
                   "summary.json", "report.html"]
        timings = dict(engine.timings, total=round(time.perf_counter() - started, 3))
        summary = build_summary(config=cfg, source=source, schema=schema, fmt=fmt, run=run,
                                checks_skipped=skipped, timings=timings, outputs=outputs)
        outdir.file("report.html").write_text(html_report.render(summary, suspects),
                                              encoding="utf-8")
        write_json(summary, outdir.file("summary.json"))
        outdir.commit()
    return ScanResult(summary=summary, suspects=suspects.to_pandas(), out=Path(cfg.out), _tmp=tmp)

