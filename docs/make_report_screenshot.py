"""Regenerate ``docs/report.png``: the review page of a benchmark scan, two suspects marked.

The data is the detection benchmark's ``diamonds`` dataset (3,000 rows, label ``cut``)
with three attacks of ``benchmarks/attacks.py`` at 0.5% each: bound violations, gross
outliers and random label flips. The scan runs every family; headless Chromium (Debian's
``chromium``) opens the report, filters the table on the ``table`` column, marks one
suspect *drop* and one *keep* with a note, and takes the screenshot.

Run from the repository root (needs ``pip install -e '.[bench]'`` and chromium)::

    python docs/make_report_screenshot.py
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from attacks import poison  # noqa: E402
from real_datasets import load_dataset  # noqa: E402
from test_report_browser import CHROMIUM_FLAGS, DevTools, Page, chromium_path  # noqa: E402

import poisonscan  # noqa: E402

WIDTH, HEIGHT = 1280, 1400


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="poisonscan-shot-"))
    ds = load_dataset("diamonds", max_rows=3000)
    rng = np.random.default_rng(0)
    for attack in ("bounds", "outliers", "random_flip"):
        ds = dataclasses.replace(ds, frame=poison(ds, attack, 0.005, rng).frame)
    os.chdir(work)  # the page names the input as given: a short relative path
    ds.frame.to_csv("diamonds_poisoned.csv", index=False)
    poisonscan.scan("diamonds_poisoned.csv", label=ds.label, out=work / "scan",
                    checks=["bounds", "outliers", "labels", "duplicates"], report_top=200)

    flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")]
    process = subprocess.Popen([chromium_path(), *flags, f"--window-size={WIDTH},{HEIGHT}",
                                "--hide-scrollbars", f"--user-data-dir={work / 'profile'}",
                                "about:blank"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        url = None
        while url is None:
            found = re.search(r"DevTools listening on (ws://\S+)", process.stderr.readline())
            url = found and found.group(1)
        tools = DevTools(url)
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        page = Page(tools, tools.call("Target.attachToTarget", targetId=target,
                                      flatten=True)["sessionId"])
        page.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)
        page.open((work / "scan" / "report.html").as_uri())
        page.choose("#f-column", "table")
        page.click("tr[data-row='2661'] input[value='drop']")
        page.click("tr[data-row='49'] input[value='keep']")
        page.type("tr[data-row='49'] input.note", "decimal comma: 12.5 is a valid table")
        page.js("window.scrollTo(0, 0)")
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT, "scale": 1})
        (ROOT / "docs" / "report.png").write_bytes(base64.b64decode(shot["data"]))
        tools.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
