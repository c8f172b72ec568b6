"""``report.html``: one self-contained page for the reviewer.

Every value that comes from the data (cell values inside reasons, column names, ids,
file names) is attacker-controlled and goes through :func:`html.escape`. The page loads
nothing from the network, and its Content-Security-Policy forbids it to.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa

#: Suspects listed in the page by default (the full list is in suspects.csv).
TOP_SUSPECTS = 500
#: The page's style sheet and script (inlined: the page is one file).
TEMPLATES = Path(__file__).with_name("templates")
#: The score ranges of the fused score (README: "Scores"), as the score plot labels them.
_ZONES = ((0.0, 1.0, "statistical evidence"), (1.0, 1.5, "findings"),
          (1.5, 2.0, "hard violations"))


def render(summary: dict[str, Any], suspects: pa.Table, *, top: int = TOP_SUSPECTS,
           details: dict[str, Any] | None = None) -> str:
    """The report page for a finished scan.

    Parameters
    ----------
    summary : dict
        The scan's ``summary.json``.
    suspects : pyarrow.Table
        The ranked suspects (``suspects.csv``).
    top : int
        Suspects listed in the page (all are in ``suspects.csv``).
    details : dict, optional
        Values, plots and fingerprints of :func:`poisonscan.report.details.collect_details`;
        without it the page shows the summary and the ranked list only.

    Returns
    -------
    str
        One self-contained HTML document: inline style, inline script allowed by its
        hash in the Content-Security-Policy, no network access.
    """
    details = details or {}
    shown = suspects.slice(0, top)
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    data = _page_data(summary, shown, details)
    outputs = set(summary.get("outputs", []))
    fmt = summary["output_format"]
    links = " · ".join(f'<a href="{_e(name)}">{_e(name)}</a>' for name in
                       ("suspects.csv", f"quarantine.{fmt}", f"clean.{fmt}", "scores.parquet",
                        "summary.json") if name in outputs)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        f"style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>poisonscan report</title>",
        f"<style>{(TEMPLATES / 'report.css').read_text(encoding='utf-8')}</style></head><body>",
        "<h1>poisonscan report</h1>",
        f"<p class=\"muted\">{_e(', '.join(summary['inputs']))} · poisonscan "
        f"{_e(summary['poisonscan_version'])} · seed {_e(summary['seed'])}"
        + (f" · files: {links}" if links else "") + "</p>",
        _kpis(summary, details),
        _decision(summary),
        _applied(summary),
        "<h2>Where the suspects are</h2>",
        '<div class="plots">',
        _score_plot(summary, details.get("score_histogram")),
        _family_plot(summary),
        _class_plot(summary, details.get("per_class")),
        "</div>",
        f"<h2>Top suspects ({min(top, suspects.num_rows)} of {suspects.num_rows})</h2>",
        ("<p class=\"muted\">Mark each suspect <b>drop</b> or <b>keep</b> (a note is "
         "optional), export <code>decisions.csv</code>, then run <code>poisonscan apply "
         "SCAN_DIR --decisions decisions.csv</code>. Every suspect is in "
         "<a href=\"suspects.csv\">suspects.csv</a>.</p>" if shown.num_rows else ""),
        _suspects_section(shown, summary, details) if shown.num_rows or not suspects.num_rows
        else "<p>No suspects listed (<code>--report-top 0</code>); all are in "
             "<a href=\"suspects.csv\">suspects.csv</a>.</p>",
    ]
    columns = details.get("columns") or {}
    categories = details.get("categories") or {}
    if columns or categories:
        parts += ["<h2>Top suspects against their columns</h2>",
                  "<p class=\"muted\">Numbers: the histogram of each column on the row "
                  "sample, its learned (dashed) and declared (solid) bounds, and the values "
                  "of the top suspects whose reasons name the column (red; arrows: beyond "
                  "the axis). Categories: rows per value, the suspects' values in red.</p>",
                  '<div class="plots">',
                  *(_column_plot(name, plot) for name, plot in columns.items()),
                  *(_category_plot(name, plot) for name, plot in categories.items()),
                  "</div>"]
    parts += [
        "<h2>Checks</h2>",
        _table(["family", "rows flagged", "rows quarantined"],
               [[name, c["rows_flagged"], c["rows_quarantined"]]
                for name, c in summary["checks"].items()]),
    ]
    if summary["checks_skipped"]:
        parts.append(_table(["skipped family", "why"], list(summary["checks_skipped"].items())))
    drift = summary.get("drift")
    if drift:
        parts += ["<h2>Drift against the reference</h2>", _drift(drift)]
    parts += [
        "<h2>Bounds</h2>",
        _bounds(summary),
        _violations(summary),
        "<h2>Configuration</h2>",
        f"<pre class=\"reason\">{_e(json.dumps(summary['config'], indent=2))}</pre>",
        f'<script type="application/json" id="poisonscan-data">{json_for_script(data)}</script>',
        f"<script>{script}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def json_for_script(value: Any) -> str:
    """JSON that is safe inside ``<script>``: no ``<``, ``>``, ``&`` or line separators
    appear literally, so a value holding ``</script>`` cannot end the element."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _page_data(summary: dict, shown: pa.Table, details: dict) -> dict:
    """What the script needs: per listed suspect its row, id and fingerprint."""
    id_col = summary.get("id_column")
    rows = details.get("rows") or {}
    ids = shown.column(id_col).to_pylist() if id_col and id_col in shown.column_names \
        else [None] * shown.num_rows
    # decisions kept in the browser belong to this scan's suspects, not to a later scan's
    key = hashlib.sha256(json.dumps([summary["inputs"], summary["seed"], summary["rows"]["in"],
                                     summary["poisonscan_version"],
                                     shown.column("row").to_pylist(),
                                     [None if i is None else str(i) for i in ids]]
                                    ).encode()).hexdigest()[:16]
    return {
        "scan_key": key,
        "rows": {k: summary["rows"][k] for k in ("in", "clean", "quarantined")},
        "suspects": [{"row": int(r), "id": None if i is None else str(i),
                      "fingerprint": (rows.get(int(r)) or {}).get("fingerprint", ""),
                      "families": [f for f in (checks or "").split(",") if f],
                      "columns": (rows.get(int(r)) or {}).get("columns", []),
                      "class": (rows.get(int(r)) or {}).get("label")}
                     for r, i, checks in zip(shown.column("row").to_pylist(), ids,
                                             shown.column("checks").to_pylist())],
    }


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _kpis(summary: dict, details: dict) -> str:
    """The headline numbers; each carries ``data-kpi`` (tests and tools read them)."""
    rows = summary["rows"]
    items = [("in", "rows scanned", f"{rows['in']:,}", ""),
             ("clean", "clean", f"{rows['clean']:,}", ""),
             ("quarantined", "quarantined", f"{rows['quarantined']:,}",
              f"{100 * rows['quarantined_fraction']:.3g}% of the rows")]
    for name, check in summary["checks"].items():
        items.append((f"family-{name}", f"quarantined by {name}",
                      f"{check['rows_quarantined']:,}", f"{check['rows_flagged']:,} flagged"))
    left, why = _poisons_left(summary, details)
    if left is not None:
        items.append(("poisons-left", "estimated poisons left", f"{left:,}", why))
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><b data-kpi="{_e(key)}">{_e(value)}</b>{_e(label)}'
        + (f"<small>{_e(note)}</small>" if note else "") + "</div>"
        for key, label, value, note in items) + "</div>"


def _decision(summary: dict) -> str:
    decision = summary["decision"]
    return (f"<p>Decision: policy <b>{_e(decision['policy'])}</b>, {_e(decision['suspects'])} "
            "suspects" + (f", lowest suspect score {decision['min_suspect_score']:.4f}"
                          if decision["min_suspect_score"] is not None else "")
            + (f"; {_e(decision['allowlisted'])} suspects kept by an earlier review "
               "(--allowlist)" if decision.get("allowlisted") else "") + "."
            + _ranking(summary.get("config", {})) + "</p>")


def _ranking(config: dict) -> str:
    """What a reviewer should know of a ranking that is not the default fusion's."""
    rule, weights = config.get("fusion", "min"), config.get("family_weights")
    if rule == "min" and not weights:
        return ""
    said = [f"fusion <b>{_e(rule)}</b>"]
    if weights:
        said.append("family weights <b>" + _e(", ".join(
            f"{family}={weight:g}" for family, weight in weights.items())) + "</b>")
    return " Ranked with " + " and ".join(said) + "."


def _poisons_left(summary: dict, details: dict) -> tuple[int | None, str]:
    """Rows in the clean file that a family found (score of 1 or more) plus the wrong
    labels the ``labels`` family estimates beyond the label suspects quarantined."""
    histogram = details.get("score_histogram")
    if histogram is None:
        return None, ""
    findings = int(histogram["clean_findings"])
    why = [f"{findings:,} clean rows with a finding"]
    labels = summary["checks"].get("labels")
    estimate = (labels or {}).get("learned", {}).get("estimated_label_issues")
    wrong = 0
    if isinstance(estimate, (int, float)):
        wrong = max(0, int(estimate) - int(labels["rows_quarantined"]))
        why.append(f"{wrong:,} wrong labels estimated beyond those quarantined")
    elif labels is None:
        why.append("label noise not estimated (labels family off)")
    return findings + wrong, "; ".join(why)


def _applied(summary: dict) -> str:
    records = summary.get("decisions") or []
    if not records:
        return ""
    last = records[-1]
    return (f"<p><b>Reviewer decisions applied</b> ({_e(last['file'])}): {_e(last['kept'])} "
            f"kept (back in the clean file), {_e(last['dropped'])} dropped, "
            f"{_e(last['undecided'])} undecided. The list below is the scan's.</p>")


# ============================================================================ plots (SVG)

def _num(value: float) -> str:
    """A number for an axis or a tooltip."""
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _short(text: str | None) -> str:
    """A cell for a caption: numbers to 6 significant digits, text cut at 24 characters."""
    if text is None:
        return "null"
    try:
        value = float(text)
    except ValueError:
        return text if len(text) <= 24 else text[:23] + "…"
    return f"{value:.6g}" if math.isfinite(value) else text


def _svg(width: int, height: int, title: str, body: list[str], caption: str = "") -> str:
    return (f'<figure class="plot" style="width:{width}px"><h3>{_e(title)}</h3>'
            '<svg xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{_e(title)}">' + "".join(body) + "</svg>"
            + (f'<figcaption class="muted">{_e(caption)}</figcaption>' if caption else "")
            + "</figure>")


def _score_plot(summary: dict, histogram: dict | None) -> str:
    """Rows per score bin (log scale), quarantined rows in red, the threshold dashed."""
    if not histogram:
        return ""
    W, H, L, R, T, B = 470, 220, 44, 10, 14, 36
    edges, clean, quar = histogram["edges"], histogram["clean"], histogram["quarantined"]
    top = max([c + q for c, q in zip(clean, quar)] + [1])
    scale_y = math.log10(top + 1)

    def y(count: float) -> float:
        return T + (H - T - B) * (1 - math.log10(count + 1) / scale_y)

    def x(score: float) -> float:
        return L + (W - L - R) * score / 2.0

    body = []
    for low, high, name in _ZONES:
        body.append(f'<rect class="zone" x="{x(low) + 1:.1f}" y="{T}" '
                    f'width="{x(high) - x(low) - 2:.1f}" '
                    f'height="{H - T - B}"/><text x="{x((low + high) / 2):.1f}" y="{T - 3}" '
                    f'text-anchor="middle">{_e(name)}</text>')
    for i, (c, q) in enumerate(zip(clean, quar)):
        x0, x1 = x(edges[i]) + 0.5, x(edges[i + 1]) - 0.5
        if c:
            body.append(f'<rect class="clean" x="{x0:.1f}" y="{y(c + q):.1f}" '
                        f'width="{x1 - x0:.1f}" '
                        f'height="{y(q) - y(c + q):.1f}"><title>{_num(edges[i])}–'
                        f'{_num(edges[i + 1])}: {c:,} clean rows</title></rect>')
        if q:
            body.append(f'<rect class="quar" x="{x0:.1f}" y="{y(q):.1f}" width="{x1 - x0:.1f}" '
                        f'height="{y(0) - y(q):.1f}"><title>{_num(edges[i])}–'
                        f'{_num(edges[i + 1])}: {q:,} quarantined rows</title></rect>')
    body.append(f'<line class="axis" x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}"/>')
    for tick in (0, 0.5, 1.0, 1.5, 2.0):
        body.append(f'<text x="{x(tick):.1f}" y="{H - B + 13}" '
                    f'text-anchor="middle">{tick:g}</text>')
    for count in sorted({1, 10 ** int(math.log10(top)) if top >= 10 else 1, top}):
        body.append(f'<text x="{L - 4}" y="{y(count) + 4:.1f}" text-anchor="end">{count:,}</text>')
    threshold = summary["decision"].get("min_suspect_score")
    if threshold is not None:
        body.append(f'<line class="thr" x1="{x(threshold):.1f}" y1="{T}" x2="{x(threshold):.1f}" '
                    f'y2="{H - B}"/><text x="{x(threshold) + 3:.1f}" y="{T + 12}" '
                    f'text-anchor="start">threshold {threshold:.3f}</text>')
    body.append(f'<text x="{(L + W - R) / 2}" y="{H - 6}" text-anchor="middle">score '
                f'(rows per bin, log scale; red: quarantined)</text>')
    return _svg(W, H, "Score distribution", body)


def _hbars(title: str, items: list[tuple[str, int, int | None]], caption: str = "") -> str:
    """Horizontal bars: ``(name, value, background_value_or_None)``."""
    if not items:
        return ""
    W, L, R, row = 320, 100, 56, 20
    H = 10 + row * len(items)
    top = max([max(v, b or 0) for _, v, b in items] + [1])
    body = []
    for i, (name, value, back) in enumerate(items):
        y0 = 5 + i * row
        short = name if len(name) <= 16 else name[:15] + "…"
        body.append(f'<text x="{L - 5}" y="{y0 + 13}" text-anchor="end">{_e(short)}'
                    f"<title>{_e(name)}</title></text>")
        if back:
            body.append(f'<rect class="flag" x="{L}" y="{y0 + 3}" '
                        f'width="{(W - L - R) * back / top:.1f}" height="{row - 6}">'
                        f"<title>{back:,} flagged</title></rect>")
        body.append(f'<rect class="quar" x="{L}" y="{y0 + 3}" '
                    f'width="{(W - L - R) * value / top:.1f}" '
                    f'height="{row - 6}"><title>{value:,} quarantined</title></rect>')
        label = f"{value:,}" + (f" / {back:,}" if back else "")
        body.append(f'<text x="{L + (W - L - R) * max(value, back or 0) / top + 4:.1f}" '
                    f'y="{y0 + 13}">{_e(label)}</text>')
    return _svg(W, H, title, body, caption)


def _family_plot(summary: dict) -> str:
    items = [(name, c["rows_quarantined"], c["rows_flagged"])
             for name, c in summary["checks"].items()]
    return _hbars("Suspects per family", items, "red: quarantined; orange: flagged")


def _class_plot(summary: dict, per_class: dict | None) -> str:
    label = summary.get("label")
    if not per_class or not label:
        return ""
    totals = label.get("top") or {}
    items = [(name, count, None) for name, count in per_class.items()]
    caption = "quarantined rows per value of " + label["column"] + "; " + ", ".join(
        f"{name}: {100 * count / totals[name]:.2g}% of its rows"
        for name, count in list(per_class.items())[:4] if totals.get(name))
    return _hbars("Suspects per class", items, caption)


def _category_plot(name: str, plot: dict) -> str:
    """Rows per category (log-scaled bars): the most frequent ones and the suspects'."""
    items = [(value, count, False, []) for value, count in plot["top"].items()]
    items += [(value, entry["count"], True, entry["rows"])
              for value, entry in plot["suspects"].items()]
    if not items:
        return ""
    W, L, R, row = 300, 110, 60, 18
    H = 8 + row * len(items)
    top = max([c or 1 for _, c, _, _ in items] + [2])

    def width(count: int | None) -> float:
        return (W - L - R) * math.log1p(count or 1) / math.log1p(top)

    body = []
    for i, (value, count, suspect, rows) in enumerate(items):
        y0 = 4 + i * row
        text = value if len(value) <= 16 else value[:15] + "…"
        tip = f"{value}: {count:,} rows" if count is not None else f"{value}: rare"
        if rows:
            tip += " (suspect rows " + ", ".join(map(str, rows[:10])) + ")"
        body.append(f'<text x="{L - 5}" y="{y0 + 12}" text-anchor="end">{_e(text)}'
                    f"<title>{_e(tip)}</title></text>")
        body.append(f'<rect class="{"quar" if suspect else "bar"}" x="{L}" y="{y0 + 3}" '
                    f'width="{max(width(count), 1.5):.1f}" height="{row - 6}">'
                    f"<title>{_e(tip)}</title></rect>")
        body.append(f'<text x="{L + width(count) + 4:.1f}" y="{y0 + 12}">'
                    f'{_e(f"{count:,}" if count is not None else "rare")}</text>')
    return _svg(W, H, name, body, f"{plot['rows']:,} rows; log scale; red: top suspects' "
                "values")


def _column_plot(name: str, plot: dict) -> str:
    """A column's sample histogram, its bounds and the top suspects' values."""
    W, H, L, R, T, B = 300, 150, 8, 8, 30, 30
    edges, counts = plot["edges"], plot["counts"]
    low, high = edges[0], edges[-1]
    top = max(counts + [1])
    log = plot.get("scale") == "log1p"

    def x(value: float) -> float:  # value in plot space (log1p-scaled when log)
        return L + (W - L - R) * (min(max(value, low), high) - low) / (high - low)

    def shown(value: float) -> str:  # the original value of a plot-space value
        return _num(math.copysign(math.expm1(abs(value)), value) if log else value)

    body = []
    for i, count in enumerate(counts):
        if count:
            h = (H - T - B) * count / top
            body.append(f'<rect class="bar" x="{x(edges[i]) + 0.3:.1f}" y="{H - B - h:.1f}" '
                        f'width="{max(x(edges[i + 1]) - x(edges[i]) - 0.6, 0.5):.1f}" '
                        f'height="{h:.1f}"><title>{shown(edges[i])}–{shown(edges[i + 1])}: '
                        f"{count:,} sampled rows</title></rect>")
    for mark, value in plot["marks"].items():
        cls = "declared" if mark.startswith("declared") else "learned"
        body.append(f'<line class="{cls}" x1="{x(value):.1f}" y1="{T - 4}" x2="{x(value):.1f}" '
                    f'y2="{H - B}"><title>{_e(mark)} {shown(value)}</title></line>')
    body.append(f'<line class="axis" x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}"/>')
    body.append(f'<text x="{L}" y="{H - B + 13}">{shown(low)}</text>'
                f'<text x="{W - R}" y="{H - B + 13}" text-anchor="end">{shown(high)}</text>'
                + (f'<text x="{(L + W - R) / 2}" y="{H - B + 13}" text-anchor="middle">'
                   "log scale</text>" if log else ""))
    unplotted = []
    for point in plot["points"]:
        value = point["value"]
        if value is None:
            unplotted.append(point)
            continue
        px = x(value)
        tip = f"row {point['row']}: {point['text']}"
        if value < low or value > high:
            arrow = "◀" if value < low else "▶"
            body.append(f'<text class="arrow" x="{px:.1f}" y="{T - 7}" '
                        f'text-anchor="{"start" if value < low else "end"}">{arrow}'
                        f"<title>{_e(tip)}</title></text>")
        else:
            body.append(f'<circle class="pt" cx="{px:.1f}" cy="{T - 12}" r="4">'
                        f"<title>{_e(tip)}</title></circle>")
    caption = f"{plot['sample_rows']:,} sampled rows; " + ", ".join(
        f"{k} {shown(v)}" for k, v in plot["marks"].items())
    if unplotted:
        caption += "; not numbers: " + ", ".join(
            f"row {p['row']} {_short(p['text'])!r}" for p in unplotted[:5])
    outside = [p for p in plot["points"] if p["value"] is not None
               and not low <= p["value"] <= high]
    if outside:
        caption += "; beyond the axis: " + ", ".join(
            f"row {p['row']} {_short(p['text'])}" for p in outside[:5])
    return _svg(W, H, name, body, caption)


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


def _suspects_section(shown: pa.Table, summary: dict, details: dict) -> str:
    """Filters, the ranked table with values, reasons and decision inputs, export buttons."""
    if shown.num_rows == 0:
        return "<p>No suspects.</p>"
    id_col = summary.get("id_column")
    info = details.get("rows") or {}
    label = (summary.get("label") or {}).get("column")
    records = shown.to_pylist()
    families = sorted({f for r in records for f in (r["checks"] or "").split(",") if f})
    classes = sorted({str((info.get(r["row"]) or {}).get("label")) for r in records
                      if (info.get(r["row"]) or {}).get("label") is not None})
    columns = sorted({c for r in records for c in (info.get(r["row"]) or {}).get("columns", [])})

    def select(ident: str, title: str, values: list[str]) -> str:
        return (f'<label>{_e(title)} <select id="{ident}"><option value="">all</option>'
                + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
                + "</select></label>")

    head = [("rank", "num"), ("row", "num")] + ([(id_col, "text")] if id_col else []) + [
        ("score", "num"), ("checks", "text")] + ([(label, "text")] if label else []) + [
        ("reason", None), ("values", None), ("decision", None)]
    out = [
        '<div id="filters">',
        select("f-family", "family", families),
        select("f-class", "class", classes) if label else
        '<select id="f-class" hidden><option value=""></option></select>',
        select("f-column", "column", columns),
        '<label>search <input type="search" id="f-text"></label>',
        '<label><input type="checkbox" id="f-undecided"> undecided only</label>',
        f'<span class="muted"><span id="shown">{len(records)}</span> of {len(records)} '
        "shown</span>",
        '<button type="button" id="drop-shown">drop all shown (undecided)</button>',
        '<button type="button" id="export">export decisions.csv</button>',
        '<span id="status" role="status"></span>',
        "</div>",
        '<table id="suspects"><thead><tr>'
        + "".join(f'<th data-sort="{kind}">{_e(name)}</th>' if kind else f"<th>{_e(name)}</th>"
                  for name, kind in head) + "</tr></thead><tbody>",
    ]
    for r in records:
        row = int(r["row"])
        extra = info.get(row) or {}
        named = extra.get("columns", [])
        cls = extra.get("label")
        cells = [f'<td class="num">{r["rank"]}</td>', f'<td class="num">{row}</td>']
        if id_col:
            cells.append(f"<td>{_e(r.get(id_col))}</td>")
        cells.append(f'<td class="num" data-value="{r["score"]!r}">{r["score"]:.4f}</td>')
        cells.append(f"<td>{_e(r['checks'])}</td>")
        if label:
            cells.append(f"<td>{_e(cls)}</td>")
        neighbours = extra.get("neighbours")
        cells.append('<td class="reason">' + _e(r["reason"])
                     + (f'<br><span class="muted">nearest neighbours: {_e(neighbours)}</span>'
                        if neighbours else "") + "</td>")
        values = extra.get("values") or {}
        cells.append('<td class="vals">' + "".join(
            (f"<span><b>{_e(k)}={_e(v)}</b></span>" if k in named else
             f"<span>{_e(k)}={_e(v)}</span>")
            for k, v in values.items() if k not in (id_col, label)) + "</td>")
        cells.append(f'<td class="decide"><label><input type="radio" name="d{row}" value="drop"> '
                     f'drop</label><label><input type="radio" name="d{row}" value="keep"> keep'
                     f'</label><input type="text" class="note" placeholder="note" '
                     f'aria-label="note for row {row}"></td>')
        out.append(f'<tr data-row="{row}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


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
