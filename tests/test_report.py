"""``report.html`` without a browser: escaping, embedded data, plots, top-N, determinism."""

from __future__ import annotations

import datetime
import html
import json
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import poisonscan
from poisonscan.cli import main
from poisonscan.report.details import format_value
from poisonscan.report.html import json_for_script

from conftest import make_frame

BREAKOUT = "</script><script>alert(1)</script><!--"


def _frame() -> pd.DataFrame:
    df = make_frame(400, seed=2).astype({"x": object})
    df.loc[4, "x"] = -9000
    df.loc[4, "uid"] = BREAKOUT
    df.loc[8, "colour"] = '<img src=x onerror="alert(2)">'
    df.loc[15, "x"] = 10000000
    df.loc[16, "x"] = "NaN"
    df.loc[23, "colour"] = "=HYPERLINK(\"http://evil.invalid\")"
    return df


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    _frame().to_csv(base / "data.csv", index=False)
    res = poisonscan.scan(str(base / "data.csv"), label="y", out=base / "scan",
                          id_column="uid", checks=["bounds"])
    return res, (res.out / "report.html").read_text(encoding="utf-8")


def _data(page: str) -> dict:
    return json.loads(re.search(r'id="poisonscan-data">(.*?)</script>', page, re.S).group(1))


def test_json_in_the_page_cannot_end_its_script_element():
    text = json_for_script({"id": BREAKOUT, "line": "a\u2028b", "amp": "&lt;"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"id": BREAKOUT, "line": "a\u2028b", "amp": "&lt;"}


def test_hostile_cells_are_text_and_the_page_has_exactly_its_own_scripts(scanned):
    res, page = scanned
    assert set(res.suspects["row"]) >= {4, 8, 15, 16, 23}
    assert page.count("<script") == 2                   # the data and the page's script
    assert "<img" not in page and "onerror=\"alert" not in page
    assert html.escape('<img src=x onerror="alert(2)">') in page
    assert html.escape(BREAKOUT) in page                 # the id, shown as text
    assert _data(page)["suspects"][[s["row"] for s in _data(page)["suspects"]].index(4)][
        "id"] == BREAKOUT
    csp = re.search(r'Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    assert "evil.invalid" not in page.split("<body>")[0]
    assert not re.search(r"(src|href)=\"(https?:)?//", page)   # nothing loads from a network


def test_kpis_plots_and_rows_follow_the_summary(scanned):
    res, page = scanned
    rows = res.summary["rows"]
    kpi = dict(re.findall(r'data-kpi="([^"]+)">([^<]*)<', page))
    assert kpi["in"] == f"{rows['in']:,}" and kpi["clean"] == f"{rows['clean']:,}"
    assert kpi["quarantined"] == f"{rows['quarantined']:,}"
    assert kpi["family-bounds"] == str(res.summary["checks"]["bounds"]["rows_quarantined"])
    assert "Score distribution" in page and "threshold " in page
    assert "Suspects per family" in page and "Suspects per class" in page
    # the x column's plot marks the suspects named by their reasons
    plot = page[page.index("<h3>x</h3>"):]
    plot = html.unescape(plot[:plot.index("</figure>")])
    assert "row 4: -9000" in plot and "row 15: 10000000" in plot and "row 16 'NaN'" in plot
    # the colour column's plot: the common colours, and the suspects' values in red
    plot = page[page.index("<h3>colour</h3>"):]
    plot = plot[:plot.index("</figure>")]
    suspects_marked = [html.unescape(t) for t in
                       re.findall(r'<rect class="quar"[^>]*><title>([^<]*)</title>', plot)]
    marked = {re.match(r"(.*): (?:[\d,]+ rows|rare)", t).group(1) for t in suspects_marked}
    assert marked == {'<img src=x onerror="alert(2)">', '=HYPERLINK("http://evil.invalid")'}
    assert any(t.startswith('=HYPERLINK("http://evil.invalid"): 1 rows') for t in suspects_marked)
    assert len(re.findall(r'<rect class="bar"', plot)) == 3      # red, green, blue
    data = _data(page)
    assert [s["row"] for s in data["suspects"]] == res.suspects["row"].tolist()
    assert all(re.fullmatch(r"[0-9a-f]{16}", s["fingerprint"]) for s in data["suspects"])
    assert next(s for s in data["suspects"] if s["row"] == 4)["columns"] == ["x"]


def test_a_ranking_other_than_the_default_is_stated_in_the_decision(tmp_path, scanned):
    _, default_page = scanned
    assert "Ranked with" not in default_page
    res = poisonscan.scan(make_frame(300, seed=4), label="y", out=tmp_path / "scan",
                          checks=["bounds", "outliers"], fusion="fisher",
                          family_weights={"outliers": 2.5})
    page = (res.out / "report.html").read_text(encoding="utf-8")
    decision = re.search(r"<p>Decision: .*?</p>", page).group(0)
    assert "Ranked with fusion <b>fisher</b> and family weights <b>outliers=2.5</b>." \
        in decision


def test_top_n_is_configurable_and_links_the_full_files(tmp_path):
    res = poisonscan.scan(make_frame(400, seed=2), label="y", out=tmp_path / "s",
                          checks=["bounds", "outliers"], contamination=0.05, report_top=2)
    page = res.to_html()
    assert len(res.suspects) > 2
    assert f"Top suspects (2 of {len(res.suspects)})" in page
    assert page.count('<tr data-row="') == 2 and len(_data(page)["suspects"]) == 2
    assert '<a href="suspects.csv">' in page and '<a href="clean.parquet">' in page


def test_report_top_zero_lists_no_suspect_but_says_where_they_are(tmp_path):
    res = poisonscan.scan(make_frame(300, seed=2), label="y", out=tmp_path / "s",
                          checks=["bounds"], contamination=0.05, report_top=0)
    page = res.to_html()
    assert len(res.suspects) == 15 and '<tr data-row="' not in page
    assert "No suspects listed (<code>--report-top 0</code>)" in page


def test_the_page_is_deterministic(tmp_path):
    pages = []
    _frame().to_csv(tmp_path / "d.csv", index=False)
    for _ in range(2):
        res = poisonscan.scan(str(tmp_path / "d.csv"), label="y", out=tmp_path / "s",
                              checks=["bounds"], overwrite=True)
        pages.append(res.to_html())
    assert pages[0] == pages[1]


def test_terminal_summary_lists_top_suspects_without_control_characters(tmp_path, capsys):
    df = _frame()
    df.loc[8, "colour"] = "\x1b[31mred\x1b[0m"
    df.to_csv(tmp_path / "d.csv", index=False)
    assert main(["scan", str(tmp_path / "d.csv"), "--label", "y", "--id-column", "uid",
                 "--checks", "bounds", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "top " in err and "suspects (all in suspects.csv" in err
    assert "row 4 " in err and "\x1b[31m" not in err


# a column no check reads (Parquet only), its cells as Python values and as shown
UNREAD_COLUMNS = {
    "struct": (pa.array([{"a": i, "b": "<i>"} for i in range(300)]),
               '{"a": 4, "b": "<i>"}'),
    "list of text": (pa.array([["u", "<v>"]] * 300), '["u", "<v>"]'),
    "map": (pa.array([[("k", i)] for i in range(300)], pa.map_(pa.string(), pa.int64())),
            '[["k", 4]]'),
    "bytes that are not UTF-8": (pa.array([b"<b>\xff\x00"] * 300), "<b>\\xff\x00"),
}


@pytest.mark.parametrize("kind", list(UNREAD_COLUMNS), ids=list(UNREAD_COLUMNS))
def test_columns_no_check_reads_are_shown_as_escaped_text(tmp_path, kind):
    column, shown = UNREAD_COLUMNS[kind]
    df = make_frame(300, seed=2)
    df.loc[4, "x"] = -9000.0
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False).append_column("extra", column),
                   tmp_path / "d.parquet")
    res = poisonscan.scan(str(tmp_path / "d.parquet"), label="y", out=tmp_path / "s",
                          id_column="uid", checks=["bounds"])
    rows = res.summary["rows"]
    assert 4 in set(res.suspects["row"]) and "extra" in res.summary["skipped_columns"]
    assert rows["in"] == 300 and rows["clean"] + rows["quarantined"] == 300
    assert pq.read_table(res.out / "quarantine.parquet").num_rows == rows["quarantined"]
    page = (res.out / "report.html").read_text(encoding="utf-8")
    cells = re.search(r'<tr data-row="4">.*?</tr>', page, re.S).group(0)
    assert f"<span>extra={html.escape(shown, quote=True)}</span>" in cells
    assert "<i>" not in page and "<v>" not in page and "<b>\\xff" not in page


def test_format_value_makes_any_cell_value_text():
    assert format_value(b"caf\xe9") == "caf\\xe9"
    assert format_value({"a": [1, None], "b": b"\xff", "c": datetime.date(2024, 1, 2)}) == \
        '{"a": [1, null], "b": "\\\\xff", "c": "2024-01-02"}'
    assert format_value([("k", 1)]) == '[["k", 1]]'
