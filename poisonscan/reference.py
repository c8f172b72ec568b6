"""Reference profiles: what trusted data looks like, as plain JSON a person can read and edit.

``poisonscan profile TRUSTED... --label y -o profile.json`` streams trusted data (last
month's vetted rows) through pass 1 and writes :func:`build`'s document with
:func:`write`. ``poisonscan scan NEW... --reference profile.json`` loads it with
:func:`load`: its ranges, categories and classes become hard bounds of the bounds check,
and :func:`drift` compares the new data with it.

Layout (``poisonscan_profile`` is the layout version; keys not listed are ignored)::

    {
      "poisonscan_profile": 1,
      "rows": 2000, "label": "y", "inputs": [...], "seed": 0, "poisonscan_version": "...",
      "columns": {
        "age": {"type": "numeric", "integer": true, "nullable": false, "null_rate": 0.0,
                "count": 2000, "min": 18, "max": 90, "mean": 41.2, "std": 12.0,
                "range": {"min": 0, "max": 120},          <- the bound; edit it freely
                "quantiles": {"0.01": 19, "0.5": 40, ...},
                "bins": {"edges": [24, 31, ...], "shares": [0.1, ...]}},  <- drift
        "colour": {"type": "categorical", "nullable": true, "null_rate": 0.01,
                   "count": 1980, "categories": {"red": {"rows": 700, "share": 0.354}, ...}},
        "when": {"type": "datetime", "range": {"min": "2024-01-01T00:00:00", ...}, ...}
      },
      "labels": {"column": "y", "classes": {"pos": {"rows": 1200, "share": 0.6}, ...}},
      "by_label": {"pos": {"rows": 1200, "columns": {"age": {"range": {...}, ...}}}}
    }

A numeric ``range`` bound may be ``null`` on either side (no bound). A categorical column's
``categories`` are its allowed values (``null``: any value); a listed class is an allowed
label. ``nullable: false`` makes a missing cell a finding. Per-class ranges are bounds for
the rows of that class (on top of the column's range); per-class categories are
informational. An identifier-like column (most values distinct) gets no category bound.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ._version import __version__
from .errors import ConfigError, OutputExistsError
from .io.schema import CATEGORICAL, DATETIME

#: Layout version of the profile document.
PROFILE_VERSION = 1
#: Probabilities of the stored quantiles.
QUANTILES = (0.001, 0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9,
             0.95, 0.99, 0.999)
#: Deciles: the bins of the population stability index of a numeric column.
DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Categories stored per column (the most frequent; the rest are not allowed by the profile,
#: so a column with more is stored without a category bound).
MAX_PROFILE_CATEGORIES = 2000
#: Floor of a bin's share in the population stability index (an empty bin is not infinite).
PSI_FLOOR = 1e-4


# ============================================================================ build / write


def build(check, profile, *, inputs=(), seed: int = 0) -> dict[str, Any]:
    """The profile document of trusted data.

    Parameters
    ----------
    check : BoundsCheck
        Fitted on the trusted data (its learned ranges become the profile's ranges).
    profile : Profile
        The merged pass-1 profile of the trusted data.
    inputs : sequence of str
        Where the data came from (recorded).
    seed : int
        The sample's seed (recorded).
    """
    schema = profile.schema
    sample = profile.sample_chunk()
    n = profile.n_rows
    columns: dict[str, Any] = {}
    for column in schema.features:
        stats = profile.columns[column]
        kind = schema.kinds[column]
        entry: dict[str, Any] = {"type": kind, "arrow_type": str(schema.types[column])}
        missing = stats.missing
        entry["null_rate"] = _r(missing / n) if n else 0.0
        entry["nullable"] = missing > 0
        if kind == CATEGORICAL:
            entry.update(_categories(stats.counts, stats.count))
        else:
            fence = check.fences_.get(column)
            entry.update(_numeric(sample.numeric(column), stats, fence, kind))
        columns[column] = entry
    doc: dict[str, Any] = {
        "poisonscan_profile": PROFILE_VERSION,
        "poisonscan_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": [str(i) for i in inputs],
        "rows": n,
        "sample_rows": len(profile.sample),
        "seed": seed,
        "label": schema.label,
        "columns": columns,
    }
    if schema.label is not None and profile.labels is not None and profile.labels.counts:
        counts = profile.labels.counts
        total = sum(counts.values())
        doc["labels"] = {"column": schema.label, "missing": profile.labels.missing,
                         "classes": {c: {"rows": k, "share": _r(k / total)}
                                     for c, k in sorted(counts.items())}}
        labels = sample.labels()
        by_label = {}
        for cls in sorted(counts):
            rows = np.flatnonzero(labels == cls)
            entry = {"rows": counts[cls], "sample_rows": int(rows.size), "columns": {}}
            for column in schema.features:
                kind = schema.kinds[column]
                if kind == CATEGORICAL:
                    texts = sample.strings(column)[rows]
                    present = [t for t in texts if t is not None]
                    values, k = np.unique(np.asarray(present, dtype=str), return_counts=True) \
                        if present else (np.array([]), np.array([]))
                    sub = _categories(dict(zip(values.tolist(), k.tolist())), len(present))
                    sub["null_rate"] = _r(1 - len(present) / max(rows.size, 1))
                    entry["columns"][column] = sub
                else:
                    fence = check.class_fences_.get(cls, {}).get(column)
                    values = sample.numeric(column)[rows]
                    sub = _numeric(values, None, fence, kind)
                    sub["null_rate"] = _r(float(np.isnan(values).mean())) if rows.size else 0.0
                    if fence is None:
                        sub.pop("range", None)  # too few rows: the column's range applies
                    entry["columns"][column] = sub
            by_label[cls] = entry
        doc["by_label"] = by_label
    return doc


def _categories(counts: Mapping[str, int] | None, count: int) -> dict[str, Any]:
    """Categories with frequencies; ``None`` (any value allowed) for a column with too many
    distinct values or an identifier-like one (most values unique: new data has new ones)."""
    if counts is None or len(counts) > MAX_PROFILE_CATEGORIES \
            or (len(counts) > 20 and len(counts) > 0.5 * count):
        return {"count": count, "distinct": None if counts is None else len(counts),
                "categories": None}
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"count": count, "distinct": len(ordered),
            "categories": {v: {"rows": k, "share": _r(k / max(count, 1))} for v, k in ordered}}


def _numeric(values: np.ndarray, stats, fence, kind: str) -> dict[str, Any]:
    fmt = _iso if kind == DATETIME else _num
    finite = values[np.isfinite(values)]
    out: dict[str, Any] = {}
    if fence is not None and fence.integer:
        out["integer"] = True
    if stats is not None:
        d = stats.to_dict()
        out.update(count=d["count"], min=_opt(fmt, d["min"]), max=_opt(fmt, d["max"]))
        if kind != DATETIME:
            out.update(mean=d["mean"], std=d["std"])
    else:
        out["count"] = int(finite.size)
    out["range"] = {"min": _opt(fmt, fence.low), "max": _opt(fmt, fence.high)} \
        if fence is not None else {"min": None, "max": None}
    if fence is not None and fence.log:
        out["range_scale"] = "log1p"
    if finite.size:
        qs = np.quantile(finite, QUANTILES)
        out["quantiles"] = {_p(p): fmt(float(v)) for p, v in zip(QUANTILES, qs)}
        edges = np.unique(np.quantile(finite, DECILES, method="inverted_cdf"))
        cdf = np.searchsorted(np.sort(finite), edges, side="right") / finite.size
        out["bins"] = {"edges": [fmt(float(e)) for e in edges],
                       "shares": [_r(float(x)) for x in np.diff(np.concatenate([[0.0], cdf,
                                                                                 [1.0]]))]}
    return out


def write(doc: Mapping[str, Any], path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a profile as indented UTF-8 JSON, atomically.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists; use --overwrite to replace it")
    if path.exists() and path.is_dir():
        raise OutputExistsError(f"{path}: is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    # not tempfile.mkstemp: its file is private (0600); created with 0666 the umask
    # applies, so the profile gets the mode any other output gets
    tmp = path.parent / f".profile-{secrets.token_hex(8)}.json"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ============================================================================ load


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a profile; return its bounds in a normalised form.

    Returns
    -------
    dict
        ``{"path", "rows", "label", "columns": {name: {"type", "range": {"min", "max"}
        (floats or None; datetimes as epoch seconds), "nullable", "allowed" (list or None),
        "shares" ({value: share}), "quantiles" ([(p, value)]), "null_rate"}},
        "labels": {"column", "classes" (list), "shares", "rows"} or None,
        "by_label": {class: {"columns": {...}}}}``

    Raises
    ------
    ConfigError
        The file is missing, not JSON, of another layout version, or holds a bad value
        (the message names the file and the key, e.g. ``columns.age.range.min``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: reference profile not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read reference profile: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: reference profile is not valid JSON: "
                          f"{exc.msg}") from None

    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: {key} {message}")

    if not isinstance(doc, dict):
        raise bad("(top level)", "must be a JSON object")
    version = doc.get("poisonscan_profile")
    if version != PROFILE_VERSION:
        raise bad("poisonscan_profile", f"must be {PROFILE_VERSION} (this poisonscan's profile "
                                        f"layout), not {version!r}")
    raw_columns = doc.get("columns")
    if not isinstance(raw_columns, dict):
        raise bad("columns", "must be an object of columns")
    out: dict[str, Any] = {"path": str(path), "rows": doc.get("rows"), "label": doc.get("label"),
                           "columns": {c: _load_column(v, f"columns.{c}", bad, full=True)
                                       for c, v in raw_columns.items()},
                           "labels": None, "by_label": {}}
    labels = doc.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not isinstance(labels.get("classes"), dict):
            raise bad("labels.classes", "must be an object of classes")
        rows = {}
        for cls, info in labels["classes"].items():
            n = info.get("rows") if isinstance(info, dict) else info
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise bad(f"labels.classes.{cls}.rows", f"must be a count, not {n!r}")
            rows[str(cls)] = n
        total = sum(rows.values())
        out["labels"] = {"column": labels.get("column"), "classes": sorted(rows),
                         "rows": rows, "shares": {c: k / total if total else 0.0
                                                  for c, k in rows.items()}}
    by_label = doc.get("by_label") or {}
    if not isinstance(by_label, dict):
        raise bad("by_label", "must be an object of classes")
    for cls, info in by_label.items():
        cols = info.get("columns") if isinstance(info, dict) else None
        if not isinstance(cols, dict):
            raise bad(f"by_label.{cls}.columns", "must be an object of columns")
        out["by_label"][str(cls)] = {"columns": {
            c: _load_column(v, f"by_label.{cls}.columns.{c}", bad, full=False,
                            kind=out["columns"].get(c, {}).get("type"))
            for c, v in cols.items()}}
    return out


def _load_column(info: Any, key: str, bad, *, full: bool, kind: str | None = None) -> dict:
    if not isinstance(info, dict):
        raise bad(key, "must be an object")
    kind = info.get("type", kind)
    if kind not in ("numeric", "datetime", "categorical"):
        raise bad(f"{key}.type", f"must be numeric, datetime or categorical, not {kind!r}")
    col: dict[str, Any] = {"type": kind, "range": {"min": None, "max": None}, "nullable": None,
                           "allowed": None, "shares": {}, "quantiles": [],
                           "null_rate": info.get("null_rate")}
    nullable = info.get("nullable")
    if nullable is not None and not isinstance(nullable, bool):
        raise bad(f"{key}.nullable", f"must be true or false, not {nullable!r}")
    col["nullable"] = nullable
    rate = info.get("null_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or not 0 <= rate <= 1):
        raise bad(f"{key}.null_rate", f"must be a share in [0, 1], not {rate!r}")
    if kind == "categorical":
        cats = info.get("categories")
        if cats is not None:
            if not isinstance(cats, dict):
                raise bad(f"{key}.categories", "must be an object of values (or null)")
            rows = {}
            for value, v in cats.items():
                n = v.get("rows", 0) if isinstance(v, dict) else v
                if isinstance(n, bool) or not isinstance(n, (int, float)) or n < 0:
                    raise bad(f"{key}.categories.{value}", f"must hold a row count, not {v!r}")
                rows[str(value)] = float(n)
            total = sum(rows.values())
            col["allowed"] = sorted(rows)
            col["shares"] = {v: n / total if total else 0.0 for v, n in rows.items()}
        return col
    conv = _seconds if kind == "datetime" else _number
    rng = info.get("range")
    if rng is not None:
        if not isinstance(rng, dict):
            raise bad(f"{key}.range", "must be an object with min and max")
        for side in ("min", "max"):
            value = rng.get(side)
            if value is not None:
                converted = conv(value)
                if converted is None:
                    what = "a date" if kind == "datetime" else "a number"
                    raise bad(f"{key}.range.{side}", f"must be {what} or null, not {value!r}")
                col["range"][side] = converted
        lo, hi = col["range"]["min"], col["range"]["max"]
        if lo is not None and hi is not None and lo > hi:
            raise bad(f"{key}.range", f"min {rng.get('min')!r} is above max {rng.get('max')!r}")
    quantiles = info.get("quantiles") or {}
    if not isinstance(quantiles, dict):
        raise bad(f"{key}.quantiles", "must be an object of probability: value")
    pairs = []
    for p, v in quantiles.items():
        try:
            prob = float(p)
        except ValueError:
            raise bad(f"{key}.quantiles", f"has a key that is not a probability: {p!r}") from None
        value = conv(v)
        if value is None or not 0 <= prob <= 1:
            raise bad(f"{key}.quantiles.{p}", f"must be a value at a probability in [0, 1], "
                                              f"not {v!r}")
        pairs.append((prob, value))
    col["quantiles"] = sorted(pairs)
    bins = info.get("bins")
    col["bins"] = None
    if bins is not None:
        edges = bins.get("edges") if isinstance(bins, dict) else None
        shares = bins.get("shares") if isinstance(bins, dict) else None
        if not isinstance(edges, list) or not isinstance(shares, list) \
                or len(shares) != len(edges) + 1:
            raise bad(f"{key}.bins", "must hold edges and one more share than edges")
        edges = [conv(e) for e in edges]
        if any(e is None for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
            raise bad(f"{key}.bins.edges", "must be increasing values")
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 for x in shares):
            raise bad(f"{key}.bins.shares", "must be shares >= 0")
        col["bins"] = (np.asarray(edges, dtype=float), np.asarray(shares, dtype=float))
    return col


# ============================================================================ drift


def drift(ref: Mapping[str, Any], profile, threshold: float) -> dict[str, Any]:
    """Shift of the scanned data against a loaded reference.

    Class mix: rows and share per class against the reference, and the population
    stability index (PSI) of the class shares. Numeric columns: PSI over the reference's
    decile bins (``bins``: their edges and the reference's exact share in each) and the
    largest gap between the two distribution functions at those edges (a Kolmogorov-Smirnov
    distance), on the scanned data's row sample; a profile without ``bins`` is compared at
    its stored quantiles. Categorical columns: PSI of category shares (whole
    data). A PSI above ``threshold`` flags the column (or the class mix).

    Returns
    -------
    dict
        ``{"threshold", "flagged", "labels", "columns", "missing_columns", "new_columns"}``
        with plain JSON values.
    """
    schema = profile.schema
    out: dict[str, Any] = {"threshold": threshold, "flagged": False, "labels": None,
                           "columns": {}, "missing_columns": [], "new_columns": []}
    flagged = []
    ref_labels = ref.get("labels")
    if ref_labels is not None and profile.labels is not None and profile.labels.counts is not None:
        counts = profile.labels.counts
        total = sum(counts.values())
        classes = sorted(set(ref_labels["classes"]) | set(counts))
        expected = np.array([ref_labels["shares"].get(c, 0.0) for c in classes])
        actual = np.array([counts.get(c, 0) / total if total else 0.0 for c in classes])
        value = psi(expected, actual)
        per_class = {}
        for c, e, a in zip(classes, expected, actual):
            per_class[c] = {"reference_rows": ref_labels["rows"].get(c, 0),
                            "rows": counts.get(c, 0), "reference_share": _r(e),
                            "share": _r(a), "ratio": _r(a / e) if e > 0 else None}
        flag = bool(value > threshold)
        out["labels"] = {"column": schema.label, "psi": _d(value), "flag": flag,
                         "classes": per_class}
        if flag:
            flagged.append(f"labels (PSI {value:.3g})")
    sample = profile.sample_chunk()
    for column in schema.features:
        info = ref["columns"].get(column)
        if info is None:
            out["new_columns"].append(column)
            continue
        kind = schema.kinds[column]
        stats = profile.columns[column]
        rows = stats.count + stats.missing
        entry: dict[str, Any] = {"null_rate": _r(stats.missing / rows) if rows else 0.0,
                                 "reference_null_rate": info.get("null_rate")}
        if kind == CATEGORICAL:
            if info["type"] != "categorical" or not info["shares"] or stats.counts is None:
                continue
            cats = sorted(set(info["shares"]) | set(stats.counts))
            total = sum(stats.counts.values())
            expected = np.array([info["shares"].get(v, 0.0) for v in cats])
            actual = np.array([stats.counts.get(v, 0) / total if total else 0.0 for v in cats])
            entry["psi"] = _d(psi(expected, actual))
            unseen = sum(stats.counts.get(v, 0) for v in cats if v not in info["shares"])
            entry["unseen_share"] = _r(unseen / total) if total else 0.0
        else:
            if info["type"] == "categorical" or (len(info["quantiles"]) < 2
                                                 and info["bins"] is None):
                continue
            values = sample.numeric(column)
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            if info["bins"] is not None:
                edges, shares = info["bins"]
                cur = np.diff(np.concatenate([[0.0], np.searchsorted(
                    np.sort(values), edges, side="right") / values.size, [1.0]]))
                entry["psi"] = _d(psi(shares, cur))
                entry["ks"] = _d(float(np.max(np.abs(np.cumsum(cur) - np.cumsum(shares)))))
            else:
                entry["psi"] = _d(numeric_psi(info["quantiles"], values))
                entry["ks"] = _d(quantile_ks(info["quantiles"], values))
        entry["flag"] = bool(entry["psi"] > threshold)
        if entry["flag"]:
            flagged.append(f"{column} (PSI {entry['psi']:.3g})")
        out["columns"][column] = entry
    out["missing_columns"] = sorted(set(ref["columns"]) - set(schema.features))
    out["flagged"] = bool(flagged)
    out["flagged_items"] = flagged
    return out


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` with shares floored."""
    e = np.maximum(np.asarray(expected, dtype=float), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _reference_cdf(quantiles: list[tuple[float, float]], edges: np.ndarray) -> np.ndarray:
    """``F_ref(edge)``: the largest stored probability whose quantile is at most the edge."""
    probs = np.array([p for p, _ in quantiles])
    values = np.array([v for _, v in quantiles])
    idx = np.searchsorted(values, edges, side="right") - 1
    return np.where(idx >= 0, probs[np.clip(idx, 0, None)], 0.0)


def numeric_psi(quantiles: list[tuple[float, float]], values: np.ndarray) -> float:
    """PSI of ``values`` over the reference's decile bins (ties merged)."""
    table = dict(quantiles)
    deciles = [table[p] for p in DECILES if p in table]
    if not deciles:
        deciles = [v for _, v in quantiles]
    edges = np.unique(np.asarray(deciles, dtype=float))
    ref_cdf = np.concatenate([[0.0], _reference_cdf(quantiles, edges), [1.0]])
    cur_cdf = np.concatenate([[0.0], np.searchsorted(np.sort(values), edges, side="right")
                              / values.size, [1.0]])
    return psi(np.diff(ref_cdf), np.diff(cur_cdf))


def quantile_ks(quantiles: list[tuple[float, float]], values: np.ndarray) -> float:
    """Largest gap between the two distribution functions at the reference's quantiles."""
    edges = np.unique(np.array([v for p, v in quantiles if 0 < p < 1], dtype=float))
    if not edges.size:
        return 0.0
    ref_cdf = _reference_cdf(quantiles, edges)
    cur_cdf = np.searchsorted(np.sort(values), edges, side="right") / values.size
    return float(np.max(np.abs(cur_cdf - ref_cdf)))


# ============================================================================ helpers


def _r(x: float, digits: int = 6) -> float:
    return float(f"{x:.{digits}g}")


def _d(x: float) -> float:
    """A distance rounded to 6 decimals (so that no shift reads as 0.0)."""
    return round(float(x), 6) + 0.0


def _p(p: float) -> str:
    return f"{p:g}"


def _num(x: float) -> float | int:
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return int(x)
    return float(f"{x:.10g}")


def _iso(seconds: float) -> str:
    try:
        return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def _opt(fmt, x):
    return None if x is None or not math.isfinite(x) else fmt(x)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            stamp = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=_dt.timezone.utc)
        return stamp.timestamp()
    return _number(value)
