"""Scale benchmark: time and peak memory of a full poisonscan scan vs. rows.

For each requested size the script generates (or reuses, cached under
``--data-dir``) a synthetic file with known poisons (``make_data.py``), then
measures, each as a subprocess:

* a bare pyarrow read of the file -- the floor;
* a full ``poisonscan scan FILE --label label --id-column id --out OUT
  --overwrite --quiet`` -- wall time, rows/s, peak resident memory of the
  whole process tree (RSS sampled every 50 ms over the process and all its
  children, summed; the kernel's ``ru_maxrss`` as a cross-check);
* with ``--peers``, cleanlab Datalab on the Parquet sizes in increasing order
  under a time and memory budget, stopping at the first size it cannot finish.

It writes a Markdown section between ``<!-- scale:start -->`` and
``<!-- scale:end -->`` of ``benchmarks/RESULTS.md``, a plot
``benchmarks/scale.png`` and the raw figures as JSON under ``--out-dir``.

With ``--dask`` it instead scans each size twice, on the local engine and on the
Dask engine (``--engine dask``: a local cluster sized to the machine, started by
the scan; ``--dask-args`` adds options such as ``--scheduler ADDRESS``), checks
that both give the same answer, and writes only the section between
``<!-- scale-dask:start -->`` and ``<!-- scale-dask:end -->`` (raw figures in
``scale-dask.json``); the peak of the largest single process bounds what one
worker needs.

With ``--needle`` it scans one file with exactly 100 planted poisons (the needle in the
haystack, issue 14; see ``_needle.py``) and writes only the section between
``<!-- needle:start -->`` and ``<!-- needle:end -->`` (raw figures in ``needle.json``).

``--results`` and ``--plot`` redirect what is written (e.g. to a scratch file while
iterating).

Sizes take an optional format: ``1M:csv`` scans a 1M-row CSV whatever
``--format`` says. Examples::

    python benchmarks/scale.py --sizes 100k 1M 2M 8M 1M:csv --peers
    python benchmarks/scale.py --sizes 2000000 8000000   # issue 2's memory check
    python benchmarks/scale.py --sizes 1M --dask         # issue 11: Dask beside local
    python benchmarks/scale.py --sizes 1M --needle       # issue 14: 100 poisons in 1M rows
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import make_data
from _measure import MB, Measurement, floor_command, run_measured

HERE = Path(__file__).resolve().parent
MARK_START, MARK_END = "<!-- scale:start -->", "<!-- scale:end -->"
DASK_START, DASK_END = "<!-- scale-dask:start -->", "<!-- scale-dask:end -->"
RESULTS_HEADING = "# poisonscan benchmark results"

#: Issue 2's acceptance: peak at 2M rows and the extra peak for 4x the rows.
PEAK_LIMIT_MB, GROWTH_LIMIT_MB = 1536, 200
GROWTH_PAIR = (2_000_000, 8_000_000)


@dataclass(frozen=True)
class Case:
    """One dataset to scan: a row count and a file format."""

    rows: int
    fmt: str

    @property
    def name(self) -> str:
        """Short size label, e.g. ``2M`` or ``100k``."""
        return human_rows(self.rows)


@dataclass
class CaseResult:
    """Everything measured for one :class:`Case`."""

    case: Case
    file_mb: float
    floor: Measurement
    scan: Measurement
    summary: dict = field(default_factory=dict)
    detection: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        """Scan throughput in rows per second."""
        return self.case.rows / self.scan.wall_s

    def as_dict(self) -> dict:
        """Return a JSON-friendly dict (captured output dropped)."""
        def compact(m: Measurement) -> dict:
            return {k: v for k, v in m.as_dict().items() if k not in ("stdout", "stderr")}

        return {"rows": self.case.rows, "format": self.case.fmt, "file_mb": self.file_mb,
                "floor": compact(self.floor), "scan": compact(self.scan),
                "rows_per_s": self.rows_per_s, "timings": scan_timings(self.summary),
                "detection": self.detection}


# --------------------------------------------------------------------------- parsing

def human_rows(rows: int) -> str:
    """Return ``100k``, ``2M``, ``2.5M`` style labels for row counts."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % (size // 10) == 0:
            return f"{rows / size:g}{unit}"
    return str(rows)


def parse_case(text: str, default_fmt: str) -> Case:
    """Parse ``ROWS`` or ``ROWS:FORMAT`` (e.g. ``1M:csv``) into a :class:`Case`."""
    rows, _, fmt = text.partition(":")
    fmt = fmt or default_fmt
    if fmt not in ("parquet", "csv", "csv.gz"):
        raise argparse.ArgumentTypeError(f"unknown format in {text!r}")
    return Case(make_data.parse_rows(rows), fmt)


def scan_command(scanner: list[str], path: Path, out: Path, extra: list[str]) -> list[str]:
    """Return the full scan command for one file."""
    return [*scanner, "scan", str(path), "--label", "label", "--id-column", "id",
            "--out", str(out), "--overwrite", "--quiet", *extra]


def default_scanner() -> list[str]:
    """Return the ``poisonscan`` console script, or ``python -m poisonscan``."""
    script = shutil.which("poisonscan")
    return [script] if script else [sys.executable, "-m", "poisonscan"]


# --------------------------------------------------------------------------- running

def dataset(case: Case, data_dir: Path, seed: int, poison_rate: float) -> Path:
    """Return the cached data file of a case, generating it when absent."""
    suffix = {"parquet": "parquet", "csv": "csv", "csv.gz": "csv.gz"}[case.fmt]
    path = data_dir / f"synth_{case.name}_seed{seed}_rate{poison_rate:g}.{suffix}"
    if not (path.exists() and make_data.truth_path(path).exists()):
        _log(f"generating {path}")
        make_data.write_dataset(path, case.rows, fmt=case.fmt, seed=seed,
                                poison_rate=poison_rate)
    return path


def detection(out: Path, truth: Path) -> dict:
    """Compare the scan's suspects with the ground truth of the poisons.

    Returns ``suspects``, ``poisoned``, ``recall`` and ``precision``, or an
    empty dict when the scan left no ``scores.parquet``.
    """
    import numpy as np
    import pyarrow.parquet as pq

    scores_path = out / "scores.parquet"
    if not scores_path.exists():
        return {}
    scores = pq.read_table(scores_path, columns=["row", "suspect"])
    suspect = np.zeros(scores.num_rows, bool)
    suspect[scores["row"].to_numpy()] = scores["suspect"].to_numpy(zero_copy_only=False)
    truth_table = pq.read_table(truth, columns=["row", "attack"])
    poisoned = truth_table["row"].to_numpy()
    attacks = np.asarray(truth_table["attack"].to_pylist(), dtype=object)
    found = suspect[poisoned]
    hits = int(found.sum())
    by_attack = {a: float(found[attacks == a].mean()) for a in make_data.ATTACKS
                 if (attacks == a).any()}
    return {"suspects": int(suspect.sum()), "poisoned": len(poisoned),
            "recall": hits / max(len(poisoned), 1), "precision": hits / max(int(suspect.sum()), 1),
            "recall_by_attack": by_attack}


def scan_timings(summary: dict) -> dict:
    """Return the phase timings (seconds) a scan reported in its summary."""
    timings = summary.get("timings_seconds", summary.get("timings"))
    return timings if isinstance(timings, dict) else {}


def read_summary(out: Path) -> dict:
    """Return the scan's ``summary.json``, or an empty dict."""
    path = out / "summary.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def run_case(case: Case, args: argparse.Namespace) -> CaseResult:
    """Generate, read and scan one case; return its measurements."""
    path = dataset(case, args.data_dir, args.seed, args.poison_rate)
    out = args.out_dir / f"scan_{case.name}_{case.fmt}"
    _log(f"{case.name} {case.fmt}: bare read")
    floor = run_measured(floor_command(str(path)), interval=args.interval)
    _check(floor, "bare read")
    _log(f"{case.name} {case.fmt}: scan")
    cmd = scan_command(args.scanner, path, out, args.scan_args)
    scan = run_measured(cmd, interval=args.interval, timeout=args.timeout)
    _check(scan, shlex.join(cmd))
    result = CaseResult(case, path.stat().st_size / MB, floor, scan, read_summary(out),
                        detection(out, make_data.truth_path(path)))
    _log(f"{case.name} {case.fmt}: {scan.wall_s:.1f} s, {result.rows_per_s:,.0f} rows/s, "
         f"peak {scan.peak_mb:,.0f} MB (floor {floor.wall_s:.1f} s, {floor.peak_mb:,.0f} MB)")
    return result


def run_peers(cases: list[Case], args: argparse.Namespace) -> list[dict]:
    """Run cleanlab Datalab on growing sizes until one fails its budget."""
    results = []
    for case in sorted(cases, key=lambda c: c.rows):
        path = dataset(case, args.data_dir, args.seed, args.poison_rate)
        report = args.out_dir / f"cleanlab_{case.name}_{case.fmt}.json"
        cmd = [sys.executable, str(HERE / "_scale_peers.py"), str(path), "--label", "label",
               "--id-column", "id", "--truth", str(make_data.truth_path(path)),
               "--seed", str(args.seed), "--out", str(report)]
        _log(f"cleanlab {case.name} {case.fmt} (budget {args.peer_budget:g} s, "
             f"{args.peer_max_mb:,.0f} MB)")
        measured = run_measured(cmd, interval=args.interval, timeout=args.peer_budget,
                                max_rss=int(args.peer_max_mb * MB))
        entry = {"rows": case.rows, "format": case.fmt, "status": measured.status,
                 "wall_s": measured.wall_s, "peak_mb": measured.peak_mb,
                 "budget": {"seconds": args.peer_budget, "mb": args.peer_max_mb}}
        if measured.status == "ok":
            entry.update(json.loads(report.read_text(encoding="utf-8")))
        else:
            entry["error"] = measured.stderr.strip().splitlines()[-1:] or [""]
        results.append(entry)
        _log(f"cleanlab {case.name}: {measured.status}, {measured.wall_s:.1f} s, "
             f"peak {measured.peak_mb:,.0f} MB")
        if measured.status != "ok":
            break
    return results


def _check(measured: Measurement, what: str) -> None:
    if measured.status != "ok":
        raise RuntimeError(f"{what} ended with status {measured.status} "
                           f"(exit {measured.returncode}):\n{measured.stderr}")


def _log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- reporting

def environment(scanner: list[str]) -> dict:
    """Return package versions and machine facts for the report."""
    import psutil

    versions = {}
    for package in ("poisonscan", "pyarrow", "numpy", "pandas", "scikit-learn", "pyod",
                    "cleanlab", "psutil"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {"python": platform.python_version(), "versions": versions,
            "nproc": len(os.sched_getaffinity(0)),
            "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "cpu": _cpu_model(), "os": platform.platform(), "scanner": shlex.join(scanner),
            "commit": _git_commit()}


def _git_commit() -> str:
    """Return the short commit of the working tree (``+dirty`` if modified), or ``?``."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "../poisonscan")
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return commit + ("+dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def growth_checks(results: list[CaseResult]) -> list[str]:
    """Return issue 2's memory acceptance lines for the Parquet results."""
    peak = {r.case.rows: r.scan.peak_mb for r in results if r.case.fmt == "parquet"}
    lines = []
    small, large = GROWTH_PAIR
    if small in peak:
        ok = peak[small] < PEAK_LIMIT_MB
        lines.append(f"* Peak at {human_rows(small)} rows: **{peak[small]:,.0f} MB** "
                     f"(target < {PEAK_LIMIT_MB:,} MB: {'met' if ok else 'NOT met'}).")
    if small in peak and large in peak:
        delta = peak[large] - peak[small]
        ok = delta <= GROWTH_LIMIT_MB
        lines.append(f"* {human_rows(small)} → {human_rows(large)} rows adds "
                     f"**{delta:+,.0f} MB** to the peak "
                     f"(target ≤ {GROWTH_LIMIT_MB} MB: {'met' if ok else 'NOT met'}).")
    sizes = sorted(size for size in peak if size >= 1_000_000) or sorted(peak)
    if len(sizes) >= 2:
        slope = (peak[sizes[-1]] - peak[sizes[0]]) * MB / (sizes[-1] - sizes[0])
        lines.append(f"* Peak-memory growth {human_rows(sizes[0])} → {human_rows(sizes[-1])}: "
                     f"{slope:,.1f} bytes per extra row.")
    return lines


def scan_table(results: list[CaseResult]) -> list[str]:
    """Return the Markdown table of the poisonscan runs."""
    head = ("| rows | format | file MB | wall s | rows/s | peak MB | ru_maxrss MB | "
            "read floor s | floor peak MB | time ratio | peak ratio | suspects | "
            "poison recall | precision |")
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for r in results:
        d = r.detection
        lines.append(
            f"| {r.case.rows:,} | {r.case.fmt} | {r.file_mb:,.0f} | {r.scan.wall_s:,.1f} | "
            f"{r.rows_per_s:,.0f} | {r.scan.peak_mb:,.0f} | {r.scan.maxrss / MB:,.0f} | "
            f"{r.floor.wall_s:,.1f} | {r.floor.peak_mb:,.0f} | "
            f"{r.scan.wall_s / r.floor.wall_s:,.1f}× | {r.scan.peak_mb / r.floor.peak_mb:,.1f}× | "
            f"{_int(d.get('suspects'))} | {_pct(d.get('recall'))} | {_pct(d.get('precision'))} |")
    return lines


def attack_table(results: list[CaseResult]) -> list[str]:
    """Return a table of the share of each attack's poisons the scan quarantined."""
    found = [(r, r.detection.get("recall_by_attack")) for r in results]
    found = [(r, by) for r, by in found if by]
    if not found:
        return []
    attacks = [a for a in make_data.ATTACKS if any(a in by for _, by in found)]
    lines = ["| rows | format | " + " | ".join(attacks) + " |",
             "|---:|---|" + "---:|" * len(attacks)]
    for r, by in found:
        cells = " | ".join(_pct(by.get(a)) for a in attacks)
        lines.append(f"| {r.case.rows:,} | {r.case.fmt} | {cells} |")
    return lines


def timings_table(results: list[CaseResult]) -> list[str]:
    """Return a table of the scan's own phase timings from ``summary.json``.

    Its first column, ``start-up``, is what the summary cannot time: the scan process's
    wall time outside :func:`poisonscan.scan` (interpreter start, imports, argument
    parsing), i.e. the measured wall time less the summary's ``total``.
    """
    timed = [(r, scan_timings(r.summary)) for r in results]
    timed = [(r, t) for r, t in timed if t]
    if not timed:
        return []
    keys = list(dict.fromkeys(k for _, t in timed for k, v in t.items()
                              if isinstance(v, (int, float))))
    lines = ["| rows | format | start-up s | " + " | ".join(f"{k} s" for k in keys) + " |",
             "|---:|---|---:|" + "---:|" * len(keys)]
    for r, t in timed:
        total = t.get("total")
        startup = r.scan.wall_s - total if isinstance(total, (int, float)) else None
        cells = " | ".join(_num(t.get(k)) for k in keys)
        lines.append(f"| {r.case.rows:,} | {r.case.fmt} | {_num(startup)} | {cells} |")
    return lines


def peer_table(peers: list[dict]) -> list[str]:
    """Return the Markdown table of the cleanlab Datalab runs."""
    if not peers:
        return []
    lines = ["| rows | status | wall s | rows/s | peak MB | pred_probs s | find_issues s | "
             "flagged | poison recall | precision |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in peers:
        timings = p.get("timings", {})
        lines.append(
            f"| {p['rows']:,} | {p['status']} | {p['wall_s']:,.1f} | "
            f"{_rate(p)} | {p['peak_mb']:,.0f} | "
            f"{_num(timings.get('pred_probs'))} | {_num(timings.get('find_issues'))} | "
            f"{_int(p.get('flagged'))} | {_pct(p.get('recall'))} | {_pct(p.get('precision'))} |")
    return lines


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _rate(peer: dict) -> str:
    return f"{peer['rows'] / peer['wall_s']:,.0f}" if peer["status"] == "ok" else "–"


def _int(value) -> str:
    return "–" if value is None else f"{value:,}"


def _num(value) -> str:
    return "–" if value is None else f"{value:,.1f}"


def peer_verdict(peers: list[dict], budget: dict) -> str:
    """Return one sentence saying where cleanlab stopped."""
    if not peers:
        return ""
    last = peers[-1]
    if last["status"] == "ok":
        return f"cleanlab Datalab finished every size tried, up to {last['rows']:,} rows."
    reason = {"timeout": f"did not finish within the {budget['seconds']:g} s budget",
              "memory": f"exceeded the {budget['mb']:,.0f} MB memory budget",
              "failed": f"failed ({' '.join(last.get('error', []))})"}[last["status"]]
    return f"cleanlab Datalab stopped at {last['rows']:,} rows: it {reason}."


def markdown(results: list[CaseResult], peers: list[dict], env: dict, command: str,
             args: argparse.Namespace, pending: list[str] = ()) -> str:
    """Return the whole Markdown section (without the markers)."""
    results = sorted(results, key=lambda r: (r.case.fmt != "parquet", r.case.fmt, r.case.rows))
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    lines = ["## Scale: time and peak memory vs. rows", "", f"Command: `{command}`", ""]
    if pending:
        lines += [f"**Partial run:** not measured (yet): {', '.join(pending)}.", ""]
    lines += [
        f"Machine: {env['nproc']} cores ({env['cpu']}), {env['memory_gb']} GB RAM, {env['os']}; "
        f"Python {env['python']}; {versions}; poisonscan at commit {env['commit']}. "
        f"1-minute load average {env['load'][0]} at the start, {env['load'][1]} at the end "
        "(other work on the machine slows wall times; memory is unaffected).", "",
        f"Data: `benchmarks/make_data.py`, {len(make_data.schema())} columns "
        f"({len(make_data.NUMERIC)} numeric, {len(make_data.CATEGORICALS)} categorical, id, "
        f"3-class label), seed {args.seed}, poison rate {args.poison_rate:g} "
        f"({len(make_data.ATTACKS)} attacks: {', '.join(make_data.ATTACKS)}).", "",
        f"Scan: `{shlex.join(scan_command(['poisonscan'], Path('FILE'), Path('OUT'), args.scan_args))}`. "
        "Peak MB is the largest sum of resident memory over the scan's whole process tree, "
        f"sampled every {args.interval * 1000:g} ms (ru_maxrss: the kernel's largest single "
        "process, a cross-check that also counts the benchmark process's own memory at "
        "spawn time). The read floor is a bare pyarrow streaming read of the same file "
        "in its own process (Parquet `pre_buffer=False`, batches of 100k rows; CSV "
        "`open_csv`); ratios are scan / floor.", "",
        *scan_table(results), "",
        *growth_checks(results), "",
    ]
    attacks = attack_table(results)
    if attacks:
        lines += ["Share of each attack's poisons among the quarantined rows (recall):", "",
                  *attacks, ""]
    timings = timings_table(results)
    if timings:
        lines += ["Phase timings reported by the scan (`summary.json`; start-up is the scan's "
                  "wall time less the summary's `total`: interpreter start, imports, "
                  "arguments):", "", *timings, ""]
    if peers:
        budget = next((p["budget"] for p in peers if "budget" in p),
                      {"seconds": args.peer_budget, "mb": args.peer_max_mb})
        lines += [f"### Peer: cleanlab Datalab (budget {budget['seconds']:g} s and "
                  f"{budget['mb']:,.0f} MB per size)", ""]
        if args.peers_command:
            lines += [f"From an earlier run on the same data and machine: `{args.peers_command}`.",
                      ""]
        lines += [
                  "Whole file in memory; features encoded (numeric standardised, one-hot "
                  "≤ 20 levels, frequency above); 3-fold out-of-fold probabilities from "
                  "HistGradientBoosting; `Datalab.find_issues(features=, pred_probs=)` with "
                  "its default issue types. Flagged = any issue type.", "",
                  *peer_table(peers), "", peer_verdict(peers, budget), ""]
    lines += ["![time and peak memory vs rows](scale.png)", ""]
    return "\n".join(lines)


def update_section(path: Path, body: str, start: str = MARK_START, end: str = MARK_END) -> None:
    """Replace the text between the scale markers of ``path`` (created if absent).

    Only the marked section changes; the rest of the file is kept as it is on
    disk at the moment of writing.
    """
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else f"{RESULTS_HEADING}\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".scale.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def plot(results: list[CaseResult], peers: list[dict], path: Path) -> None:
    """Draw wall time and peak memory vs. rows (log-log) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = {"parquet": "o", "csv": "s", "csv.gz": "D"}
    for fmt in sorted({r.case.fmt for r in results}):
        rs = sorted((r for r in results if r.case.fmt == fmt), key=lambda r: r.case.rows)
        rows = [r.case.rows for r in rs]
        series = (("poisonscan", "C0", "-", [r.scan for r in rs]),
                  ("pyarrow read", "C1", "--", [r.floor for r in rs]))
        for name, color, style, measured in series:
            kw = dict(color=color, ls=style, marker=markers[fmt], label=f"{name} ({fmt})")
            ax_time.plot(rows, [m.wall_s for m in measured], **kw)
            ax_mem.plot(rows, [m.peak_mb for m in measured], **kw)
    done = [p for p in peers if p["status"] == "ok"]
    if done:
        kw = dict(color="C2", ls=":", marker="^", label="cleanlab Datalab")
        ax_time.plot([p["rows"] for p in done], [p["wall_s"] for p in done], **kw)
        ax_mem.plot([p["rows"] for p in done], [p["peak_mb"] for p in done], **kw)
    stopped = [p for p in peers if p["status"] != "ok"]
    for p in stopped:
        kw = dict(color="C2", marker="x", ls="none", ms=9,
                  label=f"cleanlab stopped ({p['status']})")
        ax_time.plot([p["rows"]], [p["wall_s"]], **kw)
        ax_mem.plot([p["rows"]], [p["peak_mb"]], **kw)
    ax_mem.axhline(PEAK_LIMIT_MB, color="grey", lw=0.8, ls=":",
                   label=f"issue 2 limit ({PEAK_LIMIT_MB:,} MB)")
    ax_time.set_yscale("log")
    ax_mem.set_ylim(bottom=0)
    for ax, ylabel in ((ax_time, "wall time (s)"), (ax_mem, "peak resident memory (MB)")):
        ax.set_xscale("log")
        ax.set_xlabel("rows")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("poisonscan scan cost vs. rows")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", type=Path, default=None, metavar="SCALE_JSON",
                        help="measure nothing: rewrite RESULTS and the plot from a scale.json")
    parser.add_argument("--sizes", nargs="+", default=["100k", "1M", "2M", "8M"],
                        help="row counts, optionally with a format: 100k 1M 2M 8M 1M:csv")
    parser.add_argument("--format", default="parquet", choices=("parquet", "csv", "csv.gz"))
    parser.add_argument("--peers", action="store_true", help="also run cleanlab Datalab")
    parser.add_argument("--peer-budget", type=float, default=900, help="seconds per size")
    parser.add_argument("--peer-max-mb", type=float, default=16_000, help="MB per size")
    parser.add_argument("--reuse-peers", type=Path, default=None, metavar="SCALE_JSON",
                        help="show the cleanlab results of an earlier run's scale.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poison-rate", type=float, default=0.001)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per scan")
    parser.add_argument("--interval", type=float, default=0.05, help="RSS sampling seconds")
    parser.add_argument("--scanner", type=shlex.split, default=None,
                        help="scanner command (default: poisonscan, or python -m poisonscan)")
    parser.add_argument("--scan-args", type=shlex.split, default=[],
                        help="extra scan options, e.g. '--chunk-rows 100000'")
    parser.add_argument("--dask", action="store_true",
                        help="scan each size on the local and on the Dask engine; write only "
                             "the scale-dask section")
    parser.add_argument("--dask-args", type=shlex.split, default=["--partition-rows", "250000"],
                        help="extra options of the Dask scan (default: '--partition-rows "
                             "250000'; e.g. '--scheduler tcp://host:8786')")
    parser.add_argument("--needle", action="store_true",
                        help="scan one size with exactly 100 planted poisons (make_data."
                             "NEEDLE_MIX); write only the needle section")
    parser.add_argument("--data-dir", type=Path, default=HERE / "data")
    parser.add_argument("--out-dir", type=Path, default=HERE / "out" / "scale")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=HERE / "scale.png")
    return parser


#: Options the Markdown section describes; saved in scale.json for ``--render``.
SETTINGS = ("seed", "poison_rate", "interval", "scan_args")


def publish(args: argparse.Namespace, command: str, load_start: float,
            results: list[CaseResult], peers: list[dict], pending: list[str]) -> None:
    """Write scale.json, the RESULTS section and the plot for what has been measured.

    Called after every case, so a long run that is stopped still leaves its
    finished cases on record (marked as partial).
    """
    env = environment(args.scanner)
    env["load"] = (round(load_start, 1), round(os.getloadavg()[0], 1))
    raw = {"command": command, "environment": env, "pending": pending,
           "settings": {k: getattr(args, k) for k in SETTINGS},
           "results": [r.as_dict() for r in results], "peers": peers}
    (args.out_dir / "scale.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    update_section(args.results, markdown(results, peers, env, command, args, pending))
    plot(results, peers, args.plot)
    _log(f"wrote {args.results}, {args.plot} and {args.out_dir / 'scale.json'}")


def reused_peers(path: Path) -> tuple[list[dict], str]:
    """Return the cleanlab results and the command of an earlier run's scale.json."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return raw.get("peers", []), raw.get("command", str(path))


def load_results(raw: dict) -> list[CaseResult]:
    """Rebuild the :class:`CaseResult` list of a saved ``scale.json``."""
    def measurement(d: dict) -> Measurement:
        return Measurement(**{k: v for k, v in d.items() if k != "peak_mb"})

    return [CaseResult(Case(r["rows"], r["format"]), r["file_mb"], measurement(r["floor"]),
                       measurement(r["scan"]), {"timings_seconds": r.get("timings") or {}},
                       r.get("detection") or {}) for r in raw["results"]]


def render(args: argparse.Namespace, path: Path) -> int:
    """Rewrite the RESULTS section and the plot from a saved ``scale.json``."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    for name, value in raw.get("settings", {}).items():
        setattr(args, name, value)
    results, peers = load_results(raw), raw.get("peers", [])
    if args.reuse_peers:
        peers, args.peers_command = reused_peers(args.reuse_peers)
    for budget in (p.get("budget") for p in peers if p.get("budget")):
        args.peer_budget, args.peer_max_mb = budget["seconds"], budget["mb"]
    update_section(args.results, markdown(results, peers, raw["environment"], raw["command"],
                                          args, raw.get("pending", [])))
    plot(results, peers, args.plot)
    _log(f"wrote {args.results} and {args.plot} from {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.peers_command = None
    if args.render and args.dask:
        raw = json.loads(args.render.read_text(encoding="utf-8"))
        args.scan_args = raw.get("settings", {}).get("scan_args", args.scan_args)
        args.dask_args = raw["results"][0].get("dask_args", args.dask_args)
        update_section(args.results, dask_markdown(raw["results"], raw["environment"],
                                                   raw["command"], args), DASK_START, DASK_END)
        return 0
    if args.render:
        return render(args, args.render)
    args.scanner = args.scanner or default_scanner()
    cases = list(dict.fromkeys(parse_case(s, args.format) for s in args.sizes))
    args.data_dir.mkdir(parents=True, exist_ok=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "benchmarks/scale.py", *argv])
    load_start = os.getloadavg()[0]
    if args.dask:
        return run_dask(cases, args, command, load_start)
    if args.needle:
        return run_needle(cases, args, command, load_start)
    peers: list[dict] = []
    if args.reuse_peers:
        peers, args.peers_command = reused_peers(args.reuse_peers)
    peer_cases = [c for c in cases if c.fmt == "parquet"] if args.peers else []
    pending = [f"{c.name} {c.fmt}" for c in cases] + (["cleanlab"] if peer_cases else [])
    results: list[CaseResult] = []
    for case in cases:
        results.append(run_case(case, args))
        pending.pop(0)
        publish(args, command, load_start, results, peers, pending)
    if peer_cases:
        peers = run_peers(peer_cases, args)
        args.peers_command = None
        publish(args, command, load_start, results, peers, [])
    return 0


# --------------------------------------------------------------------------- needle

def run_needle(cases: list[Case], args: argparse.Namespace, command: str,
               load_start: float) -> int:
    """``--needle``: scan one size with the 100 poisons of ``make_data.NEEDLE_MIX``."""
    import _needle

    if len(cases) != 1:
        raise SystemExit("--needle scans exactly one size (e.g. --sizes 1M)")
    [case] = cases
    suffix = {"parquet": "parquet", "csv": "csv", "csv.gz": "csv.gz"}[case.fmt]
    path = args.data_dir / f"needle_{case.name}_seed{args.seed}.{suffix}"
    if not (path.exists() and make_data.truth_path(path).exists()):
        _log(f"generating {path}")
        make_data.write_dataset(path, case.rows, fmt=case.fmt, seed=args.seed,
                                mix=make_data.NEEDLE_MIX)
    out = args.out_dir / f"needle_{case.name}_{case.fmt}"
    cmd = scan_command(args.scanner, path, out, args.scan_args)
    _log(f"needle {case.name} {case.fmt}: scan")
    measured = run_measured(cmd, interval=args.interval, timeout=args.timeout)
    _check(measured, shlex.join(cmd))
    result = _needle.figures(out, make_data.truth_path(path))
    result["label_ceiling"] = _needle.label_ceiling(path, make_data.truth_path(path))
    env = environment(args.scanner)
    env["load"] = (round(load_start, 1), round(os.getloadavg()[0], 1))
    scan = shlex.join(scan_command(["poisonscan"], Path("FILE"), Path("OUT"), args.scan_args))
    compact = {k: v for k, v in measured.as_dict().items() if k not in ("stdout", "stderr")}
    raw = {"command": command, "environment": env, "scan": compact,
           "timings": scan_timings(read_summary(out)), **result}
    (args.out_dir / "needle.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    body = _needle.markdown(result, command, scan, compact | {"peak_mb": measured.peak_mb}, env)
    body += "\n".join(_needle.missed_table(result))
    update_section(args.results, body, _needle.MARK_START, _needle.MARK_END)
    _log(f"needle: {result['top'][100]} in the top 100, {result['top'][1000]} in the top "
         f"1,000; wrote {args.results} and {args.out_dir / 'needle.json'}")
    return 0


# --------------------------------------------------------------------------- Dask

def same_answer(local: Path, dask: Path) -> dict:
    """Whether two scans' outputs agree: bytes of single files, values of directories.

    Returns ``{output name: True/False}`` for scores, suspects, clean and quarantine.
    """
    import filecmp

    import pandas as pd
    import pyarrow.parquet as pq

    verdict = {}
    for name in sorted(p.name for p in local.iterdir()):
        if not name.startswith(("scores.", "suspects.", "clean.", "quarantine.")):
            continue
        a, b = local / name, dask / name
        if a.is_file() and b.is_file():
            verdict[name] = filecmp.cmp(a, b, shallow=False)
        else:  # a Parquet output written as a directory of parts
            try:
                pd.testing.assert_frame_equal(pq.read_table(a).to_pandas(),
                                              pq.read_table(b).to_pandas())
                verdict[name] = True
            except AssertionError:
                verdict[name] = False
    return verdict


def run_dask_case(case: Case, args: argparse.Namespace) -> dict:
    """Scan one case on both engines; return both measurements and the comparison."""
    def compact(m: Measurement) -> dict:
        return {k: v for k, v in m.as_dict().items() if k not in ("stdout", "stderr")}

    path = dataset(case, args.data_dir, args.seed, args.poison_rate)
    entry = {"rows": case.rows, "format": case.fmt,
             "file_mb": path.stat().st_size / MB, "dask_args": args.dask_args}
    outs = {}
    for engine, extra in (("local", []), ("dask", ["--engine", "dask", *args.dask_args])):
        out = args.out_dir / f"{engine}_{case.name}_{case.fmt}"
        cmd = scan_command(args.scanner, path, out, [*args.scan_args, *extra])
        _log(f"{case.name} {case.fmt}: {engine} engine")
        measured = run_measured(cmd, interval=args.interval, timeout=args.timeout)
        _check(measured, shlex.join(cmd))
        summary = read_summary(out)
        entry[engine] = {**compact(measured), "timings": scan_timings(summary),
                         "detection": detection(out, make_data.truth_path(path))}
        outs[engine] = out
        _log(f"{case.name} {case.fmt} {engine}: {measured.wall_s:.1f} s, peak "
             f"{measured.peak_mb:,.0f} MB (largest process "
             f"{measured.largest_rss / MB:,.0f} MB, {measured.max_processes} processes)")
    entry["same"] = same_answer(outs["local"], outs["dask"])
    return entry


def dask_markdown(results: list[dict], env: dict, command: str,
                  args: argparse.Namespace) -> str:
    """Return the scale-dask section (without the markers)."""
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    lines = ["## Scale: the Dask engine beside the local engine", "", f"Command: `{command}`", "",
             f"Machine: {env['nproc']} cores ({env['cpu']}), {env['memory_gb']} GB RAM; "
             f"Python {env['python']}; {versions}; poisonscan at commit {env['commit']}. "
             f"1-minute load average {env['load'][0]} at the start, {env['load'][1]} at the "
             "end (other work on the machine slows wall times).", "",
             "Both scans: `" + shlex.join(scan_command(['poisonscan'], Path('FILE'), Path('OUT'),
                                                       args.scan_args)) + "`; the Dask scan adds "
             f"`{shlex.join(['--engine', 'dask', *args.dask_args])}`, so it starts a "
             "`distributed.LocalCluster` sized to the machine (one worker process per core) "
             "and stops it at the end; its time includes that. Peak MB sums the resident "
             "memory of the whole process tree (client, scheduler, workers); the largest "
             "process is the most any one of them held.", "",
             "| rows | format | engine | wall s | rows/s | peak MB (tree) | largest process MB "
             "| processes | suspects | poison recall |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for engine in ("local", "dask"):
            m = r[engine]
            d = m.get("detection") or {}
            lines.append(
                f"| {r['rows']:,} | {r['format']} | {engine} | {m['wall_s']:,.1f} | "
                f"{r['rows'] / m['wall_s']:,.0f} | {m['peak_mb']:,.0f} | "
                f"{m.get('largest_rss', 0) / MB:,.0f} | {m['max_processes']} | "
                f"{_int(d.get('suspects'))} | {_pct(d.get('recall'))} |")
    lines.append("")
    for r in results:
        local, dask = r["local"], r["dask"]
        lines.append(
            f"At {r['rows']:,} rows the Dask engine took {dask['wall_s'] / local['wall_s']:.2f}× "
            f"the local engine's time on {env['nproc']} cores: its single-threaded workers "
            "share the cores the local engine has to itself, and it pays for starting the "
            "cluster and warming up fresh workers (imports before the first partition and "
            "the fit). What it buys is the same answer with every process bounded: the "
            f"largest held {dask.get('largest_rss', 0) / MB:,.0f} MB against "
            f"{local.get('largest_rss', 0) / MB:,.0f} MB for the local engine's one process; "
            "the tree's sum counts the scheduler, the client and every worker (each with "
            "its own copy of Python, pyarrow and the plan). More machines add workers.")
        lines.append("")
    keys = list(dict.fromkeys(k for r in results for e in ("local", "dask")
                              for k in r[e]["timings"]))
    lines += ["Phase timings reported by the scans (`summary.json`; `cluster` = starting the "
              "local cluster and connecting):", "",
              "| rows | engine | " + " | ".join(f"{k} s" for k in keys) + " |",
              "|---:|---|" + "---:|" * len(keys)]
    for r in results:
        for engine in ("local", "dask"):
            t = r[engine]["timings"]
            lines.append(f"| {r['rows']:,} | {engine} | "
                         + " | ".join(_num(t.get(k)) for k in keys) + " |")
    lines.append("")
    for r in results:
        same = r["same"]
        verdict = "the same answer" if all(same.values()) else "DIFFERENT answers"
        lines.append(f"* {r['rows']:,} rows ({r['format']}): {verdict} — "
                     + ", ".join(f"`{k}` {'identical' if v else 'differs'}"
                                 for k, v in same.items())
                     + " (single files compared byte for byte, a directory of parts by "
                       "value).")
    return "\n".join(lines) + "\n"


def run_dask(cases: list[Case], args: argparse.Namespace, command: str,
             load_start: float) -> int:
    """``--dask``: both engines per case; write scale-dask.json and the scale-dask section."""
    results = []
    for case in cases:
        results.append(run_dask_case(case, args))
        env = environment(args.scanner)
        env["load"] = (round(load_start, 1), round(os.getloadavg()[0], 1))
        raw = {"command": command, "environment": env, "results": results,
               "settings": {"scan_args": args.scan_args}}
        (args.out_dir / "scale-dask.json").write_text(json.dumps(raw, indent=2),
                                                      encoding="utf-8")
        update_section(args.results, dask_markdown(results, env, command, args),
                       DASK_START, DASK_END)
        _log(f"wrote {args.results} and {args.out_dir / 'scale-dask.json'}")
    return 0 if all(all(r["same"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
