"""``summary.json``: counts, decision, learned bounds, drift, config, timings and version.

The exit policy is recorded under ``policy``: ``fail_above``, ``fail_on`` (families),
``fail_on_rows`` (quarantined rows per ``fail_on`` family) and ``tripped`` (the rules that
made the scan exceed its policy, a subset of ``["fail_above", "fail_on"]``);
``policy_exceeded`` is true exactly when ``tripped`` is not empty. The layout is described by
the JSON Schema ``summary.schema.json`` next to this module (:data:`SCHEMA_PATH`).

The ``bounds`` check adds ``violations_by_column`` (rows per column and broken bound, e.g.
``{"age": {"min (learned)": 3, "max (declared)": 1}}``) and, with a reference profile, the
top-level ``drift`` (class mix and per-column shift against it, with flags).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._version import __version__

#: Version of the summary's layout; bumped when a key changes meaning or disappears.
SUMMARY_SCHEMA_VERSION = 1
#: The JSON Schema of ``summary.json`` (shipped with the package).
SCHEMA_PATH = Path(__file__).with_name("summary.schema.json")


def load_schema() -> dict[str, Any]:
    """The JSON Schema of ``summary.json`` as a dict."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def build_summary(*, config, source, schema, fmt: str, run: dict, checks_skipped: dict,
                  timings: dict, outputs: list[str]) -> dict[str, Any]:
    """Assemble the summary of a finished scan (plain JSON values only)."""
    plan = run["plan"]
    profile = plan.profile
    n = profile.n_rows
    suspects: pa.Table = run["suspects"]
    quarantined_by = {f: 0 for f in plan.families}
    if suspects.num_rows:
        names = pc.list_flatten(pc.split_pattern(suspects.column("checks").drop_null(), ","))
        for item in pc.value_counts(names).to_pylist():
            quarantined_by[item["values"]] = item["counts"]
    label = None
    if schema.label is not None:
        label = {"column": schema.label, **profile.labels.to_dict(top=50)}
    return {
        "summary_schema_version": SUMMARY_SCHEMA_VERSION,
        "poisonscan_version": __version__,
        "inputs": list(source.names),
        "input_format": source.fmt,
        "output_format": fmt,
        "rows": {"in": n, "clean": run["rows_clean"], "quarantined": run["rows_quarantined"],
                 "quarantined_fraction": round(run["rows_quarantined"] / n, 6)},
        "label": label,
        "id_column": schema.id_column,
        "columns": {**{c: {"kind": _encoded_kind(profile, c, schema.kinds[c]),
                           **profile.columns[c].to_dict()} for c in schema.features},
                    **{c: {"kind": "vector", **profile.vectors[c].to_dict()}
                       for c in schema.vectors if c in profile.vectors}},
        "skipped_columns": dict(schema.skipped),
        "checks": {
            c.name: {"rows_flagged": run["fired"].get(c.name, 0),
                     "rows_quarantined": quarantined_by.get(c.name, 0),
                     "params": _plain(c.get_params()), "learned": c.describe(),
                     **({"violations_by_column": run["bounds_tally"]}
                        if c.name == "bounds" and run.get("bounds_tally") is not None else {})}
            for c in plan.checks},
        "drift": _drift(plan),
        "checks_skipped": dict(checks_skipped),
        "decision": run["decision"],
        "fail_above": config.fail_above,
        **_policy(config, run["rows_quarantined"], n, quarantined_by),
        "sample_rows": len(profile.sample),
        "seed": config.seed,
        "config": _plain(config.as_dict()),
        "outputs": outputs,
        "timings_seconds": timings,
    }


def _drift(plan) -> dict | None:
    """Shift against the reference profile (``None`` without a reference)."""
    bounds = next((c for c in plan.checks if c.name == "bounds"), None)
    return getattr(bounds, "drift_", None)


def _plain(value: Any) -> Any:
    """``value`` with dates/times as ISO text and tuples as lists (config tables may hold
    TOML dates)."""
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _policy(config, quarantined: int, rows: int, quarantined_by: dict) -> dict[str, Any]:
    """``policy_exceeded`` and ``policy`` (the exit policy, and which rules tripped)."""
    fail_on = list(getattr(config, "fail_on", None) or [])
    tripped = []
    if policy_exceeded(config.fail_above, quarantined, rows):
        tripped.append("fail_above")
    fail_on_rows = {f: quarantined_by.get(f, 0) for f in fail_on}
    if any(fail_on_rows.values()):
        tripped.append("fail_on")
    return {
        "policy_exceeded": bool(tripped),
        "policy": {"fail_above": config.fail_above,
                   "quarantined_fraction": round(quarantined / rows, 6) if rows else 0.0,
                   "fail_on": fail_on,
                   "fail_on_rows": fail_on_rows,
                   "tripped": tripped},
    }


def policy_exceeded(fail_above: float | None, quarantined: int, rows: int) -> bool:
    """Whether the quarantined fraction breaks ``--fail-above``."""
    return fail_above is not None and rows > 0 and quarantined / rows > fail_above


def write_json(summary: dict, path: Path) -> None:
    """Write the summary as UTF-8 JSON (stable key order as built)."""
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")


def _encoded_kind(profile, column: str, kind: str) -> str:
    """``"text"`` for a categorical column the shared encoder featurised as free text."""
    encoder = profile.shared.get("encoder")
    return "text" if encoder is not None and column in encoder.text_ else kind
