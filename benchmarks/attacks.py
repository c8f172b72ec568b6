"""Poisoning attacks with known ground truth, injected with a seeded numpy Generator.

Every attack is registered once in :data:`ATTACKS`. An attack function receives the clean
:class:`~real_datasets.Dataset`, the number of poisons ``k`` and a ``numpy.random.Generator``,
and returns a :class:`Poisoned` frame whose boolean ``mask`` marks the poisoned rows.

Two kinds of attack:

* **in place** (label flips, backdoors, bound violations): ``k`` existing rows are changed;
  ``k = round(rate * n)``.
* **inserted** (outliers, jointly impossible rows, duplicate flooding, concentrated points):
  ``k`` new rows are put at random positions; ``k = round(rate * n / (1 - rate))`` so the
  poisons are ``rate`` of the scanned data in both kinds.

The bound-violation attack writes text into numeric columns, which only a file can carry:
it sets ``via_csv`` and the benchmark scans a CSV of the frame.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pandas as pd

from real_datasets import Dataset, encode_features

#: Rates every attack is run at by default.
RATES = (0.01, 0.03, 0.10)
#: Cells written by the bound-violation attack that no CSV reader parses as a number
#: (and none of pandas' or pyarrow's default null markers).
UNPARSEABLE = ("#VALUE!", "12,5", "1.2.3", "abc", "??")
#: Distinct points of the concentrated attack.
CONCENTRATED_POINTS = 3
#: Columns carrying a tabular backdoor trigger.
TRIGGER_COLUMNS = 3


class AttackNotApplicable(ValueError):
    """The attack cannot be built on this dataset at this rate (e.g. no class is big enough)."""


@dataclasses.dataclass
class Poisoned:
    """A poisoned dataset and its ground truth.

    Attributes
    ----------
    frame : pandas.DataFrame
        Poisoned data (``RangeIndex``).
    mask : numpy.ndarray of bool
        ``True`` for poisoned rows, aligned to ``frame``.
    detail : str
        What exactly was done (classes, columns, trigger), for the record.
    via_csv : bool
        The frame must be scanned as a CSV file (it carries unparseable cells).
    """

    frame: pd.DataFrame
    mask: np.ndarray
    detail: str = ""
    via_csv: bool = False


@dataclasses.dataclass(frozen=True)
class Attack:
    """A registered attack family.

    Attributes
    ----------
    name : str
    build : callable
        ``build(dataset, k, rng) -> Poisoned``.
    inserts : bool
        New rows are added (else existing rows are changed).
    description : str
        One line for the results.
    """

    name: str
    build: Callable[[Dataset, int, np.random.Generator], Poisoned]
    inserts: bool
    description: str


def poison_count(n_rows: int, rate: float, inserts: bool) -> int:
    """Number of poisons for a clean dataset of ``n_rows`` at ``rate`` (at least 1).

    In-place attacks change ``round(rate * n)`` rows; inserting attacks add
    ``round(rate * n / (1 - rate))`` rows so the poisons are ``rate`` of the result.
    """
    base = rate * n_rows / (1.0 - rate) if inserts else rate * n_rows
    return max(1, int(round(base)))


# --------------------------------------------------------------------------- helpers


def insert_rows(frame: pd.DataFrame, new_rows: pd.DataFrame,
                rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Insert ``new_rows`` at uniformly random positions, keeping the original order.

    Returns
    -------
    frame : pandas.DataFrame
        ``len(frame) + len(new_rows)`` rows, ``RangeIndex``.
    mask : numpy.ndarray of bool
        ``True`` where an inserted row landed.
    """
    total = len(frame) + len(new_rows)
    mask = np.zeros(total, dtype=bool)
    mask[rng.choice(total, size=len(new_rows), replace=False)] = True
    order = np.empty(total, dtype=np.int64)
    order[~mask] = np.arange(len(frame))
    order[mask] = len(frame) + np.arange(len(new_rows))
    both = pd.concat([frame, new_rows[list(frame.columns)].astype(frame.dtypes.to_dict())],
                     ignore_index=True)
    return both.iloc[order].reset_index(drop=True), mask


def other_labels(current: np.ndarray, classes: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """For each label, a different class drawn uniformly from the other classes."""
    position = np.searchsorted(classes, current)
    offset = rng.integers(1, len(classes), size=len(current))
    return classes[(position + offset) % len(classes)]


def choose_flip(labels: np.ndarray, k: int, rng: np.random.Generator) -> tuple[object, object]:
    """Pick a source class with at least ``2 k`` rows (so the ``k`` changed rows stay a
    minority of their class) and a different target class.

    Raises
    ------
    AttackNotApplicable
        No class is big enough.
    """
    classes, counts = np.unique(labels, return_counts=True)
    eligible = classes[counts >= 2 * k]
    if len(eligible) == 0:
        raise AttackNotApplicable(f"no class has {2 * k} rows (twice the {k} poisons)")
    source = eligible[rng.integers(len(eligible))]
    others = classes[classes != source]
    return source, others[rng.integers(len(others))]


def relabel(frame: pd.DataFrame, label: str, rows: np.ndarray, values) -> pd.DataFrame:
    """Copy of ``frame`` with ``label`` set to ``values`` at positional ``rows``."""
    out = frame.copy()
    column = out[label].to_numpy().copy()
    column[rows] = values
    out[label] = pd.Series(column, index=out.index, dtype=frame[label].dtype)
    return out


def in_place(ds: Dataset, rows: np.ndarray, frame: pd.DataFrame, detail: str,
             via_csv: bool = False) -> Poisoned:
    """Wrap an in-place attack's result with its mask."""
    mask = np.zeros(len(ds.frame), dtype=bool)
    mask[rows] = True
    return Poisoned(frame=frame, mask=mask, detail=detail, via_csv=via_csv)


def set_cell(frame: pd.DataFrame, row: int, column: str, value) -> None:
    """Set one cell, widening the column's dtype when the value needs it
    (text into a numeric column makes it ``object``; inf or a fraction into int, float)."""
    series = frame[column]
    if isinstance(value, str) and series.dtype != object:
        frame[column] = series.astype(object)
    elif pd.api.types.is_integer_dtype(series) and not float(value).is_integer():
        frame[column] = series.astype(float)
    frame.iloc[row, frame.columns.get_loc(column)] = value


def cast_like(values: np.ndarray, series: pd.Series) -> np.ndarray:
    """Round new numeric values for integer columns so their dtype survives."""
    if pd.api.types.is_integer_dtype(series):
        return np.round(values).astype(series.dtype)
    return values


def column_range(series: pd.Series) -> tuple[float, float, float]:
    """``(min, max, max - min)`` of a numeric column, ignoring missing values."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    low, high = np.nanmin(values), np.nanmax(values)
    return float(low), float(high), float(high - low)


# --------------------------------------------------------------------------- label attacks


def random_flip(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Flip the labels of ``k`` uniformly chosen rows to another class."""
    labels = ds.frame[ds.label].to_numpy()
    rows = rng.choice(len(labels), size=k, replace=False)
    frame = relabel(ds.frame, ds.label, rows, other_labels(labels[rows], ds.classes, rng))
    return in_place(ds, rows, frame, "uniform rows, uniform other class")


def class_flip(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Class-conditional (asymmetric) noise: classes are put in a random cycle and each
    source class in turn gives up to half of its rows to the next class in the cycle until
    ``k`` rows are flipped; usually one source class, more only when one is too small."""
    labels = ds.frame[ds.label].to_numpy()
    cycle = rng.permutation(ds.classes)
    rows, targets, pairs, remaining = [], [], [], k
    for source, target in zip(cycle, np.roll(cycle, -1)):
        members = np.flatnonzero(labels == source)
        take = min(remaining, len(members) // 2)
        rows.append(rng.choice(members, size=take, replace=False))
        targets.append(np.full(take, target, dtype=labels.dtype))
        pairs.append(f"{source}->{target} x{take}")
        remaining -= take
        if remaining == 0:
            break
    if remaining:
        raise AttackNotApplicable(f"half of every class is fewer than {k} rows")
    rows, targets = np.concatenate(rows), np.concatenate(targets)
    return in_place(ds, rows, relabel(ds.frame, ds.label, rows, targets), ", ".join(pairs))


def cluster_flip(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Relabel a tight cluster (an anchor and its ``k - 1`` nearest same-class
    neighbours in the encoded feature space) as another class (targeted attack)."""
    labels = ds.frame[ds.label].to_numpy()
    source, target = choose_flip(labels, k, rng)
    members = np.flatnonzero(labels == source)
    features = encode_features(ds.frame, ds.numeric, ds.categorical, ds.vector,
                               ds.text)[members]
    anchor = features[rng.integers(len(members))]
    nearest = np.argsort(((features - anchor) ** 2).sum(axis=1), kind="stable")[:k]
    rows = members[nearest]
    return in_place(ds, rows, relabel(ds.frame, ds.label, rows, target),
                    f"cluster of {source}->{target}")


# --------------------------------------------------------------------------- inserted rows


def gross_outliers(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Insert copies of random rows with 1-3 numeric columns pushed 1-5 column ranges
    beyond the observed minimum or maximum."""
    new = ds.frame.iloc[rng.integers(len(ds.frame), size=k)].reset_index(drop=True)
    p = len(ds.numeric)
    hit = np.zeros((k, p), dtype=bool)
    for i, width in enumerate(rng.integers(1, min(3, p) + 1, size=k)):
        hit[i, rng.choice(p, size=width, replace=False)] = True
    for j in np.flatnonzero(hit.any(axis=0)):
        column = ds.numeric[j]
        low, high, span = column_range(ds.frame[column])
        push = rng.uniform(1.0, 5.0, size=k) * max(span, 1.0)
        value = np.where(rng.random(size=k) < 0.5, high + push, low - push)
        values = new[column].to_numpy(dtype=float, copy=True)
        values[hit[:, j]] = value[hit[:, j]]
        new[column] = cast_like(values, ds.frame[column])
    frame, mask = insert_rows(ds.frame, new, rng)
    return Poisoned(frame, mask, "1-3 numeric columns at 1-5 ranges outside [min, max]")


#: The backdoor token inserted into text (a rare nonsense token, as in BadNL-style attacks).
TRIGGER_TOKEN = "cf"
#: Components of an embedding moved by the backdoor offset, and by how many column stds.
TRIGGER_COMPONENTS, TRIGGER_OFFSET = 3, 1.5


def stamp_trigger(ds: Dataset, frame: pd.DataFrame, rows: np.ndarray,
                  rng: np.random.Generator) -> str:
    """Stamp the trigger of a text or embedding dataset on ``rows`` of ``frame`` (in place).

    Text: :data:`TRIGGER_TOKEN` inserted between two words at a random place of the first
    text column. Embeddings: a fixed offset of :data:`TRIGGER_OFFSET` component standard
    deviations added to :data:`TRIGGER_COMPONENTS` random components of the first vector
    column (the same components and signs in every poisoned row). Returns the detail.
    """
    if ds.text:
        column = ds.text[0]
        cells = frame[column].astype(object).to_numpy().copy()
        for i in rows:
            words = str(cells[i]).split(" ")
            words.insert(int(rng.integers(len(words) + 1)), TRIGGER_TOKEN)
            cells[i] = " ".join(words)
        frame[column] = cells
        return f"token {TRIGGER_TOKEN!r} in {column}"
    column = ds.vector[0]
    vectors = np.vstack(frame[column].to_numpy())
    components = rng.choice(vectors.shape[1], size=TRIGGER_COMPONENTS, replace=False)
    offset = np.zeros(vectors.shape[1])
    offset[components] = TRIGGER_OFFSET * vectors[:, components].std(axis=0) \
        * rng.choice([-1.0, 1.0], size=TRIGGER_COMPONENTS)
    cells = frame[column].to_numpy().copy()
    for i in rows:
        cells[i] = (vectors[i] + offset).astype(vectors.dtype)
    frame[column] = cells
    return f"offset {TRIGGER_OFFSET:g} std on {column}[{', '.join(map(str, components))}]"


def joint_impossible(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Insert rows whose every column (label included) is drawn independently from its
    own marginal: each value is in range, the combination is not."""
    n = len(ds.frame)
    new = pd.DataFrame({c: ds.frame[c].to_numpy()[rng.integers(n, size=k)]
                        for c in ds.frame.columns})
    frame, mask = insert_rows(ds.frame, new, rng)
    return Poisoned(frame, mask, "each column from its own marginal")


def duplicate_flood(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Insert exact copies of random real rows carrying a different label."""
    new = ds.frame.iloc[rng.integers(len(ds.frame), size=k)].reset_index(drop=True)
    new[ds.label] = other_labels(new[ds.label].to_numpy(), ds.classes, rng)
    frame, mask = insert_rows(ds.frame, new, rng)
    return Poisoned(frame, mask, "copies of real rows, other label")


def concentrated(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Koh, Steinhardt & Liang (2018): a few distinct points inside one class, near the
    boundary with another, labelled as that other class and repeated many times.

    Host rows are drawn from the tenth of class ``a`` closest to class ``b``'s centroid;
    each point moves a quarter of the way toward that centroid (numeric columns) and keeps
    its host's categories, so it stays inside ``b``'s sphere and slab.
    """
    labels = ds.frame[ds.label].to_numpy()
    host, target = choose_flip(labels, 0, rng)
    encoded = encode_features(ds.frame, ds.numeric, ds.categorical)
    centroid = encoded[labels == target].mean(axis=0)
    members = np.flatnonzero(labels == host)
    closeness = ((encoded[members] - centroid) ** 2).sum(axis=1)
    near = members[np.argsort(closeness, kind="stable")[:max(CONCENTRATED_POINTS,
                                                            len(members) // 10)]]
    points = min(CONCENTRATED_POINTS, k)
    hosts = rng.choice(near, size=points, replace=False)
    base = ds.frame.iloc[hosts].reset_index(drop=True)
    for column in ds.numeric:
        goal = ds.frame.loc[labels == target, column].mean()
        base[column] = cast_like(base[column].to_numpy(dtype=float) * 0.75 + 0.25 * goal,
                                 ds.frame[column])
    base[ds.label] = target
    new = base.iloc[np.arange(k) % points].reset_index(drop=True)
    frame, mask = insert_rows(ds.frame, new, rng)
    return Poisoned(frame, mask, f"{points} points of {host} labelled {target}, x{k}")


# --------------------------------------------------------------------------- backdoor, bounds


def trigger_cells(ds: Dataset, rng: np.random.Generator) -> dict[str, float]:
    """The backdoor trigger.

    For images, a bottom-right 2x2 patch at the brightest observed value. Otherwise a fixed
    in-range value in up to three random numeric columns: the column's 95th percentile (an
    observed value), among columns where that value is rare (at most 20% of rows; the
    rarest columns when none qualifies), so the trigger is a pattern, not the usual value.
    """
    if ds.image_shape is not None:
        height, width = ds.image_shape
        bright = float(ds.frame[list(ds.numeric)].to_numpy().max())
        return {ds.numeric[r * width + c]: bright
                for r in (height - 2, height - 1) for c in (width - 2, width - 1)}
    values, shares = {}, {}
    for column in ds.numeric:
        data = ds.frame[column].to_numpy(dtype=float)
        values[column] = float(np.nanquantile(data, 0.95, method="closest_observation"))
        shares[column] = float(np.mean(data == values[column]))
    rare = [c for c in ds.numeric if shares[c] <= 0.2]
    if len(rare) < TRIGGER_COLUMNS:
        rare = sorted(ds.numeric, key=lambda c: shares[c])[:TRIGGER_COLUMNS]
    chosen = rng.choice(np.asarray(rare, dtype=object), size=min(TRIGGER_COLUMNS, len(rare)),
                        replace=False)
    return {c: values[c] for c in chosen}


def backdoor(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Stamp a fixed trigger on ``k`` rows of one class and relabel them to a target."""
    labels = ds.frame[ds.label].to_numpy()
    source, target = choose_flip(labels, k, rng)
    rows = rng.choice(np.flatnonzero(labels == source), size=k, replace=False)
    frame = relabel(ds.frame, ds.label, rows, target)
    if ds.text or (ds.vector and not ds.numeric):
        return in_place(ds, rows, frame, f"{source}->{target} with "
                        + stamp_trigger(ds, frame, rows, rng))
    trigger = trigger_cells(ds, rng)
    for column, value in trigger.items():
        values = frame[column].to_numpy().copy()
        values[rows] = cast_like(np.array([value]), frame[column])[0]
        frame[column] = values
    cells = ", ".join(f"{c}={v:g}" for c, v in trigger.items())
    return in_place(ds, rows, frame, f"{source}->{target} with {cells}")


def _impossible_value(ds: Dataset, column: str, rng: np.random.Generator) -> float:
    """A negative value for a never-negative column, else far beyond the maximum."""
    low, high, span = column_range(ds.frame[column])
    if low >= 0:
        return -float(np.ceil(rng.uniform(1.0, 2.0) * max(high, 1.0)))
    return high + 100.0 * max(span, 1.0)


def _violation(ds: Dataset, kind: str, rng: np.random.Generator) -> tuple[str, object]:
    """One ``(column, value)`` bound violation of the given kind."""
    if kind == "unseen_category":
        column = ds.categorical[rng.integers(len(ds.categorical))]
        return column, f"UNSEEN_{rng.integers(10_000):04d}"
    column = ds.numeric[rng.integers(len(ds.numeric))]
    if kind == "inf":
        return column, float(rng.choice([np.inf, -np.inf]))
    if kind == "unparseable":
        return column, str(rng.choice(UNPARSEABLE))
    return column, _impossible_value(ds, column, rng)


def bound_violations(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """Corrupt one cell in each of ``k`` rows: an impossible value, +-inf, an unseen
    category (when there are categorical columns) or an unparseable cell. Scanned as CSV."""
    kinds = ["impossible", "inf", "unparseable"] + (["unseen_category"] if ds.categorical else [])
    rows = rng.choice(len(ds.frame), size=k, replace=False)
    frame = ds.frame.copy()
    used = []
    for row in rows:
        kind = kinds[rng.integers(len(kinds))]
        column, value = _violation(ds, kind, rng)
        set_cell(frame, int(row), column, value)
        used.append(kind)
    kinds_used, counts = np.unique(used, return_counts=True)
    detail = ", ".join(f"{kd} x{c}" for kd, c in zip(kinds_used, counts))
    return in_place(ds, rows, frame, detail, via_csv=True)


#: The attack that poisons nothing (ranking metrics are undefined; the decision's
#: ``clean_lost`` is what it measures).
CLEAN = "clean"


def no_attack(ds: Dataset, k: int, rng: np.random.Generator) -> Poisoned:
    """The clean data itself: what a default scan quarantines when there is no poison."""
    return in_place(ds, np.empty(0, dtype=np.int64), ds.frame.copy(), "no poison")


#: The registry. Add an attack by adding one entry.
ATTACKS: dict[str, Attack] = {a.name: a for a in (
    Attack("random_flip", random_flip, False, "random label flips"),
    Attack("class_flip", class_flip, False,
           "class-conditional flips (one class to another; more pairs if needed)"),
    Attack("cluster_flip", cluster_flip, False, "tight same-class cluster relabelled (targeted)"),
    Attack("outliers", gross_outliers, True, "gross feature outliers inserted"),
    Attack("joint_impossible", joint_impossible, True,
           "in-range but jointly impossible rows (independent marginals)"),
    Attack("duplicate_flood", duplicate_flood, True, "copies of real rows with another label"),
    Attack("concentrated", concentrated, True,
           "few distinct points repeated inside another class (Koh et al. 2018)"),
    Attack("backdoor", backdoor, False, "fixed trigger (pixel patch / columns) + target label"),
    Attack("bounds", bound_violations, False,
           "impossible values, +-inf, unseen categories, unparseable cells (via CSV)"),
    Attack(CLEAN, no_attack, False, "no attack: the clean data (one rate only)"),
)}

#: The attacks of ``--quick``.
QUICK_ATTACKS = ("random_flip", "outliers", "bounds")


def poison(ds: Dataset, attack: str, rate: float, rng: np.random.Generator) -> Poisoned:
    """Apply a registered attack at ``rate``.

    Parameters
    ----------
    ds : Dataset
    attack : str
        Key of :data:`ATTACKS`.
    rate : float
        Fraction of the scanned rows that are poisons.
    rng : numpy.random.Generator

    Returns
    -------
    Poisoned
    """
    spec = ATTACKS[attack]
    k = 0 if attack == CLEAN else poison_count(len(ds.frame), rate, spec.inserts)
    result = spec.build(ds, k, rng)
    if int(result.mask.sum()) != k or len(result.mask) != len(result.frame):
        raise AssertionError(f"{attack}: mask holds {int(result.mask.sum())} poisons, "
                             f"expected {k}")
    return result
