"""Fuzzing the ingestion and the bounds check (Hypothesis; issue 13).

Generated CSV bytes (tricky tokens, quotes, newlines, NULs, invalid UTF-8, a BOM, ragged
rows, compressed or not) and damaged Parquet files go through the real scan with the bounds
check. The only allowed outcomes: a finished scan in which every row is accounted for, or a
:class:`poisonscan.UsageError` whose message is one line naming the file. Anything else
(another exception, a multi-line message, a hang past ``HANG_SECONDS``) is a finding.

In CI a brief run (profile ``fuzz-ci``, 50 examples per target). The long run (at least
10 minutes; see the issue-13 note for results)::

    HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py -q -p no:cacheprovider

Profiles are registered here and picked by name without loading them globally, so other
test modules keep their own settings.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

import poisonscan
from poisonscan.errors import UsageError

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=list(HealthCheck))
settings.register_profile("fuzz-ci", max_examples=50, derandomize=True,
                          phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.register_profile("long", max_examples=20_000, **_COMMON)  # 10+ minutes here
FUZZ = settings.get_profile(
    os.environ.get("HYPOTHESIS_PROFILE") if os.environ.get("HYPOTHESIS_PROFILE") == "long"
    else "fuzz-ci")
HANG_SECONDS = 60

TOKENS = ["0", "1", "-1", "3.5", "1e999", "-1e999", "nan", "NaN", "inf", "-Infinity", "1_000",
          "0x1F", "", " ", "NA", "null", "None", "#N/A", "true", "2024-01-01", "2024-13-45",
          "a", "red", "=1+1", "@x", "<b>", "é", "\u0661", "\ufeff", '"', '""', '"q"', "'",
          ",", "\n", "\r", "\r\n", "\t", "\x00", "\\", "9" * 400, "x" * 300]
RAW = [b"\xff", b"\xfe", b"\xc3", b"\xe9", b"\x80", b"\xef\xbb\xbf", b"\x1f\x8b"]

SAFE = [t for t in TOKENS if not any(c in t for c in '",\n\r')]
#: Cells that keep the row shape (quoted where needed) ...
tame = st.one_of(st.sampled_from(SAFE).map(str.encode),
                 st.sampled_from(SAFE).map(lambda t: b'"' + t.encode() + b'"'),
                 st.sampled_from(TOKENS).map(lambda t: b'"' + t.replace('"', '""').encode()
                                             + b'"'),
                 st.sampled_from(RAW))
#: ... and cells that may break it (stray quotes, separators, any text).
wild = st.one_of(tame, st.text(max_size=6).map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.sampled_from(TOKENS).map(str.encode))


@st.composite
def csv_bytes(draw):
    width = draw(st.integers(1, 6))
    header = [draw(st.sampled_from(["a", "b", "y", "x y", "", "a", "\ufeffz", "=h", "n\u00e9"]))
              for _ in range(width)]
    if "y" not in header and draw(st.booleans()):
        header[-1] = "y"
    lines = [b",".join(h.encode() for h in header)]
    cells = wild if draw(st.integers(0, 3)) == 0 else tame
    rows = draw(st.integers(0, 40))
    # at most one row of the wrong width, in one file of five
    ragged = draw(st.integers(0, max(rows - 1, 0))) if draw(st.integers(0, 4)) == 0 else -1
    for i in range(rows):
        fields = width + (draw(st.sampled_from([-1, 1])) if i == ragged else 0)
        lines.append(b",".join(draw(cells) for _ in range(max(fields, 1))))
    sep = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    data = sep.join(lines) + draw(st.sampled_from([b"", sep]))
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data, draw(st.sampled_from([".csv", ".csv", ".csv", ".csv.gz"]))


@contextlib.contextmanager
def _hang_guard(seconds: int):
    def fire(signum, frame):
        raise TimeoutError(f"no result after {seconds} s: a hang")
    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _scan_or_clear_error(path: Path, out: Path) -> None:
    label = None
    with _hang_guard(HANG_SECONDS):
        try:
            head = pq.read_schema(path).names if path.suffix == ".parquet" else []
        except Exception:  # noqa: BLE001 - only to pick a label; the scan decides
            head = []
        label = "y" if "y" in head or path.suffix != ".parquet" else None
        try:
            res = poisonscan.scan(str(path), label=label, out=out, checks="bounds",
                                  chunk_rows=7, sample_rows=32, overwrite=True)
        except UsageError as exc:
            message = str(exc)
            event("error: " + message[len(str(path)):][:70])
            assert "\n" not in message, message
            assert message.startswith(str(path)), message
            return
    event("scanned")
    rows = res.summary["rows"]
    assert rows["clean"] + rows["quarantined"] == rows["in"]
    scores = pq.read_table(out / "scores.parquet", columns=["row"]).column("row").to_pylist()
    assert scores == list(range(rows["in"]))


@FUZZ
@given(case=csv_bytes())
def test_fuzz_csv_ingestion_and_bounds(tmp_path_factory, case):
    data, suffix = case
    tmp = tmp_path_factory.mktemp("fz")
    path = tmp / f"in{suffix}"
    path.write_bytes(gzip.compress(data, mtime=0) if suffix == ".csv.gz" else data)
    _scan_or_clear_error(path, tmp / "out")


def _valid_parquet() -> bytes:
    table = pa.table({"a": [float(i) for i in range(40)], "s": ["p", "q"] * 20,
                      "y": ["u", "v", "v", "u"] * 10})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=16)
    return buf.getvalue()


PARQUET = _valid_parquet()


@FUZZ
@example(cut=0, flips=[(197, 128)])  # long-run finding: invalid UTF-8 in a string page (exit 3)
@example(cut=0, flips=[(33, 22)])  # long-run finding: an infinite learned bound (exit 3)
@given(cut=st.integers(0, len(PARQUET)),
       flips=st.lists(st.tuples(st.integers(0, len(PARQUET) - 1), st.integers(1, 255)),
                      max_size=4))
def test_fuzz_damaged_parquet(tmp_path_factory, cut, flips):
    data = bytearray(PARQUET)
    for position, mask in flips:
        data[position] ^= mask
    if cut < len(data) and not flips:
        data = data[:cut]
    tmp = tmp_path_factory.mktemp("fp")
    path = tmp / "in.parquet"
    path.write_bytes(bytes(data))
    _scan_or_clear_error(path, tmp / "out")
