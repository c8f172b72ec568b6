"""Measure wall time and peak memory of a command and all its child processes.

:func:`run_measured` starts a command, samples the resident set size (RSS) of
the process and of every descendant every ``interval`` seconds with psutil,
sums them, and keeps the maximum. It also reaps the child with ``os.wait4`` to
obtain the kernel's ``ru_maxrss`` (the largest single process of the tree that
was waited for), a cross-check that does not depend on sampling.

Summing RSS counts pages shared between processes (e.g. forked workers) once
per process, so the sum is an upper bound of the tree's real footprint.
``ru_maxrss`` also counts the measuring process's own memory at spawn time
(Linux keeps the pre-``exec`` high-water mark), so it is only a cross-check.

Run as a script, the module also provides the bare-read floor::

    python benchmarks/_measure.py read FILE [--batch-rows N]

which streams FILE with pyarrow (Parquet with ``pre_buffer=False``; CSV with
the streaming reader) and prints the row count.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Sequence

MB = 1024 * 1024


@dataclass
class Measurement:
    """What :func:`run_measured` observed.

    Attributes
    ----------
    wall_s : float
        Wall time from start to exit, in seconds.
    peak_rss : int
        Peak memory of the tree, in bytes: the largest sampled sum of RSS
        over the process tree.
    maxrss : int
        Kernel ``ru_maxrss`` of the reaped child (largest single process that
        was waited for), in bytes. A cross-check only: Linux records the
        high-water mark of the memory a process had before ``exec``, so this
        includes the resident size of the measuring process at spawn time.
    max_processes : int
        Largest number of live processes seen in the tree at once.
    samples : int
        Number of RSS samples taken.
    returncode : int
        Exit code (negative signal number when killed by a signal).
    status : str
        ``ok``, ``failed`` (non-zero exit), ``timeout`` or ``memory``
        (killed for exceeding a limit).
    stdout, stderr : str
        Captured output (stderr truncated to its last 4,000 characters).
    largest_rss : int
        Largest RSS of any single process of the tree in any sample, in bytes (for a
        Dask run: the biggest of client, scheduler and workers).
    """

    wall_s: float
    peak_rss: int
    maxrss: int
    max_processes: int
    samples: int
    returncode: int
    status: str
    stdout: str = ""
    stderr: str = ""
    largest_rss: int = 0

    @property
    def peak_mb(self) -> float:
        """Peak summed RSS in MiB."""
        return self.peak_rss / MB

    def as_dict(self) -> dict:
        """Return the fields and ``peak_mb`` as a plain dict."""
        return {**asdict(self), "peak_mb": self.peak_mb}


def tree_rss(root) -> tuple[int, int]:
    """Return (summed RSS in bytes, number of processes) of a psutil process tree.

    Processes that exit while being read are skipped.

    Parameters
    ----------
    root : psutil.Process
        Root of the tree.
    """
    return tree_rss_detail(root)[:2]


def tree_rss_detail(root) -> tuple[int, int, int]:
    """Return (summed RSS, number of processes, largest single RSS) of a process tree."""
    import psutil

    try:
        processes = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0, 0, 0
    total = count = largest = 0
    for process in processes:
        try:
            rss = process.memory_info().rss
        except psutil.Error:
            continue
        total, count, largest = total + rss, count + 1, max(largest, rss)
    return total, count, largest


def _kill_tree(root) -> None:
    import psutil

    try:
        processes = root.children(recursive=True) + [root]
    except psutil.Error:
        return
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.Error:
            continue


def _wait_nohang(pid: int):
    """Return (exit code, rusage) once ``pid`` has exited, else None."""
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status), usage


def run_measured(cmd: Sequence[str], *, interval: float = 0.05, timeout: float | None = None,
                 max_rss: int | None = None, env: dict | None = None,
                 cwd: str | None = None) -> Measurement:
    """Run a command and measure its wall time and peak tree memory.

    Parameters
    ----------
    cmd : sequence of str
        Command and arguments (no shell).
    interval : float
        Seconds between RSS samples.
    timeout : float, optional
        Kill the whole tree after this many seconds (status ``timeout``).
    max_rss : int, optional
        Kill the whole tree when its summed RSS exceeds this many bytes
        (status ``memory``).
    env : dict, optional
        Environment of the command.
    cwd : str, optional
        Working directory of the command.

    Returns
    -------
    Measurement
    """
    import psutil

    out_path, err_path = _temp_paths()
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd)
        root = psutil.Process(proc.pid)
        peak = most = samples = largest = 0
        status = None
        while True:
            finished = _wait_nohang(proc.pid)
            if finished is not None:
                break
            rss, count, single = tree_rss_detail(root)
            peak, most, samples = max(peak, rss), max(most, count), samples + 1
            largest = max(largest, single)
            elapsed = time.perf_counter() - start
            if status is None and timeout is not None and elapsed > timeout:
                status = "timeout"
                _kill_tree(root)
            if status is None and max_rss is not None and rss > max_rss:
                status = "memory"
                _kill_tree(root)
            time.sleep(interval)
        wall = time.perf_counter() - start
        returncode, usage = finished
        proc.returncode = returncode
        stdout, stderr = _read_back(out), _read_back(err)
    for path in (out_path, err_path):
        os.unlink(path)
    maxrss = usage.ru_maxrss * 1024  # kilobytes on Linux
    if status is None:
        status = "ok" if returncode == 0 else "failed"
    return Measurement(wall, peak, maxrss, most, samples, returncode, status,
                       stdout, stderr[-4000:], largest)


def _temp_paths() -> tuple[str, str]:
    import tempfile

    paths = []
    for suffix in (".out", ".err"):
        handle, path = tempfile.mkstemp(prefix="measure-", suffix=suffix)
        os.close(handle)
        paths.append(path)
    return paths[0], paths[1]


def _read_back(handle) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


# --------------------------------------------------------------------------- read floor

def read_floor(path: str, batch_rows: int = 100_000) -> int:
    """Stream a file with plain pyarrow and return its row count.

    This is the cheapest possible pass over the data: the floor a scanner's
    time and memory are compared with.

    Parameters
    ----------
    path : str
        ``.parquet``, ``.csv`` or ``.csv.gz`` file.
    batch_rows : int
        Rows per Parquet batch (CSV batches follow the reader's block size).
    """
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path, pre_buffer=False)
        batches = source.iter_batches(batch_size=batch_rows)
    else:
        import pyarrow.csv as pacsv

        batches = pacsv.open_csv(path)
    return sum(batch.num_rows for batch in batches)


def floor_command(path: str) -> list[str]:
    """Return the command that measures the bare-read floor of ``path``."""
    return [sys.executable, os.path.abspath(__file__), "read", path]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``read FILE`` prints the row count of a bare read."""
    parser = argparse.ArgumentParser(description="bare pyarrow read of a file (the floor)")
    parser.add_argument("action", choices=["read"])
    parser.add_argument("path")
    parser.add_argument("--batch-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    print(read_floor(args.path, args.batch_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
