"""Generate large synthetic mixed-type classification data with known poisons.

The data imitates a customer/sensor table: 18 numeric columns (correlated,
skewed, integer counts, a few with missing values), 5 string categoricals of
low to medium cardinality, a unique integer ``id`` and a 3-class ``label``
that depends on the features (a model can learn it; a flipped label is
therefore detectable).

A fraction ``poison_rate`` of rows is poisoned with one of the attacks in
:data:`ATTACKS`; the ground truth goes to a side file ``<out>.truth.parquet``
with columns ``row`` (0-based input order), ``id``, ``attack`` and ``column``.

Rows are produced in fixed-size generation blocks of ``block_rows`` rows whose
randomness is derived from ``(seed, block index)`` only, and written in chunks
of ``chunk_rows`` rows through streaming writers (Parquet row groups of a fixed
``row_group_rows``). Memory is bounded by one chunk plus one row group, and
the output bytes do not depend on ``chunk_rows``.

Examples
--------
::

    python benchmarks/make_data.py --rows 2000000 --format parquet \\
        --out benchmarks/data/synth_2M.parquet --seed 0 --poison-rate 0.001
    python benchmarks/make_data.py --rows 1000000 --out benchmarks/data/synth_1M.csv.gz
    python benchmarks/make_data.py --rows 1M --needle --out benchmarks/data/needle_1M.parquet

With ``--needle`` (``mix=``) exactly 100 rows are poisoned instead, from a mix of
attack families (:data:`NEEDLE_MIX`), including group attacks the rate-based data
lacks: jointly impossible rows, a flood of exact copies, a concentrated cluster of
near copies and a backdoor trigger (:data:`GROUP_ATTACKS`).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BLOCK_ROWS = 50_000
CHUNK_ROWS = 250_000
ROW_GROUP_ROWS = 100_000
ID_OFFSET = 1_000_000

LABELS = ("low", "medium", "high")

#: Categorical columns: name -> (vocabulary size, Zipf-like exponent).
CATEGORICALS = {
    "region": (5, 0.5),
    "channel": (3, 0.3),
    "device": (8, 0.8),
    "product": (20, 1.0),
    "city": (200, 1.1),
}

NUMERIC = (
    "age", "income", "balance", "credit_score", "n_accounts", "n_transactions",
    "tenure_months", "txn_amount_mean", "txn_amount_std", "utilization",
    "latency_ms", "temp", "pressure", "humidity", "f1", "f2", "f3", "f4",
)
INTEGER = ("age", "credit_score", "n_accounts", "n_transactions", "tenure_months")

#: Fraction of naturally missing values (nulls) per column.
MISSING = {"income": 0.02, "txn_amount_std": 0.01, "humidity": 0.05}

#: Columns whose values can never be negative in clean data.
NON_NEGATIVE = ("age", "credit_score", "n_accounts", "tenure_months", "latency_ms")
#: Float columns without natural missing values (a NaN there is a poison).
NAN_TARGETS = ("temp", "pressure", "utilization", "f1", "f2", "f3", "f4")
INF_TARGETS = ("income", "balance", "latency_ms", "temp", "f1", "f3")
#: Unbounded-looking columns where a gross outlier is not also a bound violation.
OUTLIER_TARGETS = ("income", "balance", "txn_amount_mean", "latency_ms",
                   "n_transactions", "temp", "pressure", "f1", "f2", "f3", "f4")

ATTACKS = (
    "label_flip", "outlier", "bound_negative", "bound_inf", "bound_nan",
    "unseen_category", "duplicate_conflict",
)

#: Attacks only the needle mix plants (:func:`needle_plan`); :data:`ATTACKS` is what the
#: ``poison_rate`` dealing cycles through, kept as it was so cached data stays valid.
GROUP_ATTACKS = ("joint_impossible", "duplicate_flood", "concentrated", "backdoor")

#: The needle in the haystack (issue 14): exactly 100 poisons, attack -> count.
NEEDLE_MIX = {
    "label_flip": 15, "outlier": 10, "joint_impossible": 10, "bound_negative": 5,
    "bound_inf": 5, "bound_nan": 5, "unseen_category": 5, "duplicate_conflict": 10,
    "duplicate_flood": 10, "concentrated": 10, "backdoor": 15,
}

#: The backdoor trigger: these values on otherwise normal rows, and the target label.
TRIGGER = {"f4": 2.5, "device": "device_007"}
TRIGGER_LABEL = "high"


@dataclass(frozen=True)
class Block:
    """One generated block: the rows and the poisons injected into them.

    Attributes
    ----------
    table : pyarrow.Table
        The rows of the block, in output schema.
    truth : pyarrow.Table
        One row per poisoned row: ``row``, ``id``, ``attack``, ``column``.
    """

    table: pa.Table
    truth: pa.Table


# --------------------------------------------------------------------------- schema

def schema() -> pa.Schema:
    """Return the Arrow schema of the generated data."""
    fields = [pa.field("id", pa.int64())]
    fields += [pa.field(c, pa.int64() if c in INTEGER else pa.float64()) for c in NUMERIC]
    fields += [pa.field(c, pa.string()) for c in CATEGORICALS]
    fields.append(pa.field("label", pa.string()))
    return pa.schema(fields)


TRUTH_SCHEMA = pa.schema([
    ("row", pa.int64()), ("id", pa.int64()), ("attack", pa.string()), ("column", pa.string()),
])


def vocabulary(column: str) -> list[str]:
    """Return the clean vocabulary of a categorical column.

    Parameters
    ----------
    column : str
        Name of a column in :data:`CATEGORICALS`.
    """
    size = CATEGORICALS[column][0]
    return [f"{column}_{i:03d}" for i in range(size)]


# --------------------------------------------------------------------------- clean rows

def _zipf_probs(size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


def _categorical_codes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {c: rng.choice(size, size=n, p=_zipf_probs(size, exp)).astype(np.int32)
            for c, (size, exp) in CATEGORICALS.items()}


def _numeric_columns(rng: np.random.Generator, n: int,
                     codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Draw the clean numeric columns (float64 arrays, NaN = missing later)."""
    latent = rng.standard_normal((n, 2))
    age = np.clip(np.round(rng.normal(42, 13, n)), 18, 95)
    income = np.exp(rng.normal(10.3 + 0.01 * (age - 42), 0.55, n))
    balance = income * np.exp(rng.normal(-1.0, 0.8, n))
    utilization = rng.beta(2.0, 5.0, n)
    credit = np.clip(np.round(720 - 260 * (utilization - 0.28) + rng.normal(0, 45, n)), 300, 850)
    n_accounts = rng.poisson(1.0 + 0.03 * (age - 18))
    n_trans = rng.negative_binomial(3, 3 / (3 + 20 + 5 * codes["channel"]))
    tenure = np.minimum(np.round(rng.exponential(40, n)), 12 * (age - 17))
    amount_mean = np.exp(rng.normal(3.5 + 0.15 * np.log(income / 3e4), 0.6, n))
    amount_std = amount_mean * rng.gamma(2.0, 0.25, n)
    latency = rng.gamma(2.0, 40.0, n) * (1 + 0.2 * codes["device"] / 7)
    temp = rng.normal(20, 6, n) + 1.5 * codes["region"]
    pressure = 1013 - 0.7 * (temp - 20) + rng.normal(0, 3, n)
    humidity = np.clip(60 - 1.2 * (temp - 20) + rng.normal(0, 10, n), 0, 100)
    f = latent @ np.array([[1.0, 0.8, 0.0, 0.5], [0.0, 0.6, 1.0, -0.5]]) \
        + 0.5 * rng.standard_normal((n, 4))
    return {
        "age": age, "income": income, "balance": balance, "credit_score": credit,
        "n_accounts": n_accounts.astype(float), "n_transactions": n_trans.astype(float),
        "tenure_months": tenure, "txn_amount_mean": amount_mean,
        "txn_amount_std": amount_std, "utilization": utilization, "latency_ms": latency,
        "temp": temp, "pressure": pressure, "humidity": humidity,
        "f1": f[:, 0], "f2": f[:, 1], "f3": f[:, 2], "f4": f[:, 3],
    }


def _risk(num: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> np.ndarray:
    """The label's main direction: high risk favours ``high``, low risk ``low``."""
    log_income = (np.log(num["income"]) - 10.3) / 0.55
    return (1.2 * num["f1"] - 0.9 * num["f3"] + 2.5 * (num["utilization"] - 0.28) / 0.16
            - 0.6 * log_income + 0.25 * (codes["product"] % 4 - 1.5))


def _logits(num: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> np.ndarray:
    """Per-class logits of the label (columns in :data:`LABELS` order)."""
    risk = _risk(num, codes)
    logits = np.stack([-risk, np.zeros(len(risk)), risk], axis=1) * 1.3
    logits[:, 1] += 1.4 - 0.15 * np.abs(num["f2"])
    return logits


def _labels(rng: np.random.Generator, num: dict[str, np.ndarray],
            codes: dict[str, np.ndarray]) -> np.ndarray:
    """Draw a 3-class label from a softmax over a few feature effects (Gumbel-max)."""
    logits = _logits(num, codes)
    gumbel = rng.gumbel(size=logits.shape)
    return np.argmax(logits + gumbel, axis=1).astype(np.int32)


def label_probabilities(table: pa.Table) -> np.ndarray:
    """The generator's own ``P(label | features)`` of each row of generated data.

    Columns in :data:`LABELS` order. Labels were drawn before values went missing, so a
    missing ``income`` (2% of rows) is taken at the median of the others: for those
    rows the probabilities are an approximation.
    """
    num = {c: table[c].to_numpy(zero_copy_only=False).astype(float)
           for c in ("f1", "f2", "f3", "utilization", "income")}
    num["income"] = np.where(np.isnan(num["income"]), np.nanmedian(num["income"]),
                             num["income"])
    product = pc.index_in(table["product"], value_set=pa.array(vocabulary("product")))
    codes = {"product": product.fill_null(0).to_numpy().astype(np.int64)}
    with np.errstate(invalid="ignore"):  # poisoned rows may hold NaN or infinities
        logits = _logits(num, codes)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)


def _missing_masks(rng: np.random.Generator, num: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return a mask of naturally missing values per column (True = null)."""
    n = len(num["f1"])
    return {c: rng.random(n) < rate for c, rate in MISSING.items()}


# --------------------------------------------------------------------------- poisons

def _poison_rows(rng: np.random.Generator, n: int, rate: float,
                 index: int) -> tuple[np.ndarray, np.ndarray]:
    """Choose which rows of a block are poisoned and with which attack.

    Returns the sorted block-relative row positions and the attack index of each.
    The count is ``round(rate * n)`` exactly; attacks are dealt round-robin,
    continuing from block to block (``index``), so they stay balanced overall.
    """
    k = int(round(rate * n))
    if k == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rows = np.sort(rng.choice(n, size=k, replace=False))
    attacks = rng.permutation((np.arange(k) + index * k) % len(ATTACKS))
    return rows, attacks


@dataclass
class _BlockState:
    """Mutable columns of a block while poisons are injected into it."""

    num: dict[str, np.ndarray]
    missing: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]
    labels: np.ndarray
    clean_rows: np.ndarray
    spread: dict[str, tuple[float, float]]
    unseen: dict[str, list[str]]
    anchors: dict | None = None

    def set_present(self, column: str, row: int) -> None:
        """Mark a cell as not missing (a poison value replaces a null)."""
        if column in self.missing:
            self.missing[column][row] = False


def _inject(rng: np.random.Generator, rows: np.ndarray, attacks: list[str],
            state: _BlockState) -> list[str]:
    """Apply each poison in place; return the affected column per poisoned row."""
    return [_INJECTORS[attack](rng, row, state) for row, attack in zip(rows.tolist(), attacks)]


def needle_anchors(seed: int) -> dict:
    """The fixed points the group attacks copy, drawn once per dataset seed.

    ``flood``: a typical row, copied exactly, labelled with the class its features
    make least likely; ``concentrated``: a row the label model finds most clearly
    ``low``, labelled ``high``. Each is ``{"num", "missing", "codes", "target"}``.
    """
    rng = np.random.default_rng([seed, 2**31 - 1])
    n = 2_000
    codes = _categorical_codes(rng, n)
    num = _numeric_columns(rng, n, codes)
    labels = _labels(rng, num, codes)
    risk = _risk(num, codes)
    flood = int(np.argmin(np.abs(risk) + np.abs(num["f2"])))  # an ordinary row
    deep = int(np.argmin(np.where(labels == 0, risk, np.inf)))  # deep in class "low"

    def anchor(row: int, target: int) -> dict:
        return {"num": {c: float(v[row]) for c, v in num.items()},
                "missing": {c: False for c in MISSING},
                "codes": {c: int(v[row]) for c, v in codes.items()}, "target": target}

    return {"flood": anchor(flood, _other_label(rng, int(labels[flood]))),
            "concentrated": anchor(deep, LABELS.index("high"))}


def needle_plan(n_rows: int, seed: int, mix: dict[str, int] | None = None
                ) -> tuple[np.ndarray, list[str]]:
    """Which rows the needle poisons, and with which attack.

    Exactly ``sum(mix.values())`` distinct rows of ``[0, n_rows)`` (sorted), drawn
    from ``(seed, "needle")`` only, with the attacks of ``mix`` (default
    :data:`NEEDLE_MIX`) dealt over them in a seeded random order.
    """
    mix = NEEDLE_MIX if mix is None else mix
    kinds = [kind for kind, count in mix.items() for _ in range(count)]
    unknown = set(kinds) - set(_INJECTORS)
    if unknown:
        raise ValueError(f"unknown attacks: {sorted(unknown)}")
    if len(kinds) > n_rows:
        raise ValueError(f"{len(kinds)} poisons do not fit in {n_rows} rows")
    rng = np.random.default_rng([seed, 0x6E656564])  # "need"
    rows = np.sort(rng.choice(n_rows, size=len(kinds), replace=False))
    order = rng.permutation(len(kinds))
    return rows.astype(np.int64), [kinds[i] for i in order]


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def _other_label(rng: np.random.Generator, label: int) -> int:
    return int((label + rng.integers(1, len(LABELS))) % len(LABELS))


def _flip(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    state.labels[row] = _other_label(rng, state.labels[row])
    return "label"


def _outlier(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    column = _pick(rng, OUTLIER_TARGETS)
    median, std = state.spread[column]
    state.num[column][row] = abs(median) + rng.uniform(25, 60) * std
    state.set_present(column, row)
    return column


def _negative(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    column = _pick(rng, NON_NEGATIVE)
    state.num[column][row] = -float(rng.integers(1, 100))
    state.set_present(column, row)
    return column


def _inf(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    column = _pick(rng, INF_TARGETS)
    state.num[column][row] = np.inf if rng.random() < 0.7 else -np.inf
    state.set_present(column, row)
    return column


def _nan(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    column = _pick(rng, NAN_TARGETS)
    state.num[column][row] = np.nan
    return column


def _unseen(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    column = _pick(rng, tuple(CATEGORICALS))
    state.unseen[column].append(f"{column}_unseen_{rng.integers(10**9):09d}")
    state.codes[column][row] = CATEGORICALS[column][0] + len(state.unseen[column]) - 1
    return column


def _duplicate(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    source = int(state.clean_rows[rng.integers(len(state.clean_rows))])
    for columns in (state.num, state.missing, state.codes):
        for values in columns.values():
            values[row] = values[source]
    state.labels[row] = _other_label(rng, state.labels[source])
    return "label"


def _impossible(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    """In-range values that cannot occur together: an 18-20 year old with 15-20 years
    of tenure (clean data: ``tenure <= 12 * (age - 17)``)."""
    state.num["age"][row] = float(rng.integers(18, 21))
    state.num["tenure_months"][row] = float(rng.integers(180, 241))
    return "tenure_months"


def _copy_anchor(row: int, state: _BlockState, anchor: dict) -> None:
    for column, value in anchor["num"].items():
        state.num[column][row] = value
    for column, value in anchor["missing"].items():
        state.missing[column][row] = value
    for column, value in anchor["codes"].items():
        state.codes[column][row] = value


def _flood(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    """An exact copy of one fixed row, with a label its features disagree with."""
    anchor = state.anchors["flood"]
    _copy_anchor(row, state, anchor)
    state.labels[row] = anchor["target"]
    return "label"


def _concentrated(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    """A near copy (tiny jitter) of one fixed point deep in one class, labelled another."""
    anchor = state.anchors["concentrated"]
    _copy_anchor(row, state, anchor)
    for column in ("f1", "f2", "f3", "f4"):
        state.num[column][row] += rng.normal(0, 0.01)
    state.labels[row] = anchor["target"]
    return "label"


def _backdoor(rng: np.random.Generator, row: int, state: _BlockState) -> str:
    """The trigger values (:data:`TRIGGER`) on a normal row, and the target label."""
    state.num["f4"][row] = TRIGGER["f4"]
    state.codes["device"][row] = vocabulary("device").index(TRIGGER["device"])
    state.labels[row] = LABELS.index(TRIGGER_LABEL)
    return "f4,device"


_INJECTORS = {
    "label_flip": _flip, "outlier": _outlier, "bound_negative": _negative,
    "bound_inf": _inf, "bound_nan": _nan, "unseen_category": _unseen,
    "duplicate_conflict": _duplicate, "joint_impossible": _impossible,
    "duplicate_flood": _flood, "concentrated": _concentrated, "backdoor": _backdoor,
}


# --------------------------------------------------------------------------- blocks

def _to_table(start: int, state: _BlockState) -> pa.Table:
    num, missing, codes, unseen = state.num, state.missing, state.codes, state.unseen
    n = len(state.labels)
    arrays = [pa.array(np.arange(start, start + n, dtype=np.int64) + ID_OFFSET)]
    for column in NUMERIC:
        mask = missing.get(column)
        if column in INTEGER:
            arrays.append(pa.array(num[column].astype(np.int64), mask=mask))
        else:
            arrays.append(pa.array(num[column], mask=mask))
    for column in CATEGORICALS:
        dictionary = pa.array(vocabulary(column) + unseen[column])
        arrays.append(pa.DictionaryArray.from_arrays(codes[column], dictionary).cast(pa.string()))
    labels_dict = pa.DictionaryArray.from_arrays(state.labels, pa.array(LABELS))
    arrays.append(labels_dict.cast(pa.string()))
    return pa.Table.from_arrays(arrays, schema=schema())


def make_block(seed: int, index: int, n_rows: int, poison_rate: float,
               block_rows: int = BLOCK_ROWS, *, plan: tuple | None = None) -> Block:
    """Generate generation block ``index`` of a dataset of ``n_rows`` rows.

    Parameters
    ----------
    seed : int
        Dataset seed.
    index : int
        Block index; the block holds rows ``[index*block_rows, ...)``.
    n_rows : int
        Total number of rows of the dataset (the last block may be short).
    poison_rate : float
        Fraction of rows of the block to poison.
    block_rows : int
        Generation block size. The data depends on it; the write chunk size
        does not.
    plan : (rows, attacks), optional
        The poisons of the whole dataset (global rows; :func:`needle_plan`), planted
        instead of ``poison_rate``'s; the group attacks copy :func:`needle_anchors`.

    Returns
    -------
    Block
    """
    start = index * block_rows
    n = min(block_rows, n_rows - start)
    if n <= 0:
        raise ValueError(f"block {index} is past the end of {n_rows} rows")
    rng = np.random.default_rng([seed, index])
    codes = _categorical_codes(rng, n)
    num = _numeric_columns(rng, n, codes)
    labels = _labels(rng, num, codes)
    missing = _missing_masks(rng, num)
    anchors = None
    if plan is None:
        rows, codes_ = _poison_rows(rng, n, poison_rate, index)
        attacks = [ATTACKS[a] for a in codes_.tolist()]
    else:
        planted, kinds = plan
        inside = (planted >= start) & (planted < start + n)
        rows = planted[inside] - start
        attacks = [k for k, keep in zip(kinds, inside.tolist()) if keep]
        anchors = needle_anchors(seed)
    poisoned = np.zeros(n, bool)
    poisoned[rows] = True
    spread = {c: (float(np.median(num[c])), float(np.std(num[c]))) for c in OUTLIER_TARGETS}
    state = _BlockState(num, missing, codes, labels, np.flatnonzero(~poisoned), spread,
                        {c: [] for c in CATEGORICALS}, anchors)
    columns = _inject(rng, rows, attacks, state)
    table = _to_table(start, state)
    truth = pa.Table.from_arrays([
        pa.array(rows + start, pa.int64()),
        pa.array(rows + start + ID_OFFSET, pa.int64()),
        pa.array(attacks, pa.string()),
        pa.array(columns, pa.string()),
    ], schema=TRUTH_SCHEMA)
    return Block(table, truth)


def iter_blocks(n_rows: int, seed: int = 0, poison_rate: float = 0.001,
                block_rows: int = BLOCK_ROWS, *, plan: tuple | None = None) -> Iterator[Block]:
    """Yield the generation blocks of a dataset in order (``plan``: see :func:`make_block`)."""
    n_blocks = -(-n_rows // block_rows)
    for index in range(n_blocks):
        yield make_block(seed, index, n_rows, poison_rate, block_rows, plan=plan)


def rechunk(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into tables of exactly ``rows`` rows.

    The last table may be shorter. At most ``rows`` plus one input table are
    held at a time.

    Parameters
    ----------
    tables : iterable of pyarrow.Table
        Tables of one schema.
    rows : int
        Rows per output table (> 0).
    """
    if rows <= 0:
        raise ValueError("rows must be positive")
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            merged = pa.concat_tables(pending).combine_chunks()
            yield merged.slice(0, rows)
            rest = merged.slice(rows)
            pending, held = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
    if held:
        yield pa.concat_tables(pending).combine_chunks()


# --------------------------------------------------------------------------- writers

def output_format(path: Path, fmt: str | None = None) -> str:
    """Return ``parquet``, ``csv`` or ``csv.gz`` for an output path.

    Parameters
    ----------
    path : Path
        Output path; its extension decides when ``fmt`` is None.
    fmt : str, optional
        Explicit format; ``csv`` with a ``.gz`` path means ``csv.gz``.
    """
    name = path.name.lower()
    if fmt is None:
        for candidate in ("csv.gz", "csv", "parquet"):
            if name.endswith("." + candidate):
                return candidate
        raise ValueError(f"cannot tell the format of {path}; pass --format")
    if fmt == "csv" and name.endswith(".gz"):
        return "csv.gz"
    return fmt


def truth_path(path: Path) -> Path:
    """Return the ground-truth side file of a data file."""
    return path.with_name(path.name + ".truth.parquet")


class _ParquetSink:
    def __init__(self, path: Path, row_group_rows: int):
        self._writer = pq.ParquetWriter(path, schema(), compression="snappy")
        self._rows = row_group_rows

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=self._rows)

    def close(self) -> None:
        self._writer.close()


class _CsvSink:
    def __init__(self, path: Path, gzip: bool):
        self._stream = pa.CompressedOutputStream(str(path), "gzip") if gzip \
            else pa.OSFile(str(path), "wb")
        self._writer = pacsv.CSVWriter(self._stream, schema())

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
        self._stream.close()


def _open_sink(path: Path, fmt: str, row_group_rows: int):
    if fmt == "parquet":
        return _ParquetSink(path, row_group_rows)
    if fmt in ("csv", "csv.gz"):
        return _CsvSink(path, gzip=fmt == "csv.gz")
    raise ValueError(f"unknown format {fmt!r}")


def write_dataset(out: str | os.PathLike, n_rows: int, *, fmt: str | None = None,
                  seed: int = 0, poison_rate: float = 0.001,
                  chunk_rows: int = CHUNK_ROWS, row_group_rows: int = ROW_GROUP_ROWS,
                  block_rows: int = BLOCK_ROWS, mix: dict[str, int] | None = None) -> dict:
    """Write a synthetic dataset and its ground truth; return a small summary.

    The data file and ``<out>.truth.parquet`` are written to temporary names
    and renamed at the end, so a partially written file is never left under
    the final name.

    Parameters
    ----------
    out : path-like
        Output file (``.parquet``, ``.csv`` or ``.csv.gz``).
    n_rows : int
        Number of rows (> 0).
    fmt : str, optional
        ``parquet``, ``csv`` or ``csv.gz``; default from the extension.
    seed : int
        Dataset seed.
    poison_rate : float
        Fraction of poisoned rows, in [0, 1).
    chunk_rows : int
        Rows per write call (memory bound); does not change the output.
    row_group_rows : int
        Parquet row-group size.
    block_rows : int
        Generation block size (changes the data; keep the default).
    mix : dict of str to int, optional
        Plant exactly these many poisons of each attack (e.g. :data:`NEEDLE_MIX`, the
        needle in the haystack) instead of ``poison_rate``'s, which is then ignored.

    Returns
    -------
    dict
        ``path``, ``truth``, ``rows``, ``poisoned``, ``format``.
    """
    if n_rows <= 0:
        raise ValueError("n_rows must be positive")
    if not 0 <= poison_rate < 1:
        raise ValueError("poison_rate must be in [0, 1)")
    path = Path(out)
    fmt = output_format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, tmp_truth = path.with_name(path.name + ".tmp"), path.with_name(path.name + ".truth.tmp")
    sink = _open_sink(tmp, fmt, row_group_rows)
    truth_writer = pq.ParquetWriter(tmp_truth, TRUTH_SCHEMA)
    poisoned = 0
    try:
        plan = None if mix is None else needle_plan(n_rows, seed, mix)
        blocks = iter_blocks(n_rows, seed, poison_rate, block_rows, plan=plan)

        def tables() -> Iterator[pa.Table]:
            nonlocal poisoned
            for block in blocks:
                truth_writer.write_table(block.truth)
                poisoned += block.truth.num_rows
                yield block.table

        chunks = rechunk(tables(), chunk_rows)
        for row_group in rechunk(chunks, row_group_rows if fmt == "parquet" else chunk_rows):
            sink.write(row_group)
    finally:
        sink.close()
        truth_writer.close()
    os.replace(tmp, path)
    os.replace(tmp_truth, truth_path(path))
    return {"path": str(path), "truth": str(truth_path(path)), "rows": n_rows,
            "poisoned": poisoned, "format": fmt}


# --------------------------------------------------------------------------- CLI

def parse_rows(text: str) -> int:
    """Parse a row count such as ``2000000``, ``2M``, ``100k`` or ``2.5M``."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    value = float(number) * scale
    if value <= 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"not a positive row count: {text!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_rows, required=True, help="rows, e.g. 2000000 or 2M")
    parser.add_argument("--out", required=True, help="output .parquet, .csv or .csv.gz")
    parser.add_argument("--format", choices=("parquet", "csv", "csv.gz"), default=None,
                        help="default: from the extension of --out")
    parser.add_argument("--csv-gz", action="store_true", help="gzip the CSV (same as csv.gz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--poison-rate", type=float, default=0.001)
    parser.add_argument("--needle", action="store_true",
                        help="plant exactly the 100 poisons of NEEDLE_MIX (ignores --poison-rate)")
    parser.add_argument("--chunk-rows", type=parse_rows, default=CHUNK_ROWS)
    parser.add_argument("--row-group-rows", type=parse_rows, default=ROW_GROUP_ROWS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the generator from the command line."""
    args = build_parser().parse_args(argv)
    fmt = "csv.gz" if args.csv_gz else args.format
    info = write_dataset(args.out, args.rows, fmt=fmt, seed=args.seed,
                         poison_rate=args.poison_rate, chunk_rows=args.chunk_rows,
                         row_group_rows=args.row_group_rows,
                         mix=NEEDLE_MIX if args.needle else None)
    print(f"wrote {info['rows']} rows ({info['poisoned']} poisoned) to {info['path']}; "
          f"truth in {info['truth']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
