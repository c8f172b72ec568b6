"""``summary.json``: counts, decision, learned bounds, config, timings and version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .._version import __version__

#: Version of the summary's layout; bumped when a key changes meaning or disappears.
SUMMARY_SCHEMA_VERSION = 1


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
        "columns": {c: {"kind": schema.kinds[c], **profile.columns[c].to_dict()}
                    for c in schema.features},
        "skipped_columns": dict(schema.skipped),
        "checks": {
            c.name: {"rows_flagged": run["fired"].get(c.name, 0),
                     "rows_quarantined": quarantined_by.get(c.name, 0),
                     "params": c.get_params(), "learned": c.describe()}
            for c in plan.checks},
        "checks_skipped": dict(checks_skipped),
        "decision": run["decision"],
        "fail_above": config.fail_above,
        "policy_exceeded": policy_exceeded(config.fail_above, run["rows_quarantined"], n),
        "sample_rows": len(profile.sample),
        "seed": config.seed,
        "config": config.as_dict(),
        "outputs": outputs,
        "timings_seconds": timings,
    }


def policy_exceeded(fail_above: float | None, quarantined: int, rows: int) -> bool:
    """Whether the quarantined fraction breaks ``--fail-above``."""
    return fail_above is not None and rows > 0 and quarantined / rows > fail_above


def write_json(summary: dict, path: Path) -> None:
    """Write the summary as UTF-8 JSON (stable key order as built)."""
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                    encoding="utf-8")
