"""``report.html``: one self-contained page for the reviewer.

Every value that comes from the data (cell values inside reasons, column names, ids,
file names) is attacker-controlled and goes through :func:`html.escape`. The page loads
nothing from the network, and its Content-Security-Policy forbids it to.
"""

from __future__ import annotations

import html
import json
from typing import Any, Iterable

import pyarrow as pa

#: Suspects listed in the page (the full list is in suspects.csv).
TOP_SUSPECTS = 500

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right}
.muted{color:#666}.reason{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-word}
.kpi{display:inline-block;margin:0 2em .5em 0}.kpi b{display:block;font-size:1.6em}
"""


def render(summary: dict[str, Any], suspects: pa.Table, *, top: int = TOP_SUSPECTS) -> str:
    """The report page for a finished scan."""
    rows = summary["rows"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        "<title>poisonscan report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>poisonscan report</h1>",
        f"<p class=\"muted\">{_e(', '.join(summary['inputs']))} · poisonscan "
        f"{_e(summary['poisonscan_version'])} · seed {_e(summary['seed'])}</p>",
        _kpis([("rows scanned", rows["in"]), ("clean", rows["clean"]),
               ("quarantined", rows["quarantined"]),
               ("quarantined %", f"{100 * rows['quarantined_fraction']:.3g}")]),
        "<h2>Checks</h2>",
        _table(["family", "rows flagged", "rows quarantined"],
               [[name, c["rows_flagged"], c["rows_quarantined"]]
                for name, c in summary["checks"].items()]),
    ]
    if summary["checks_skipped"]:
        parts.append(_table(["skipped family", "why"], list(summary["checks_skipped"].items())))
    decision = summary["decision"]
    parts += [
        "<h2>Decision</h2>",
        f"<p>Policy <b>{_e(decision['policy'])}</b>: {_e(decision['suspects'])} suspects"
        + (f", lowest suspect score {decision['min_suspect_score']:.4f}"
           if decision["min_suspect_score"] is not None else "") + ".</p>",
        f"<h2>Top suspects ({min(top, suspects.num_rows)} of {suspects.num_rows})</h2>",
        _suspects_table(suspects.slice(0, top)),
    ]
    drift = summary.get("drift")
    if drift:
        parts += ["<h2>Drift against the reference</h2>", _drift(drift)]
    parts += [
        "<h2>Bounds</h2>",
        _bounds(summary),
        _violations(summary),
        "<h2>Configuration</h2>",
        f"<pre class=\"reason\">{_e(json.dumps(summary['config'], indent=2))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _kpis(items: Iterable[tuple[str, Any]]) -> str:
    return "<div>" + "".join(f'<span class="kpi"><b>{_e(v)}</b>{_e(k)}</span>'
                             for k, v in items) + "</div>"


def _table(header: list[str], rows: Iterable[Iterable[Any]], reason_col: int | None = None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header)
           + "</tr></thead><tbody>"]
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = ' class="reason"' if i == reason_col else \
                ' class="num"' if isinstance(value, (int, float)) else ""
            text = f"{value:.4f}" if isinstance(value, float) else value
            cells.append(f"<td{cls}>{_e(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _suspects_table(suspects: pa.Table) -> str:
    if suspects.num_rows == 0:
        return "<p>No suspects.</p>"
    names = suspects.column_names
    return _table(names, zip(*(suspects.column(c).to_pylist() for c in names)),
                  reason_col=names.index("reason"))


def _bounds(summary: dict) -> str:
    learned = summary["checks"].get("bounds", {}).get("learned", {})
    ranges = learned.get("ranges", {})
    parts = []
    if ranges:
        parts.append("<p>Learned ranges (a value outside is evidence; far outside, or of a "
                     "sign the column never has, is a hard finding):</p>")
        parts.append(_table(["column", "min", "max", "notes"],
                            [[c, r["min"], r["max"], ", ".join(
                                k if v is True else f"{k} {v}" for k, v in r.items()
                                if k not in ("min", "max"))] for c, r in ranges.items()]))
    else:
        parts.append("<p>No numeric ranges learned.</p>")
    declared = learned.get("declared")
    if declared:
        rows = [[c, "", json.dumps(spec, ensure_ascii=False)]
                for c, spec in declared.items() if c != "by_label"]
        rows += [[c, label, json.dumps(spec, ensure_ascii=False)]
                 for label, table in declared.get("by_label", {}).items()
                 for c, spec in table.items()]
        parts += ["<p>Declared bounds (hard):</p>", _table(["column", "label", "bounds"], rows)]
    if learned.get("reference"):
        parts.append(f"<p>Reference profile (hard bounds): {_e(learned['reference'])}</p>")
    return "".join(parts)


def _violations(summary: dict) -> str:
    counts = summary["checks"].get("bounds", {}).get("violations_by_column")
    if not counts:
        return ""
    rows = [[c, kind, n] for c, kinds in counts.items() for kind, n in kinds.items()]
    return "<p>Rows per column and broken bound:</p>" + _table(["column", "bound", "rows"], rows)


def _drift(drift: dict) -> str:
    parts = []
    flag = "<b>shift flagged</b>: " + _e(", ".join(drift.get("flagged_items", []))) \
        if drift.get("flagged") else "no shift above the threshold"
    parts.append(f"<p>Population stability index threshold {_e(drift['threshold'])}; "
                 f"{flag}.</p>")
    labels = drift.get("labels")
    if labels:
        parts.append(f"<p>Class mix of {_e(labels['column'])}: PSI {_e(labels['psi'])}"
                     + (" — <b>flagged</b>" if labels["flag"] else "") + "</p>")
        parts.append(_table(["class", "reference rows", "rows", "reference share", "share",
                             "ratio"],
                            [[c, v["reference_rows"], v["rows"], v["reference_share"],
                              v["share"], "–" if v["ratio"] is None else v["ratio"]]
                             for c, v in labels["classes"].items()]))
    columns = drift.get("columns", {})
    if columns:
        parts.append(_table(["column", "PSI", "KS", "null rate", "reference null rate", "flag"],
                            [[c, v.get("psi"), v.get("ks", "–"), v.get("null_rate"),
                              v.get("reference_null_rate"), "FLAG" if v.get("flag") else ""]
                             for c, v in columns.items()]))
    for key, text in (("missing_columns", "Columns of the reference missing here"),
                      ("new_columns", "Columns not in the reference")):
        if drift.get(key):
            parts.append(f"<p>{text}: {_e(', '.join(drift[key]))}</p>")
    return "".join(parts)
