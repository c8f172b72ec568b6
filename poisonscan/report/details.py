"""What the review page shows beyond ``summary.json``, gathered at the end of a scan.

:func:`collect_details` reads the staged scan files (``scores.parquet`` and the
quarantine file, streamed) and the fitted plan, and returns plain data for
:mod:`poisonscan.report.html`:

* the histogram of every row's score (the threshold is in the summary);
* suspects per class (all suspects, from the quarantine file);
* for the top suspects: their cell values (as text), their label, the columns their
  reasons name, the labels of their nearest neighbours when the ``labels`` family said
  so, and their feature fingerprint (what ``--allowlist`` matches rows by);
* for the numeric columns those reasons name: the distribution of the column on the
  row sample, its learned and declared bounds, and where the top suspects' values sit
  (on a ``log1p`` axis where the bounds check learned the column on that scale).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io.chunk import Chunk
from ..io.schema import CATEGORICAL, NUMERIC, is_vector_type
from ..io.sinks import QUARANTINE_COLUMNS
from ..profiling import shorten
from ..review import _Blocks, fingerprint_rows, format_fingerprint, parquet_parts

#: Bins of the score histogram (scores lie in ``[0, 2)``).
SCORE_BINS = 40
#: Numeric columns given a distribution plot at most.
MAX_COLUMN_PLOTS = 8
#: Categorical columns given a frequency plot at most.
MAX_CATEGORY_PLOTS = 4
#: Most frequent categories shown beside the suspects' values.
TOP_CATEGORIES = 6
#: Suspects marked on one column's plot at most.
MAX_POINTS = 25
#: Bins of a column's histogram.
COLUMN_BINS = 30
#: Classes listed in the suspects-per-class plot at most (the rest are summed).
MAX_CLASSES = 20
#: Characters of a text cell shown in the report (the rest is cut, with the full length).
MAX_CELL_CHARS = 500
#: Components of a vector cell shown in the report.
VECTOR_SHOWN = 6
_NEIGHBOURS = re.compile(r"(\d+)/(\d+) neighbours ('(?:[^'\\]|\\.)*'|\S+)")


def collect_details(outdir, summary: dict, suspects: pa.Table, plan, source, *,
                    top: int) -> dict[str, Any]:
    """The page's data for a finished scan (see the module docstring).

    Parameters
    ----------
    outdir : OutputDir
        The entered output directory (its staged files are read).
    summary : dict
        The scan's summary.
    suspects : pyarrow.Table
        The ranked suspects.
    plan : Plan
        The fitted plan (row sample, fitted checks).
    source : Source
        The scan's input (its typed schema).
    top : int
        Suspects shown on the page.

    Returns
    -------
    dict
        ``score_histogram``, ``per_class``, ``rows`` (by row id) and ``columns``.
    """
    schema = plan.schema
    fmt = summary["output_format"]
    top_rows = suspects.column("row").slice(0, top).to_numpy() if suspects.num_rows else \
        np.zeros(0, dtype=np.int64)
    details: dict[str, Any] = {"score_histogram": _score_histogram(outdir.file("scores.parquet"))}
    rows, per_class = _suspect_rows(outdir.file(f"quarantine.{fmt}"), fmt, top_rows, schema,
                                    source.arrow_schema)
    details["per_class"] = per_class
    bounds = next((c for c in plan.checks if c.name == "bounds"), None)
    listed = suspects.slice(0, top)
    reasons = dict(zip(listed.column("row").to_pylist(), listed.column("reason").to_pylist()))
    names = list(source.arrow_schema.names)
    for row, info in rows.items():
        reason = reasons.get(row) or ""
        named = bounds.tally([reason], names) if bounds is not None and hasattr(bounds, "tally") \
            else {}
        info["columns"] = [c for c in named if c in names]
        found = _NEIGHBOURS.search(reason)
        info["neighbours"] = f"{found.group(1)}/{found.group(2)} say {found.group(3)}" \
            if found else None
    details["rows"] = rows
    details["columns"] = _column_plots(plan, bounds, summary, rows, suspects)
    details["categories"] = _category_plots(plan.schema, summary, rows)
    return details


def _category_plots(schema, summary: dict, rows: dict[int, dict]) -> dict[str, dict]:
    """For the categorical columns the top suspects' reasons name: the most frequent
    categories and the suspects' values, with their row counts (``None``: not known)."""
    categorical = set(schema.of_kind(CATEGORICAL))
    learned = ((summary["checks"].get("bounds") or {}).get("learned") or {})
    out: dict[str, dict] = {}
    for info in rows.values():
        for column in info["columns"]:
            if column not in categorical or column == schema.label:
                continue
            if column not in out:
                if len(out) >= MAX_CATEGORY_PLOTS:
                    continue
                stats = summary["columns"].get(column) or {}
                out[column] = {"rows": stats.get("count", 0), "top": stats.get("top") or {},
                               "suspects": {},
                               "known": {**(stats.get("top") or {}),
                                         **(learned.get("rare_values") or {}).get(column, {})}}
            plot = out[column]
            value = info["values"].get(column)
            if value is None or len(plot["suspects"]) >= MAX_POINTS:
                continue
            entry = plot["suspects"].setdefault(value, {"count": plot["known"].get(value),
                                                        "rows": []})
            entry["rows"].append(info["row"])
    for plot in out.values():
        plot.pop("known")
        plot["top"] = dict([(v, c) for v, c in plot["top"].items()
                            if v not in plot["suspects"]][:TOP_CATEGORIES])
    return out


def _score_histogram(path) -> dict[str, Any]:
    """Rows per score bin, clean and quarantined; clean rows scoring 1 or more."""
    edges = np.linspace(0.0, 2.0, SCORE_BINS + 1)
    clean = np.zeros(SCORE_BINS, dtype=np.int64)
    quarantined = np.zeros(SCORE_BINS, dtype=np.int64)
    for batch in (b for part in parquet_parts(path) for b in pq.ParquetFile(
            part, pre_buffer=False).iter_batches(columns=["score", "suspect"],
                                                 batch_size=1 << 18)):
        values = np.clip(batch.column(0).to_numpy(zero_copy_only=False), 0.0, 1.999999)
        suspect = np.asarray(batch.column(1).to_numpy(zero_copy_only=False), dtype=bool)
        clean += np.histogram(values[~suspect], bins=edges)[0]
        quarantined += np.histogram(values[suspect], bins=edges)[0]
    findings_left = int(clean[edges[:-1] >= 1.0].sum())
    return {"edges": [round(float(e), 4) for e in edges], "clean": clean.tolist(),
            "quarantined": quarantined.tolist(), "clean_findings": findings_left}


def _suspect_rows(path, fmt: str, top_rows: np.ndarray, schema, typed_schema: pa.Schema
                  ) -> tuple[dict[int, dict], dict[str, int]]:
    """Values, label and fingerprint of the top suspects; suspects per class."""
    blocks = _Blocks(path, fmt, guarded=True)
    wanted = pa.array(np.sort(top_rows), pa.int64())
    label = schema.label
    per_class: dict[str, int] = {}
    rows: dict[int, dict] = {}
    originals = [n for n in blocks.schema.names if n not in QUARANTINE_COLUMNS]
    for table in blocks.tables(unguard=True):
        if label is not None:
            for item in pc.value_counts(pc.cast(table.column(label), pa.string())).to_pylist():
                key = "(missing)" if item["values"] in (None, "") else item["values"]
                per_class[key] = per_class.get(key, 0) + item["counts"]
        picked = table.filter(pc.is_in(table.column("_row"), value_set=wanted))
        if picked.num_rows == 0:
            continue
        data = picked.select(originals)
        typed, errors = _typed(data, typed_schema, fmt)
        chunk = Chunk(typed, picked.column("_row").to_numpy(), schema, errors, "<quarantine>")
        prints = fingerprint_rows(chunk)
        texts = {c: _texts(data.column(c)) for c in originals}
        for i, row in enumerate(picked.column("_row").to_pylist()):
            rows[row] = {
                "row": row,
                "values": {c: texts[c][i] for c in originals},
                "label": texts[label][i] if label is not None else None,
                "fingerprint": format_fingerprint(prints[i]),
            }
    ordered = dict(sorted(per_class.items(), key=lambda kv: (-kv[1], kv[0])))
    if len(ordered) > MAX_CLASSES:
        items = list(ordered.items())
        ordered = dict(items[:MAX_CLASSES - 1])
        ordered["(other classes)"] = sum(v for _, v in items[MAX_CLASSES - 1:])
    return {r: rows[r] for r in top_rows.tolist() if r in rows}, ordered


def _typed(data: pa.Table, typed_schema: pa.Schema, fmt: str):
    """The quarantined rows typed as the scan typed them (``(table, cell_errors)``)."""
    if fmt == "csv":
        from ..io.sources import _convert  # the CSV source's own typing of text cells
        return _convert(data, typed_schema)
    return data.cast(typed_schema), {}


def _texts(column: pa.ChunkedArray) -> list[str | None]:
    """The cells as display text: vectors as their first components, long text cut.

    A column Arrow cannot cast to text -- a struct, map or list of text, bytes that are not
    UTF-8 (the columns no check reads, carried to the outputs) -- is shown by
    :func:`format_value` of its Python values. The text is escaped where it is rendered.
    """
    if is_vector_type(column.type):
        return [None if v is None else format_vector(v) for v in column.to_pylist()]
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        try:
            column = pc.cast(column, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            return [None if v is None else shorten(format_value(v), MAX_CELL_CHARS)
                    for v in column.to_pylist()]
    return [None if v is None else shorten(v, MAX_CELL_CHARS) for v in column.to_pylist()]


def format_value(value: Any) -> str:
    """A cell's Python value (as ``to_pylist`` gives it) as text.

    Bytes are decoded as UTF-8, with an invalid byte shown escaped (``\\xff``). A nested
    value (a struct's dict, a list, a map's ``(key, value)`` pairs) is JSON, its bytes
    decoded so and its other non-JSON values (dates, decimals) as their ``str``.

    Examples
    --------
    >>> format_value(b"caf\\xe9")
    'caf\\\\xe9'
    >>> format_value({"a": [1, None], "b": b"x"})
    '{"a": [1, null], "b": "x"}'
    """
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="backslashreplace")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=lambda v: format_value(v)
                      if isinstance(v, (bytes, bytearray)) else str(v))


def format_vector(values: list, shown: int = VECTOR_SHOWN) -> str:
    """``[0.125, -1.5, …] (768 values)``: the first ``shown`` components of a vector."""
    head = ", ".join("null" if v is None else f"{v:.4g}" for v in values[:shown])
    more = ", …" if len(values) > shown else ""
    return f"[{head}{more}] ({len(values)} values)"


def _column_plots(plan, bounds, summary: dict, rows: dict[int, dict], suspects: pa.Table
                  ) -> dict[str, dict]:
    """Distribution, bounds and top-suspect values of the numeric columns reasons name."""
    schema = plan.schema
    numeric = schema.of_kind(NUMERIC)
    order: list[str] = []
    for info in rows.values():
        for column in info["columns"]:
            if column in numeric and column not in order:
                order.append(column)
    order = order[:MAX_COLUMN_PLOTS]
    if not order:
        return {}
    sample = plan.profile.sample_chunk()
    declared = ((summary["checks"].get("bounds") or {}).get("learned") or {}).get("declared") or {}
    out: dict[str, dict] = {}
    for column in order:
        values = sample.numeric(column)
        values = values[np.isfinite(values)]
        fence = getattr(bounds, "fences_", {}).get(column) if bounds is not None else None
        marks = {}
        if fence is not None:
            marks["learned min"], marks["learned max"] = fence.low, fence.high
            marks["learned floor"], marks["learned ceiling"] = fence.floor, fence.ceiling
        spec = declared.get(column) or {}
        for key in ("min", "max"):
            if isinstance(spec.get(key), (int, float)) and not isinstance(spec.get(key), bool):
                marks[f"declared {key}"] = float(spec[key])
        log = bool(getattr(fence, "log", False))
        marks = {k: _scaled(float(v), log) for k, v in marks.items()
                 if v is not None and math.isfinite(v)}
        values = np.sign(values) * np.log1p(np.abs(values)) if log else values
        points = []
        for row, info in rows.items():
            if column in info["columns"] and len(points) < MAX_POINTS:
                points.append({"row": row, "text": info["values"].get(column)})
        if len(values):
            low, high = np.quantile(values, [0.005, 0.995])
        else:
            low, high = 0.0, 1.0
        low = min([low] + list(marks.values()))
        high = max([high] + list(marks.values()))
        if not high > low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, COLUMN_BINS + 1)
        counts = np.histogram(np.clip(values, low, high), bins=edges)[0] if len(values) \
            else np.zeros(COLUMN_BINS, dtype=np.int64)
        for point in points:
            value = _number(point["text"])
            point["value"] = None if value is None else _scaled(value, log)
        out[column] = {"edges": [float(e) for e in edges], "counts": counts.tolist(),
                       "sample_rows": int(len(values)), "marks": marks, "points": points,
                       "scale": "log1p" if log else "linear"}
    return out


def _scaled(value: float, log: bool) -> float:
    """``value`` on the plot's axis: ``sign * log1p(|value|)`` for a log-scaled column."""
    return math.copysign(math.log1p(abs(value)), value) if log else value


def _number(text: str | None) -> float | None:
    """A cell's value as a number for plotting (``None`` when it is not one)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
