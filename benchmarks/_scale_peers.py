"""Peer scanner for the scale benchmark: cleanlab Datalab on a whole file.

Run as a subprocess by ``benchmarks/scale.py --peers`` so that its time and
memory are measured like poisonscan's::

    python benchmarks/_scale_peers.py FILE --label label --id-column id \\
        --truth FILE.truth.parquet --out result.json

Datalab works in memory: the file is loaded whole, features are encoded
(numeric columns with non-finite values imputed by the median and
standardised; categoricals one-hot up to 20 levels, frequency-encoded above),
out-of-fold predicted probabilities come from a 3-fold
``HistGradientBoostingClassifier``, and ``Datalab.find_issues(features=...,
pred_probs=...)`` runs its default issue types, as cleanlab's documentation
recommends. The JSON result holds the phase timings and how many poisons the
rows Datalab flags (any issue type) recover.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager

# Run as a script, this file's folder leads sys.path, where a benchmark module
# could shadow a package that cleanlab imports (a benchmarks/datasets.py once hid
# Hugging Face ``datasets``). Nothing here is imported from benchmarks/: drop it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ONE_HOT_MAX = 20


def load(path: str) -> pd.DataFrame:
    """Read a whole Parquet or CSV file into pandas."""
    if path.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pandas()
    return pd.read_csv(path)


def encode_features(frame: pd.DataFrame) -> np.ndarray:
    """Encode a mixed-type frame as a dense float32 matrix.

    Parameters
    ----------
    frame : pandas.DataFrame
        Feature columns only.
    """
    parts = []
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values):
            parts.append(_numeric(values.to_numpy(dtype=float)))
        elif values.nunique() <= ONE_HOT_MAX:
            parts.append(pd.get_dummies(values, dtype=np.float32).to_numpy())
        else:
            freq = values.map(values.value_counts(normalize=True)).fillna(0)
            parts.append(_numeric(freq.to_numpy(dtype=float)))
    return np.hstack(parts).astype(np.float32)


def _numeric(values: np.ndarray) -> np.ndarray:
    finite = np.isfinite(values)
    fill = np.median(values[finite]) if finite.any() else 0.0
    values = np.where(finite, values, fill)
    std = values.std() or 1.0
    return ((values - values.mean()) / std)[:, None]


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Return 3-fold out-of-fold class probabilities from gradient boosting."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, labels, cv=folds, method="predict_proba")


@contextmanager
def _timed(timings: dict, name: str):
    start = time.perf_counter()
    yield
    timings[name] = round(time.perf_counter() - start, 3)


def run(path: str, label: str, id_column: str | None, truth: str | None, seed: int) -> dict:
    """Run Datalab on a file; return timings, flag counts and poison recall."""
    from cleanlab import Datalab

    timings: dict = {}
    with _timed(timings, "load"):
        frame = load(path)
    with _timed(timings, "encode"):
        drop = [label] + ([id_column] if id_column else [])
        features = encode_features(frame.drop(columns=drop))
        labels = pd.factorize(frame[label], sort=True)[0]
    with _timed(timings, "pred_probs"):
        probs = out_of_fold_probs(features, labels, seed)
    with _timed(timings, "find_issues"):
        lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
        lab.find_issues(features=features, pred_probs=probs)
    issues = lab.get_issues()
    flag_columns = [c for c in issues.columns if c.startswith("is_") and c.endswith("_issue")]
    flagged = issues[flag_columns].any(axis=1).to_numpy()
    result = {"rows": len(frame), "timings": timings, "flagged": int(flagged.sum()),
              "issue_types": sorted(c[3:-6] for c in flag_columns)}
    if truth:
        import pyarrow.parquet as pq

        poisoned = pq.read_table(truth, columns=["row"])["row"].to_numpy()
        hits = int(flagged[poisoned].sum())
        result.update(poisoned=len(poisoned), recall=hits / max(len(poisoned), 1),
                      precision=hits / max(int(flagged.sum()), 1))
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="cleanlab Datalab on one file")
    parser.add_argument("path")
    parser.add_argument("--label", required=True)
    parser.add_argument("--id-column")
    parser.add_argument("--truth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="JSON result file")
    args = parser.parse_args(argv)
    result = run(args.path, args.label, args.id_column, args.truth, args.seed)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
