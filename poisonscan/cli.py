"""The ``poisonscan`` command: parse, call the library, map errors to exit codes.

Exit codes (DESIGN.md §5): 0 the scan finished within policy; 1 the scan finished and
wrote everything but the exit policy tripped (``--fail-above`` exceeded, or a quarantined row
flagged by a ``--fail-on`` family); 2 usage or input error; 3 internal
error. Only this module prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
from typing import Sequence

from ._version import __version__
from .config import OPTIONS, ScanConfig, check_family_names, discover_config_file, located
from .errors import PoisonscanError

EXIT_OK, EXIT_POLICY, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: Options of ``poisonscan profile`` (besides ``-o FILE`` and ``--config``).
PROFILE_OPTIONS = ("label", "id_column", "chunk_rows", "sample_rows", "seed", "overwrite",
                   "quiet", "json", "verbose")
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
    _add_options(scan, [o.name for o in OPTIONS])
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
    _add_options(prof, PROFILE_OPTIONS)
    prof.add_argument("--config", metavar="FILE",
                      help="config file (its [bounds] parameters shape the learned ranges)")
    conf = commands.add_parser(
        "config", help="show the effective configuration and where each value came from",
        description="Print the configuration a 'poisonscan scan' with the same --config and "
                    "options would use: every option and check-family parameter with its "
                    "source (default, config FILE:LINE, argument).")
    conf.add_argument("--show", action="store_true", required=True,
                      help="print the effective configuration")
    conf.add_argument("--json", dest="show_json", action="store_true",
                      help="print it as JSON instead of TOML")
    conf.add_argument("--config", metavar="FILE",
                      help="config file (default: ./poisonscan.toml, or [tool.poisonscan] "
                           "in ./pyproject.toml)")
    _add_options(conf, [o.name for o in OPTIONS if o.name != "json"])
    apply = commands.add_parser(
        "apply", help="apply a reviewer's decisions.csv to a scan (kept rows back to clean)",
        description="Rewrite the clean and quarantine files of SCAN_DIR (or write the "
                    "whole scan to --out DIR) from the decisions exported by report.html: "
                    "rows marked keep go back to the clean file in input order, rows marked "
                    "drop stay quarantined; summary.json records the decisions.")
    apply.add_argument("scan_dir", metavar="SCAN_DIR")
    apply.add_argument("--decisions", required=True, metavar="FILE",
                       help="decisions.csv exported from report.html (row,id,decision,note"
                            "[,fingerprint])")
    apply.add_argument("-o", "--out", metavar="DIR", default=None,
                       help="write the result there instead of rewriting SCAN_DIR")
    apply.add_argument("--overwrite", action="store_true",
                       help="replace a scan already in --out")
    apply.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    comp = commands.add_parser(
        "completion", help="print a shell completion script (bash or zsh)",
        description="Print a completion script: 'eval \"$(poisonscan completion bash)\"' "
                    "in ~/.bashrc, or 'poisonscan completion zsh > \"${fpath[1]}/_poisonscan\"'.")
    comp.add_argument("shell", choices=("bash", "zsh"))
    return parser


def _add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add the :data:`~poisonscan.config.OPTIONS` named in ``names`` to ``parser``."""
    for option in OPTIONS:
        if option.name not in names:
            continue
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
        parser.add_argument(*filter(None, (option.short, option.flag)), **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _sigterm_as_interrupt()
    try:
        return COMMANDS[args.command](args)
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
    cfg = ScanConfig.resolve(options, config_file=config_file)
    progress = None if cfg.quiet else StderrProgress()
    with log_to_stderr(quiet=cfg.quiet, verbose=cfg.verbose):
        # --out, else the config file's out, else the default directory (never the API's
        # temporary one: it would be gone when the command returns)
        result = scan(args.inputs, config=config_file, progress=progress,
                      **dict(options, out=cfg.out))
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
    with log_to_stderr(quiet=cfg.quiet, verbose=cfg.verbose):
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


@contextlib.contextmanager
def log_to_stderr(*, quiet: bool, verbose: bool):
    """Attach a stderr handler to the ``poisonscan`` logger for one command.

    Warnings always show; ``--verbose`` shows INFO and DEBUG (per-pass timings, per-check
    counts, learned bounds); ``--quiet`` shows errors only. Lines carry a UTC timestamp
    when stderr is not a terminal (CI logs), none on a terminal.
    """
    logger = logging.getLogger("poisonscan")
    handler = logging.StreamHandler(sys.stderr)
    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    formatter = logging.Formatter(
        "\r\033[Kpoisonscan: %(message)s" if tty  # over the live progress line
        else "%(asctime)s poisonscan %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING
    handler.setLevel(level)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level, old_level) if old_level else level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _config_show(args: argparse.Namespace) -> int:
    from .checks.registry import REGISTRY, build_checks, check_class

    options = {o.name: getattr(args, o.name, None) for o in OPTIONS}
    config_file = args.config if args.config is not None else discover_config_file()
    cfg = ScanConfig.resolve(options, config_file=config_file)
    with located(cfg):  # the families' tables as a scan would take them (exit 2 if not)
        build_checks(cfg.checks, cfg.families, has_label=True)
    check_family_names(cfg, REGISTRY)
    defaults = {name: check_class(name)().get_params() for name in REGISTRY}
    doc = cfg.provenance(defaults)
    if args.show_json:
        json.dump(doc, sys.stdout, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_provenance_toml(doc))
    return EXIT_OK


def render_provenance_toml(doc: dict) -> str:
    """The effective configuration as TOML, each value followed by ``# source``.

    Unset values (``None``) are written as comments, since TOML has no null.
    """
    lines = [f"# effective poisonscan configuration (config file: {doc['config_file'] or 'none'})"]

    def entry(key: str, item: dict) -> str:
        if item["value"] is None:
            return f"# {key} = (unset)".ljust(40) + f"  # {item['source']}"
        return f"{key} = {_toml_value(item['value'])}".ljust(40) + f"  # {item['source']}"

    for key, item in doc["options"].items():
        lines.append(entry(key, item))
    for family, params in doc["families"].items():
        tables: dict[str, list[str]] = {}
        for dotted, item in params.items():
            table, _, key = dotted.rpartition(".")
            tables.setdefault(table, []).append(entry(_toml_key(key), item))
        for table, entries in tables.items():
            name = ".".join(_toml_key(k) for k in [family] + (table.split(".") if table else []))
            lines += ["", f"[{name}]", *entries]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return json.dumps(str(value), ensure_ascii=False)


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
    policy = summary.get("policy", {})
    if "fail_above" in policy.get("tripped", []):
        lines.append(f"  policy exceeded: quarantined fraction > --fail-above "
                     f"{summary['fail_above']}")
    if "fail_on" in policy.get("tripped", []):
        hit = {f: n for f, n in policy["fail_on_rows"].items() if n}
        lines.append("  policy exceeded: --fail-on " + ", ".join(
            f"{f} ({n:,} quarantined rows)" for f, n in hit.items()))
    lines += _top_suspects(result.suspects, summary.get("id_column"))
    if summary["config"].get("verbose"):
        lines.append("  timings: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in summary["timings_seconds"].items()))
    print("\n".join(lines), file=sys.stderr)


def _apply(args: argparse.Namespace) -> int:
    from .review import apply_decisions  # heavy imports only when it runs

    summary = apply_decisions(args.scan_dir, args.decisions, args.out, overwrite=args.overwrite)
    if not args.quiet:
        record, rows = summary["decisions"][-1], summary["rows"]
        print(f"poisonscan: applied {record['decided']} decisions: {record['kept']} kept "
              f"(back to clean), {record['dropped']} dropped, {record['undecided']} undecided; "
              f"{rows['clean']:,} clean, {rows['quarantined']:,} quarantined -> "
              f"{args.out or args.scan_dir}", file=sys.stderr)
    return EXIT_OK


def _top_suspects(suspects, id_column: str | None, top: int = 10, width: int = 72
                  ) -> list[str]:
    """The first suspects as a small table (rank, row, id, score, reason cut to fit)."""
    if suspects is None or len(suspects) == 0:
        return []
    lines = [f"  top {min(top, len(suspects))} of {len(suspects):,} suspects "
             "(all in suspects.csv, review in report.html):"]
    for record in suspects.head(top).to_dict("records"):
        # cell values reach the terminal: no control characters (escape sequences)
        ident = f" {_printable(str(record[id_column]))[:14]:<14}" if id_column else ""
        reason = _printable(" ".join(str(record["reason"] or "").split()))
        reason = reason if len(reason) <= width else reason[:width - 1] + "…"
        lines.append(f"  {record['rank']:>4} row {record['row']:<8}{ident} "
                     f"{record['score']:.3f}  {reason!s}")
    return lines


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", text)


def _completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion_script(args.shell, build_parser()))
    return EXIT_OK


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    """A bash or zsh completion script for ``parser`` (subcommands, their flags, choices)."""
    commands: dict[str, list[str]] = {}
    choices: dict[str, list[str]] = {}
    subparsers: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                subparsers[name] = sub
                flags = []
                for a in sub._actions:
                    flags += [f for f in a.option_strings if f.startswith("--")]
                    if a.choices and not a.option_strings:
                        choices[name] = list(a.choices)
                    elif a.choices:
                        for f in a.option_strings:
                            choices[f"{name} {f}"] = list(a.choices)
                commands[name] = flags
    top = ["--help", "--version", *commands]
    if shell == "bash":
        cases = "\n".join(f'        {name}) opts="{" ".join(flags)}" ;;'
                          for name, flags in commands.items())
        prev = "\n".join(f'        "{key}") COMPREPLY=($(compgen -W "{" ".join(vals)}" -- "$cur")); return ;;'
                         for key, vals in choices.items() if " " in key)
        positional = "\n".join(f'        {key}) words_="{" ".join(vals)}" ;;'
                               for key, vals in choices.items() if " " not in key)
        return f"""# bash completion for poisonscan (generated by 'poisonscan completion bash')
_poisonscan() {{
    local cur prev cmd opts words_
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    cmd="${{COMP_WORDS[1]}}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{' '.join(top)}" -- "$cur")); return
    fi
    case "$cmd $prev" in
{prev}
    esac
    opts=""; words_=""
    case "$cmd" in
{cases}
    esac
    case "$cmd" in
{positional}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [ -n "$words_" ]; then
        COMPREPLY=($(compgen -W "$words_" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
complete -o filenames -F _poisonscan poisonscan
"""
    if shell == "zsh":
        cases = []
        for name, sub in subparsers.items():
            specs = []
            for a in sub._actions:
                for flag in a.option_strings:
                    if not flag.startswith("--"):
                        continue
                    if a.nargs == 0:
                        specs.append(f"'{flag}[]'")
                    elif a.choices:
                        specs.append(f"'{flag}[]:value:({' '.join(a.choices)})'")
                    else:
                        specs.append(f"'{flag}[]:value:_files'")
            positional = f"'*:value:({' '.join(choices[name])})'" if name in choices \
                else "'*:file:_files'"
            cases.append(f"        {name}) _arguments {positional} {' '.join(specs)} ;;")
        cases = "\n".join(cases)
        return f"""#compdef poisonscan
# zsh completion for poisonscan (generated by 'poisonscan completion zsh')
_poisonscan() {{
    if (( CURRENT == 2 )); then
        compadd -- {' '.join(top)}
        return
    fi
    shift words; (( CURRENT-- ))
    case "$words[1]" in
{cases}
    esac
}}
compdef _poisonscan poisonscan
"""
    raise ValueError(f"unsupported shell {shell!r}")


class StderrProgress:
    """Progress on stderr: a live line on a terminal, a line every 10 s otherwise.

    Each pass ends with one final line (rows, rows/s), on a terminal or not.
    """

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.tty else 10.0
        self.stage = self.completed = None
        self.done, self.total = 0, None
        self.started = self.last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if stage == self.completed:
            return  # the pass already wrote its final line
        if stage != self.stage:
            self.finish()
            self.stage, self.started, self.last = stage, now, now
        self.done, self.total = done, total
        if total and done >= total:
            self.finish()  # final line as soon as the pass is done, before any log line
            self.completed = stage
        elif now - self.last >= self.interval:
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


COMMANDS = {"scan": _scan, "profile": _profile, "config": _config_show,
            "apply": _apply, "completion": _completion}
