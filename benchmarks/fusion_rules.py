"""Fusion rules side by side: every case of the quality benchmark scanned once, re-fused
under each rule of ``poisonscan.fusion.combine``.

A scan's ``scores.parquet`` keeps every family's own score. On the quality benchmark's
datasets (at most ``--max-rows`` rows, below the scan's 100,000-row sample) the sample is
every row, so the family scores of the scan are exactly what its fusion was calibrated on:
re-fusing them under another rule gives exactly the ranking ``--fusion RULE`` would give
(the rule tiers -- violations, findings, cleared members -- do not depend on the rule and
are kept). The default rule re-fused reproduces the scan's own AP in every case, which
the script checks.

Usage::

    python benchmarks/fusion_rules.py --cache /tmp/fusion-cases --seeds 0 1 2 --jobs 2
    python benchmarks/fusion_rules.py --cache /tmp/fusion-cases --tail-consistency 3 \
        --by-dataset joint_impossible outliers

The cache holds one ``scores.parquet`` (plus the truth) per case and is reused.
"""

from __future__ import annotations

import argparse
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import attacks as attack_lib  # noqa: E402
import peers  # noqa: E402
import quality  # noqa: E402
import real_datasets as data_lib  # noqa: E402

#: The poisoned cases of a default quality run (the clean data has nothing to rank).
ATTACKS = tuple(a for a in attack_lib.ATTACKS if a != attack_lib.CLEAN)


def scan_case(job: tuple[str, str, float, int, str, int]) -> str | None:
    """Scan one case with the default rule; keep its scores and truth in the cache."""
    import poisonscan

    name, attack, rate, seed, cache, max_rows = job
    path = Path(cache) / f"{name}_{attack}_{rate}_{seed}.parquet"
    if path.exists():
        return str(path)
    ds = data_lib.load_dataset(name, max_rows=max_rows)
    try:
        poisoned = attack_lib.poison(ds, attack, rate, quality.case_rng(seed, name, attack, rate))
    except attack_lib.AttackNotApplicable:
        return None
    case, tmp = peers.scratch_case(poisoned.frame, poisoned.via_csv, label=ds.label,
                                   numeric=ds.numeric, categorical=ds.categorical,
                                   vector=ds.vector, text=ds.text, seed=seed, model="hgb")
    try:
        poisonscan.scan(case.source, label=ds.label, out=case.workdir / "out", seed=seed,
                        quiet=True)
        scores = pd.read_parquet(case.workdir / "out" / "scores.parquet")
    finally:
        tmp.cleanup()
    scores["poison"] = poisoned.mask[scores["row"].to_numpy()]
    scores.to_parquet(path)
    return str(path)


def refuse(scores: pd.DataFrame, rule: str,
           weights: dict[str, float] | None = None) -> np.ndarray:
    """The fused score of every row under ``rule``, from the families' own scores.

    ``weights`` are the scanner's ``family_weights``: each family's p-values divided by
    its weight (normalised to a mean of 1) before the rule, a prior belief that the
    family's evidence is the one that matters.
    """
    from poisonscan import fusion
    from poisonscan.checks.base import CheckScores

    families = [c for c in scores.columns if c not in ("row", "score", "suspect", "poison")]
    sample = {}
    for family in families:
        result = CheckScores.empty(len(scores))
        result.scores[:] = scores[family].to_numpy(float)
        sample[family] = result
    fused = fusion.Fusion(rule=rule, weights=weights).fit(sample)
    p = np.vstack([fused.weighted(f, sample[f].scores) for f in families])
    soft = fusion.soft_score(fusion.combine(p, rule))
    stored = scores["score"].to_numpy(float)
    return np.where(stored > fusion.SOFT_MAX, stored, soft)  # the rule tiers as scanned


#: Sample quantiles at which ``--tail-consistency`` holds a family's fitted tail to its data.
CONSISTENCY_QUANTILES = (0.90, 0.95, 0.99)


def consistent_tail(factor: float):
    """A replacement for ``poisonscan.fusion._exponential_tail`` whose tail is at most
    ``factor`` times lighter than the sample at :data:`CONSISTENCY_QUANTILES`.

    The fusion fits each family's exponential tail to its bulk (the median to the 75th
    percentile). Where that bulk is squeezed against 0 and the upper tail is long (the
    labels family: most rows' label surprise is about 0), the fitted tail
    gives the sample's own top rows p-values of 1e-100 and less. This variant widens the
    scale ``beta`` until the fitted tail probability at each quantile ``q`` is at least
    ``(1 - q) / factor``; it never narrows it. A study, not an option of the scanner.
    """
    from poisonscan import fusion

    fitted = fusion._exponential_tail
    start_share = 1.0 - fusion.TAIL_QUANTILES[1]

    def tail(ref: np.ndarray) -> tuple[float, float] | None:
        base = fitted(ref)
        if base is None:
            return None
        start, beta = base
        for q in CONSISTENCY_QUANTILES:
            if (1.0 - q) * len(ref) < 1.0:
                continue  # fewer rows than one beyond this quantile
            at_q = float(np.quantile(ref, q))
            ratio = factor * start_share / (1.0 - q)
            if at_q > start and ratio > 1.0:
                beta = max(beta, (at_q - start) / math.log(ratio))
        return start, beta

    return tail


def main(argv: list[str] | None = None) -> int:
    from poisonscan.fusion import RULES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-rows", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--cauchy-p-max", type=float, default=None,
                        help="re-fuse with another cap of the Cauchy combination "
                             "(poisonscan.fusion.CAUCHY_P_MAX)")
    parser.add_argument("--tail-consistency", type=float, default=None, metavar="FACTOR",
                        help="re-fuse with every family's fitted tail at most FACTOR times "
                             "lighter than its sample (consistent_tail)")
    parser.add_argument("--family-weight", action="append", default=[],
                        metavar="FAMILY=W", help="re-fuse with the scanner's family_weights "
                                                 "(repeatable; refuse)")
    parser.add_argument("--by-dataset", nargs="*", default=[], metavar="ATTACK",
                        help="also print these attacks' average precision per dataset")
    args = parser.parse_args(argv)
    if args.tail_consistency is not None:
        from poisonscan import fusion
        fusion._exponential_tail = consistent_tail(args.tail_consistency)
    if args.cauchy_p_max is not None:
        from poisonscan import fusion
        fusion.CAUCHY_P_MAX = args.cauchy_p_max
    try:
        weights = {f: float(w) for f, w in (item.split("=", 1) for item in args.family_weight)}
    except ValueError:
        parser.error("--family-weight takes FAMILY=W, W a number")
    args.cache.mkdir(parents=True, exist_ok=True)
    jobs = [(d, a, r, s, str(args.cache), args.max_rows)
            for s in args.seeds for d in data_lib.DEFAULT_DATASETS for a in ATTACKS
            for r in attack_lib.RATES]
    with ProcessPoolExecutor(args.jobs) as pool:
        paths = list(pool.map(scan_case, jobs))
    records = []
    for (dataset, attack, _, _, _, _), path in zip(jobs, paths):
        if path is None:  # the attack does not apply to the dataset
            continue
        scores = pd.read_parquet(path)
        truth = scores["poison"].to_numpy()
        if not truth.any():
            continue
        record = {"case": Path(path).stem, "attack": attack, "dataset": dataset}
        for rule in RULES:
            record[rule] = average_precision_score(truth, refuse(scores, rule, weights))
        if args.tail_consistency is None and not weights and not np.isclose(
                record["min"], average_precision_score(truth, scores["score"])):
            raise SystemExit(f"{path}: the default rule does not reproduce the scan's ranking")
        records.append(record)
    table = pd.DataFrame(records)
    means = table.groupby("attack")[list(RULES)].mean()
    means.loc["mean (all cases)"] = table[list(RULES)].mean()
    print(f"{len(table)} cases (seeds {' '.join(map(str, args.seeds))}), average precision:\n")
    print("| attack | " + " | ".join(RULES) + " |")
    print("|---|" + "---:|" * len(RULES))
    for attack, row in means.iterrows():
        print(f"| {attack} | " + " | ".join(f"{row[r]:.3f}" for r in RULES) + " |")
    for attack in args.by_dataset:
        per = table[table["attack"] == attack].groupby("dataset")[list(RULES)].mean()
        print(f"\n{attack}, per dataset:\n")
        print("| dataset | " + " | ".join(RULES) + " |")
        print("|---|" + "---:|" * len(RULES))
        for dataset, row in per.iterrows():
            print(f"| {dataset} | " + " | ".join(f"{row[r]:.3f}" for r in RULES) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
