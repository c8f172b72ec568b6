"""The ``poisonscan`` command: parse, call the library, map errors to exit codes.

Exit codes (DESIGN.md §5): 0 the scan finished within policy; 1 the scan finished and
wrote everything but ``--fail-above`` was exceeded; 2 usage or input error; 3 internal
error. Only this module prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence

from ._version import __version__
from .config import OPTIONS, ScanConfig, discover_config_file
from .errors import PoisonscanError

EXIT_OK, EXIT_POLICY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: Options of ``poisonscan profile`` (besides ``-o FILE`` and ``--config``).
PROFILE_OPTIONS = ("label", "id_column", "chunk_rows", "sample_rows", "seed", "overwrite",
                   "quiet", "json")
DEFAULT_PROFILE_FILE = "profile.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poisonscan",
        description="Find poisoned rows in training data before you train.")
    parser.add_argument("--version", action="version", version=f"poisonscan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    scan = commands.add_parser(
        "scan", help="scan CSV/Parquet data and write clean, quarantine and report files",
        description="Scan INPUT (files, globs or directories of CSV or Parquet) and write "
                    "scores.parquet, suspects.csv, quarantine.<fmt>, clean.<fmt>, "
                    "summary.json and report.html into --out.")
    scan.add_argument("inputs", nargs="+", metavar="INPUT")
    for option in OPTIONS:
        kwargs = {"dest": option.name, "default": None, "help": option.help}
        if option.kind == "bool":
            # --x / --no-x; not given stays None so that the config file is not overridden,
            # and --no-x lets the command line win over ``x = true`` in the file
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float}.get(option.kind, str)
            kwargs["metavar"] = option.metavar or option.name.upper()
            if option.choices:
                kwargs["choices"] = option.choices
                kwargs.pop("metavar")
        scan.add_argument(*filter(None, (option.short, option.flag)), **kwargs)
    scan.add_argument("--config", metavar="FILE",
                      help="config file (default: ./poisonscan.toml, or [tool.poisonscan] "
                           "in ./pyproject.toml)")
    prof = commands.add_parser(
        "profile", help="profile trusted data into a reference for scan --reference",
        description="Stream trusted INPUT (files, globs or directories of CSV or Parquet) and "
                    "write a human-readable JSON profile: per column its type, robust range, "
                    "quantiles, categories with frequencies and null rate, and the same per "
                    "class. Check new data against it with 'poisonscan scan ... --reference "
                    "FILE'.")
    prof.add_argument("inputs", nargs="+", metavar="INPUT")
    prof.add_argument("-o", "--out", dest="out", metavar="FILE", default=None,
                      help="where to write the profile (default: profile.json)")
    for option in OPTIONS:
        if option.name not in PROFILE_OPTIONS:
            continue
        kwargs = {"dest": option.name, "default": None, "help": option.help}
        if option.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {"int": int, "float": float}.get(option.kind, str)
            kwargs["metavar"] = option.metavar or option.name.upper()
        prof.add_argument(*filter(None, (option.short, option.flag)), **kwargs)
    prof.add_argument("--config", metavar="FILE",
                      help="config file (its [bounds] parameters shape the learned ranges)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _sigterm_as_interrupt()
    try:
        return _profile(args) if args.command == "profile" else _scan(args)
    except PoisonscanError as exc:
        print(f"poisonscan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("poisonscan: interrupted; no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into exit 3
        if os.environ.get("POISONSCAN_DEBUG"):
            raise
        print(f"poisonscan: internal error: {type(exc).__name__}: {exc} "
              "(set POISONSCAN_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _sigterm_as_interrupt() -> None:
    """SIGTERM takes the same clean path as Ctrl-C: staging removed, nothing half-written."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def _scan(args: argparse.Namespace) -> int:
    from .api import scan  # heavy imports only when a scan runs

    options = {o.name: getattr(args, o.name) for o in OPTIONS}  # None: not given
    config_file = args.config if args.config is not None else discover_config_file()
    quiet = ScanConfig.resolve(options, config_file=config_file).quiet
    progress = None if quiet else StderrProgress()
    result = scan(args.inputs, config=config_file, progress=progress, **options)
    if progress is not None:
        progress.finish()
    summary = result.summary
    if summary["config"]["json"]:
        json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    if not summary["config"]["quiet"]:
        _print_summary(summary, result)
    return EXIT_POLICY if result.policy_exceeded else EXIT_OK


def _profile(args: argparse.Namespace) -> int:
    from .api import profile  # heavy imports only when it runs

    options = {name: getattr(args, name) for name in PROFILE_OPTIONS}
    config_file = args.config if args.config is not None else discover_config_file()
    cfg = ScanConfig.resolve(options, config_file=config_file)
    progress = None if cfg.quiet else StderrProgress()
    out = args.out or DEFAULT_PROFILE_FILE
    doc = profile(args.inputs, config=config_file, progress=progress, out=out, **options)
    if progress is not None:
        progress.finish()
    if cfg.json:
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    if not cfg.quiet:
        classes = len(doc.get("labels", {}).get("classes", {})) if doc.get("labels") else 0
        print(f"poisonscan: profiled {doc['rows']:,} rows, {len(doc['columns'])} columns"
              + (f", {classes} classes" if classes else "") + f" -> {out}", file=sys.stderr)
    return EXIT_OK


def _print_summary(summary: dict, result) -> None:
    rows = summary["rows"]
    lines = [f"poisonscan: {rows['in']:,} rows scanned: {rows['clean']:,} clean, "
             f"{rows['quarantined']:,} quarantined ({100 * rows['quarantined_fraction']:.2f}%) "
             f"-> {result.out}"]
    for name, check in summary["checks"].items():
        lines.append(f"  {name}: {check['rows_flagged']:,} rows flagged, "
                     f"{check['rows_quarantined']:,} quarantined")
    for name, why in summary["checks_skipped"].items():
        lines.append(f"  {name}: skipped ({why})")
    drift = summary.get("drift")
    if drift and drift.get("flagged"):
        lines.append(f"  drift against the reference (PSI > {drift['threshold']:g}): "
                     + ", ".join(drift["flagged_items"]))
    if summary["policy_exceeded"]:
        lines.append(f"  policy exceeded: quarantined fraction > --fail-above "
                     f"{summary['fail_above']}")
    print("\n".join(lines), file=sys.stderr)


class StderrProgress:
    """Progress on stderr: a live line on a terminal, a line every 10 s otherwise.

    Each pass ends with one final line (rows, rows/s), on a terminal or not.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.tty else 10.0
        self.stage = None
        self.done, self.total = 0, None
        self.started = self.last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if stage != self.stage:
            self.finish()
            self.stage, self.started, self.last = stage, now, now
        self.done, self.total = done, total
        if now - self.last >= self.interval:
            self.last = now
            self._write(self._line(now), final=False)

    def _line(self, now: float) -> str:
        rate = self.done / max(now - self.started, 1e-9)
        text = f"{self.stage}: {self.done:,}" + (f"/{self.total:,}" if self.total else "") \
            + f" rows, {rate:,.0f} rows/s"
        if self.total and self.done < self.total and rate > 0:
            text += f", ETA {(self.total - self.done) / rate:,.0f} s"
        return text

    def _write(self, text: str, *, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Write the final line of the current pass."""
        if self.stage is not None:
            self._write(self._line(time.monotonic()), final=True)
        self.stage = None
