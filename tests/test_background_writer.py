"""Pass 3's files written in background threads: the same bytes, errors not lost."""

from __future__ import annotations

import errno
import threading

import numpy as np
import pyarrow as pa
import pytest

from poisonscan.io.sinks import BackgroundWriter, TableWriter

SCHEMA = pa.schema([("x", pa.float64()), ("s", pa.string())])


def _tables(count: int) -> list[pa.Table]:
    rng = np.random.default_rng(0)
    return [pa.table({"x": rng.normal(size=n), "s": [f"=cell{i}" for i in range(n)]},
                     schema=SCHEMA) for n in rng.integers(0, 70_000, size=count)]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_file_is_the_one_written_directly(tmp_path, fmt):
    tables = _tables(9)
    direct = TableWriter(tmp_path / f"direct.{fmt}", SCHEMA, fmt, guard_formulas=True)
    for t in tables:
        direct.write(t)
    direct.close()
    background = BackgroundWriter(TableWriter(tmp_path / f"bg.{fmt}", SCHEMA, fmt,
                                              guard_formulas=True))
    for t in tables:
        background.write(t)
    background.close()
    assert (tmp_path / f"bg.{fmt}").read_bytes() == (tmp_path / f"direct.{fmt}").read_bytes()
    assert background.writer.rows == sum(t.num_rows for t in tables)


class _Failing:
    """A writer whose third write fails, recording the thread of every call."""

    def __init__(self):
        self.writes, self.threads, self.closed = 0, set(), False

    def write(self, table):
        self.threads.add(threading.get_ident())
        self.writes += 1
        if self.writes == 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        self.closed = True


def test_a_failed_write_is_raised_and_the_writer_still_closed():
    inner = _Failing()
    writer = BackgroundWriter(inner, depth=2)
    with pytest.raises(OSError, match="No space left"):
        for t in _tables(8):
            writer.write(t)
        writer.close()
    writer.close()  # the caller's cleanup: closes the file whatever happened
    assert inner.closed
    assert inner.threads and threading.get_ident() not in inner.threads
