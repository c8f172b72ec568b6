"""The needle in the haystack (issue 14): where 100 planted poisons land in a scan's ranking.

``python benchmarks/scale.py --needle`` generates a file of the scale benchmark's synthetic
data with exactly the poisons of :data:`make_data.NEEDLE_MIX` (no others), scans it with
the default scan, and calls :func:`figures` on the output directory and the truth file;
:func:`markdown` renders the ``needle`` section of ``RESULTS.md``.

The ranking is that of ``suspects.csv``, extended to every row: score descending, then row
ascending (``scores.parquet`` holds the score of every row).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import make_data

MARK_START, MARK_END = "<!-- needle:start -->", "<!-- needle:end -->"
#: Ranks the section reports (how many poisons in the top ``k`` of the ranking).
TOPS = (100, 1_000)


def ranks(scores_path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """1-based rank of every row, the per-family score columns and the ``suspect`` flags
    (all indexed by row)."""
    table = pq.read_table(scores_path)
    rows = table["row"].to_numpy()
    score = table["score"].to_numpy()
    order = np.lexsort((rows, -score))  # score descending, then row ascending
    rank = np.empty(len(rows), np.int64)
    rank[rows[order]] = np.arange(1, len(rows) + 1)
    fixed = {"row", "score", "suspect", "id"}
    families = {}
    for name in table.column_names:
        if name not in fixed:
            column = np.empty(len(rows))
            column[rows] = table[name].to_numpy()
            families[name] = column
    suspect = np.zeros(len(rows), bool)
    suspect[rows] = table["suspect"].to_numpy(zero_copy_only=False)
    return rank, families, suspect


def reasons(suspects_csv: Path, wanted: set[int]) -> dict[int, str]:
    """The ``reason`` of each wanted row that ``suspects.csv`` lists."""
    found = {}
    if not suspects_csv.exists():
        return found
    with open(suspects_csv, newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            row = int(record["row"])
            if row in wanted:
                found[row] = record["reason"]
    return found


def figures(out: Path, truth: Path) -> dict:
    """Where the poisons of ``truth`` rank in the scan written to ``out``.

    Returns
    -------
    dict
        ``rows``, ``poisoned``, ``suspects``, ``top`` ({k: poisons in the top k}),
        ``precision`` and ``recall`` of the ``suspect`` decision, ``by_attack``
        ({attack: {"planted", "top100", "top1000", "suspect", "best_rank",
        "median_rank"}}) and ``missed``: one record per poison outside the top 1,000
        (``row``, ``attack``, ``column``, ``rank``, ``suspect``, ``family`` scores,
        ``reason`` from ``suspects.csv`` or ``None``).
    """
    rank, families, suspect = ranks(out / "scores.parquet")
    t = pq.read_table(truth).to_pandas()
    planted = t["row"].to_numpy()
    where = rank[planted]
    hit = suspect[planted]
    top = {k: int((where <= k).sum()) for k in TOPS}
    by_attack = {}
    for attack, group in t.groupby("attack", sort=False):
        r = rank[group["row"].to_numpy()]
        by_attack[attack] = {"planted": len(group), "suspect": int(suspect[group["row"]].sum()),
                             "best_rank": int(r.min()), "median_rank": float(np.median(r)),
                             **{f"top{k}": int((r <= k).sum()) for k in TOPS}}
    order = [a for a in make_data.NEEDLE_MIX if a in by_attack]
    by_attack = {a: by_attack[a] for a in order}
    far = t[where > max(TOPS)]
    why = reasons(out / "suspects.csv", set(far["row"].tolist()))
    missed = [{"row": int(r.row), "attack": r.attack, "column": r.column,
               "rank": int(rank[r.row]), "suspect": bool(suspect[r.row]),
               "family": {f: round(float(v[r.row]), 4) for f, v in families.items()},
               "reason": why.get(int(r.row))}
              for r in far.sort_values("row").itertuples()]
    n_suspect = int(suspect.sum())
    return {"rows": len(rank), "poisoned": len(planted), "suspects": n_suspect, "top": top,
            "precision": float(hit.sum() / max(n_suspect, 1)),
            "recall": float(hit.sum() / max(len(planted), 1)),
            "by_attack": by_attack, "missed": missed}


#: Attacks that set a row's label, ranked by :func:`label_ceiling`.
LABEL_ATTACKS = ("label_flip", "duplicate_conflict", "duplicate_flood", "concentrated",
                 "backdoor")


def label_ceiling(data: Path, truth: Path) -> dict:
    """Where the label-setting poisons would rank under the best possible label check.

    Every row is ranked by the generator's own probability of its label given its features
    (:func:`make_data.label_probabilities`; ascending, then by row): no label check can
    separate a planted label from the data's natural label noise better. Returns
    ``{"attacks": {attack: {"planted", "top100", "top1000", "best_rank"}}}`` for
    :data:`LABEL_ATTACKS`, and ``"natural"``: the share of clean rows whose label is not
    their likeliest.
    """
    table = pq.read_table(data, columns=["f1", "f2", "f3", "utilization", "income",
                                         "product", "label"])
    proba = make_data.label_probabilities(table)
    given = pc.index_in(table["label"], value_set=pa.array(make_data.LABELS))
    given = given.fill_null(-1).to_numpy().astype(np.int64)
    p_given = np.where(given >= 0, proba[np.arange(len(given)), np.maximum(given, 0)], 1.0)
    order = np.lexsort((np.arange(len(p_given)), p_given))
    rank = np.empty(len(p_given), np.int64)
    rank[order] = np.arange(1, len(p_given) + 1)
    t = pq.read_table(truth).to_pandas()
    attacks = {}
    for attack in LABEL_ATTACKS:
        r = rank[t.loc[t["attack"] == attack, "row"].to_numpy()]
        if len(r):
            attacks[attack] = {"planted": len(r), "best_rank": int(r.min()),
                               **{f"top{k}": int((r <= k).sum()) for k in TOPS}}
    clean = np.ones(len(given), bool)
    clean[t["row"].to_numpy()] = False
    natural = float(np.mean(proba[clean].argmax(axis=1) != given[clean]))
    return {"attacks": attacks, "natural": natural}


def markdown(result: dict, command: str, scan: str, measured: dict, env: dict) -> str:
    """The ``needle`` section of ``RESULTS.md`` (without the markers)."""
    top, poisoned = result["top"], result["poisoned"]
    mix = ", ".join(f"{a} {n}" for a, n in make_data.NEEDLE_MIX.items())
    lines = [
        f"## The needle in the haystack: {poisoned} poisons in {result['rows']:,} rows", "",
        f"Command: `{command}`", "",
        f"Data: `make_data.write_dataset(..., mix=NEEDLE_MIX)` (`make_data.py --needle`): "
        f"{result['rows']:,} rows of the scale benchmark's synthetic data with exactly "
        f"{poisoned} poisoned rows and no others ({mix}); the truth beside the file "
        "(`.truth.parquet`). Seeded: the same seed gives the same bytes. Backdoor trigger: "
        f"{make_data.TRIGGER} with label `{make_data.TRIGGER_LABEL}`.", "",
        f"Scan: `{scan}` (the default checks and decision), {measured['wall_s']:,.0f} s wall, "
        f"peak {measured['peak_mb']:,.0f} MB, poisonscan at commit {env['commit']}, "
        f"load average {env['load'][0]} → {env['load'][1]} (machine shared).", "",
        f"* **{top[100]} of {poisoned}** in the top 100 of the ranking, "
        f"**{top[1000]} of {poisoned}** in the top 1,000 (target ≥ 90 in the top 1,000: "
        f"{'met' if top[1000] >= 90 else 'NOT met'}; aim 90 in the top 100: "
        f"{'met' if top[100] >= 90 else 'not met'}).",
        f"* Quarantine under the default decision (`suspect`): {result['suspects']:,} rows, "
        f"precision {100 * result['precision']:.1f}% (poisons among them), "
        f"recall {100 * result['recall']:.1f}% (of the {poisoned}).", "",
        "| attack | planted | top 100 | top 1,000 | quarantined | best rank | median rank |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for attack, a in result["by_attack"].items():
        lines.append(f"| {attack} | {a['planted']} | {a['top100']} | {a['top1000']} | "
                     f"{a['suspect']} | {a['best_rank']:,} | {a['median_rank']:,.0f} |")
    lines.append("")
    ceiling = result.get("label_ceiling")
    if ceiling:
        lines += [
            "**The ceiling of any label check** (`_needle.label_ceiling`): every row ranked "
            "by the generator's own probability of its label given its features, the best "
            "a label check can do against the data's natural label noise (the labels are "
            f"drawn from a softmax: {100 * ceiling['natural']:.1f}% of the clean rows carry "
            "a label other than their likeliest). Poisons that set a label, alone in such a "
            "ranking:", "",
            "| attack | planted | top 100 | top 1,000 | best rank |",
            "|---|---:|---:|---:|---:|"]
        for attack, a in ceiling["attacks"].items():
            lines.append(f"| {attack} | {a['planted']} | {a['top100']} | {a['top1000']} | "
                         f"{a['best_rank']:,} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def missed_table(result: dict) -> list[str]:
    """A table of the poisons outside the top 1,000: rank, family scores, reason."""
    if not result["missed"]:
        return []
    families = list(result["missed"][0]["family"])
    lines = ["Poisons outside the top 1,000 (family columns: each family's own score in "
             "`scores.parquet`, higher = more suspect; reason: `suspects.csv`, – when not "
             "quarantined):",
             "", "| row | attack | column | rank | " + " | ".join(families) + " | reason |",
             "|---:|---|---|---:|" + "---:|" * len(families) + "---|"]
    for m in result["missed"]:
        cells = " | ".join(f"{m['family'][f]:.3f}" for f in families)
        reason = (m["reason"] or "–").replace("|", "\\|")
        lines.append(f"| {m['row']:,} | {m['attack']} | {m['column']} | {m['rank']:,} | "
                     f"{cells} | {reason} |")
    return lines + [""]
