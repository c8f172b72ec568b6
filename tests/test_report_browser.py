"""The review page in a real browser: headless Chromium driven over the DevTools protocol.

The whole review workflow on a dataset whose cells carry script and formula payloads:
scan, open ``report.html`` from disk, check the headline numbers against
``summary.json``, filter and sort, mark two suspects (a real mouse click on each radio
button, a typed note), export ``decisions.csv`` through the page's download, run
``poisonscan apply`` on it and a later scan with ``--allowlist``.

The browser is Debian's ``chromium``; a tiny WebSocket client (stdlib only) speaks the
DevTools protocol, so the tests need no browser-automation package. Without Chromium the
tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest

from poisonscan.cli import main
from poisonscan.io.sinks import _guard_text

from conftest import make_frame

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--mute-audio",
                  "--remote-debugging-port=0", "--window-size=1400,1000")
SCRIPT_CELL = "<script>window.pwned=1</script>"
IMG_CELL = '<img src=x onerror="window.pwned=2">'
BREAKOUT_ID = "</script><script>window.pwned=3</script>"
FORMULA_ID = '=HYPERLINK("http://evil.invalid","click")'
FORMULA_NOTE = "=1+2"
HOSTILE_COLUMN = 'count<img src=x onerror="window.pwned=4">'


def chromium_path() -> str | None:
    """The Chromium binary, or ``None``."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def require_chromium() -> str:
    """The Chromium binary; skip the test without it (fail instead under ``CI=true``)."""
    path = chromium_path()
    if path is None:
        reason = ("Chromium not found (Debian: apt-get install -y chromium); "
                  "the browser tests of report.html need it")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


def test_without_chromium_skips_locally_and_fails_under_ci(monkeypatch):
    import test_report_browser as module

    monkeypatch.setattr(module, "chromium_path", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        module.require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: Chromium not found"):
        module.require_chromium()


# ============================================================================ DevTools client


class DevTools:
    """A minimal Chrome DevTools Protocol client over one WebSocket (RFC 6455, stdlib)."""

    def __init__(self, url: str, timeout: float = 30.0):
        parsed = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.hostname}:"
                           f"{parsed.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        head, self.buffer = response.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        self.sock.close()

    def _send(self, text: str) -> None:
        data = text.encode("utf-8")
        header = bytearray([0x81])
        if len(data) < 126:
            header.append(0x80 | len(data))
        elif len(data) < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes(header) + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _receive(self) -> dict:
        message = b""
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._read(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(size)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools connection closed")
            if opcode in (9, 10):
                continue
            message += payload
            if first & 0x80:
                return json.loads(message)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self.next_id += 1
        ident = self.next_id
        request = {"id": ident, "method": method, "params": params}
        if session:
            request["sessionId"] = session
        self._send(json.dumps(request))
        while True:
            message = self._receive()
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)


class Page:
    """One browser tab: evaluate script, click like a mouse, type like a keyboard."""

    def __init__(self, tools: DevTools, session: str):
        self.tools, self.session = tools, session

    def call(self, method: str, **params) -> dict:
        return self.tools.call(method, session=self.session, **params)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.js("document.readyState") == "complete" and \
                    self.js("location.href") == url:
                return
            time.sleep(0.05)
        raise TimeoutError(url)

    def click(self, selector: str) -> None:
        """A real left click (mouse pressed and released) on the element's centre."""
        box = self.js(f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
            el.scrollIntoView({{block: "center"}}); const r = el.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                      button="left" if kind != "mouseMoved" else "none", clickCount=1)

    def choose(self, selector: str, value: str) -> None:
        """Pick an option of a ``<select>`` (as the user's choice: a change event)."""
        self.js(f"""{{ const s = document.querySelector({json.dumps(selector)});
            s.value = {json.dumps(value)}; s.dispatchEvent(new Event("change")); }}""")

    def type(self, selector: str, text: str) -> None:
        self.click(selector)
        self.call("Input.insertText", text=text)


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = profile.parent / f"{profile.name}.stderr"
    with open(log, "w") as stderr:  # a file, not a pipe: Chromium never blocks on it
        process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                    "about:blank"], stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline and process.poll() is None:
            found = re.search(r"DevTools listening on (ws://\S+)", log.read_text(errors="replace"))
            url = found.group(1) if found else time.sleep(0.05)
        assert url, f"Chromium did not start its DevTools endpoint: {log.read_text()[-500:]}"
        tools = DevTools(url)
        yield tools
        tools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def new_page(tools: DevTools, downloads: Path) -> Page:
    target = tools.call("Target.createTarget", url="about:blank")["targetId"]
    session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    tools.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads),
               eventsEnabled=True)
    page = Page(tools, session)
    page.call("Runtime.enable")
    return page


# ============================================================================ the data


def hostile_frame() -> pd.DataFrame:
    """500 rows, with script and formula payloads in cells, the id and a column name."""
    df = make_frame(500, seed=3).rename(columns={"count": HOSTILE_COLUMN})
    df.loc[5, "colour"] = SCRIPT_CELL        # rare value: a suspect
    df.loc[9, "colour"] = IMG_CELL           # rare value: a suspect
    df.loc[12, "x"] = -9000.0                # out of range: a suspect ...
    df.loc[12, "uid"] = FORMULA_ID           # ... whose id is a formula
    df.loc[30, "x"] = 9000.0
    df.loc[30, "uid"] = BREAKOUT_ID          # ends up in the page's JSON
    df.loc[44, "colour"] = "=cmd|' /C calc'!A0"
    return df


def _scan(data: Path, out: Path, *extra: str) -> int:
    return main(["scan", str(data), "--label", "y", "--id-column", "uid", "--out", str(out),
                 "--checks", "bounds", "--quiet", "--format", "csv", *extra])


def test_review_workflow_in_chromium(browser, tmp_path):
    data = tmp_path / "hostile.csv"
    hostile_frame().to_csv(data, index=False)
    out = tmp_path / "scan"
    assert _scan(data, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    suspects = pd.read_csv(out / "suspects.csv", dtype=str, keep_default_na=False)
    assert {"5", "9", "12", "30", "44"} <= set(suspects["row"])

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page = new_page(browser, downloads)
    page.open((out / "report.html").as_uri())

    # the script ran (its CSP hash matches) and no payload did
    assert page.js("typeof window.poisonscanDecisionsCsv") == "function"
    assert page.js("window.pwned === undefined") is True
    text = page.js("document.body.innerText")
    for payload in (SCRIPT_CELL, IMG_CELL, HOSTILE_COLUMN):
        assert payload in text  # shown as text
    assert page.js("document.querySelectorAll('script').length") == 2
    assert page.js("document.querySelectorAll('img').length") == 0
    data_json = json.loads(page.js("document.getElementById('poisonscan-data').textContent"))
    assert BREAKOUT_ID in [s["id"] for s in data_json["suspects"]]

    # the headline numbers are summary.json's
    kpi = page.js("Object.fromEntries([...document.querySelectorAll('[data-kpi]')]"
                  ".map(e => [e.dataset.kpi, e.textContent]))")
    assert kpi["in"] == f"{summary['rows']['in']:,}"
    assert kpi["clean"] == f"{summary['rows']['clean']:,}"
    assert kpi["quarantined"] == f"{summary['rows']['quarantined']:,}"
    assert kpi["family-bounds"] == f"{summary['checks']['bounds']['rows_quarantined']:,}"
    assert page.js("document.querySelectorAll('#suspects tbody tr').length") == len(suspects)

    # filter by column: only the suspects whose reasons name x stay visible
    page.choose("#f-column", "x")
    visible = page.js("[...document.querySelectorAll('#suspects tbody tr')]"
                      ".filter(r => !r.hidden).map(r => Number(r.dataset.row))")
    assert sorted(visible) == [12, 30]
    page.choose("#f-column", "")
    # sort by row (a click on the header): ascending row ids
    page.click("#suspects thead th:nth-child(2)")
    page.click("#suspects thead th:nth-child(2)")
    order = page.js("[...document.querySelectorAll('#suspects tbody tr')]"
                    ".map(r => Number(r.dataset.row))")
    assert order == sorted(order) and len(order) == len(suspects)

    # mark two suspects with the mouse and the keyboard, then export through the page
    page.click("tr[data-row='5'] input[value='drop']")
    page.click("tr[data-row='12'] input[value='keep']")
    page.type("tr[data-row='12'] input.note", FORMULA_NOTE)
    assert page.js("document.querySelector(\"tr[data-row='12']\").className") == "keep"
    page.click("#export")
    exported = downloads / "decisions.csv"
    deadline = time.monotonic() + 15
    while not exported.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exported.exists(), "the page did not download decisions.csv"
    lines = exported.read_text(encoding="utf-8").splitlines()
    fingerprint = {s["row"]: s["fingerprint"] for s in data_json["suspects"]}
    assert lines == [
        "row,id,decision,note,fingerprint",
        f'5,"{hostile_frame().loc[5, "uid"]}",drop,"",{fingerprint[5]}',
        # formula-guarded like the CSV review files: id and note start with '
        "12,\"'" + FORMULA_ID.replace('"', '""') + "\",keep,\"'" + FORMULA_NOTE
        + f'",{fingerprint[12]}',
    ]
    # the page's guard is the CSV files' guard
    probes = ["=1+1", "+1", "-1.5", "-x", "@SUM(A1)", "\tx", "1e5", "plain", "'=x", ""]
    assert page.js(f"{json.dumps(probes)}.map(window.poisonscanGuard)") == \
        [_guard_text(p) for p in probes]

    # apply: row 12 back in the clean file at its place, row 5 stays quarantined
    applied = tmp_path / "applied"
    assert main(["apply", str(out), "--decisions", str(exported), "--out", str(applied),
                 "--quiet"]) == 0
    clean = pd.read_csv(applied / "clean.csv", dtype=str, keep_default_na=False)
    before = pd.read_csv(out / "clean.csv", dtype=str, keep_default_na=False)
    original = pd.read_csv(data, dtype=str, keep_default_na=False)
    assert len(clean) == len(before) + 1
    assert clean["uid"].tolist() == [u for u in original["uid"] if u in set(before["uid"])
                                     or u == FORMULA_ID]
    assert clean.loc[clean["uid"] == FORMULA_ID, "x"].item() == original.loc[12, "x"]
    quarantine = pd.read_csv(applied / "quarantine.csv", dtype=str, keep_default_na=False)
    assert "12" not in set(quarantine["_row"]) and "5" in set(quarantine["_row"])
    record = json.loads((applied / "summary.json").read_text())["decisions"][-1]
    assert (record["kept_rows"], record["dropped_rows"]) == ([12], [5])

    # the page's script threw nothing (a CSP violation or a bug would show here)
    thrown = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
    assert thrown == []

    # a later scan remembers the kept row
    again = tmp_path / "again"
    assert _scan(data, again, "--allowlist", str(exported)) == 0
    later = json.loads((again / "summary.json").read_text())
    assert later["decision"]["allowlisted"] == 1
    assert "12" not in set(pd.read_csv(again / "suspects.csv", dtype=str)["row"])
    assert later["rows"]["quarantined"] == summary["rows"]["quarantined"] - 1
