"""The methods compared: poisonscan and its peers, in one registry.

Each method takes a :class:`Case` (one poisoned dataset, as every method sees it) and
returns one or more named :class:`Ranking` objects. Everything that several methods share
(the encoded feature matrix, cleanlab's out-of-fold predicted probabilities) is computed
once per case and cached on it.

Peers (cleanlab, PyOD) follow the usage their documentation recommends; cleanlab gets
out-of-fold ``pred_probs`` from ``cross_val_predict`` and the same encoded features that
PyOD gets (see :func:`real_datasets.encode_features`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from real_datasets import encode_features

#: Folds of the out-of-fold predicted probabilities.
CV_FOLDS = 5


@dataclasses.dataclass
class Ranking:
    """One ranking of the rows of a case.

    Attributes
    ----------
    scores : numpy.ndarray
        One float per row, higher = more suspect.
    suspect : numpy.ndarray of bool, optional
        The rows the method itself would remove under its default decision.
    candidates : dict, optional
        Alternative rankings (e.g. one per cleanlab issue type); the benchmark reports the
        best of them in hindsight (highest average precision on this case).
    """

    scores: np.ndarray
    suspect: np.ndarray | None = None
    candidates: dict[str, np.ndarray] | None = None


@dataclasses.dataclass
class Case:
    """One poisoned dataset as the methods see it.

    Attributes
    ----------
    frame : pandas.DataFrame
        The data (for CSV cases, the CSV read back with pandas).
    source : pandas.DataFrame or str
        What poisonscan scans: the frame itself, or the CSV path.
    label : str
    numeric, categorical : tuple of str
        Column roles from the clean dataset.
    vector, text : tuple of str
        Vector (embedding) and free-text columns from the clean dataset.
    seed : int
        Seed for every method's own randomness.
    model : {"logreg", "hgb"}
        Classifier behind cleanlab's out-of-fold predicted probabilities.
    workdir : pathlib.Path
        Scratch directory for this case.
    """

    frame: pd.DataFrame
    source: object
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    seed: int
    workdir: Path
    model: str = "logreg"
    vector: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    scan_options: dict = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def _cached(self, key: str, compute: Callable[[], object]):
        if key not in self._cache:
            started = time.perf_counter()
            self._cache[key] = compute()
            self.timings[key] = time.perf_counter() - started
        return self._cache[key]

    def features(self) -> np.ndarray:
        """The encoded feature matrix (cached)."""
        return self._cached("features", lambda: encode_features(
            self.frame, self.numeric, self.categorical, self.vector, self.text))

    def labels(self) -> np.ndarray:
        """Labels as strings (one label space whether the case went through CSV or not)."""
        return self.frame[self.label].astype(str).to_numpy()

    def label_codes(self) -> np.ndarray:
        """Labels as integer codes ``0..C-1`` (sorted classes)."""
        return np.unique(self.labels(), return_inverse=True)[1]

    def pred_probs(self) -> np.ndarray:
        """Out-of-fold predicted probabilities (cached), columns in sorted class order."""
        return self._cached("pred_probs", lambda: out_of_fold_probs(
            self.features(), self.label_codes(), self.model, self.seed))


def classifier(model: str, seed: int):
    """The classifier behind the predicted probabilities.

    ``logreg`` (default) is a multinomial logistic regression on the standardised
    encoding; ``hgb`` is scikit-learn's HistGradientBoostingClassifier (stronger on some
    sets, 10-50x slower here).
    """
    if model == "logreg":
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(max_iter=1000)
    if model == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier
        return HistGradientBoostingClassifier(random_state=seed)
    raise ValueError(f"unknown model {model!r} (logreg or hgb)")


def out_of_fold_probs(features: np.ndarray, codes: np.ndarray, model: str,
                      seed: int) -> np.ndarray:
    """Predicted probabilities from ``cross_val_predict`` with stratified shuffled folds."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    smallest = np.bincount(codes).min()
    if smallest < 2:
        raise ValueError("a class has fewer than 2 rows: no stratified folds")
    folds = StratifiedKFold(n_splits=min(CV_FOLDS, int(smallest)), shuffle=True,
                            random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cross_val_predict(classifier(model, seed), features, codes, cv=folds,
                                 method="predict_proba")


# --------------------------------------------------------------------------- methods


#: poisonscan's check families whose own scores (``scores.parquet`` columns of the same scan)
#: are reported beside the fused ranking.
FAMILY_RANKINGS = ("bounds", "outliers", "labels", "duplicates", "backdoor")


def run_poisonscan(case: Case) -> dict[str, Ranking]:
    """poisonscan with its defaults; scores and suspect flags from ``scores.parquet``
    (``poisonscan:FAMILY`` rankings: one family's raw scores from the same scan)."""
    import poisonscan

    result = poisonscan.scan(case.source, label=case.label, out=case.workdir / "poisonscan",
                             seed=case.seed, quiet=True, **case.scan_options)
    table = result.scores().sort_values("row")
    if not np.array_equal(table["row"].to_numpy(), np.arange(len(case.frame))):
        raise RuntimeError(f"poisonscan scored {len(table)} rows, expected {len(case.frame)} "
                           "(one per input row, 0-based)")
    rankings = {"poisonscan": Ranking(scores=table["score"].to_numpy(dtype=float),
                                      suspect=table["suspect"].to_numpy(dtype=bool))}
    for family in FAMILY_RANKINGS:
        if family in table:
            rankings[f"poisonscan:{family}"] = Ranking(table[family].to_numpy(dtype=float))
    return rankings


def run_datalab(case: Case) -> dict[str, Ranking]:
    """cleanlab ``Datalab.find_issues(features=..., pred_probs=...)`` with its default
    issue types. Reports the worst issue per row (1 - min over the ``*_score`` columns) and,
    as a generous upper bound, the single issue type that ranks this case best."""
    from cleanlab import Datalab

    data = pd.DataFrame({case.label: case.labels()})
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore")
        lab = Datalab(data=data, label_name=case.label, verbosity=0)
        lab.find_issues(features=case.features(), pred_probs=case.pred_probs())
    # Datalab catches an issue type's exception, prints it and goes on without that type:
    # turn that into an error so a crippled peer is never reported as a weak one.
    failures = [line for line in printed.getvalue().splitlines() if line.startswith("Error in")]
    if failures:
        raise RuntimeError("Datalab skipped issue types: " + "; ".join(failures))
    issues = lab.get_issues()
    columns = [c for c in issues.columns if c.endswith("_score")]
    suspicion = 1.0 - issues[columns].to_numpy(dtype=float)
    per_type = {c.removesuffix("_score"): suspicion[:, i] for i, c in enumerate(columns)}
    worst = np.nanmax(suspicion, axis=1)
    return {"datalab_worst": Ranking(scores=worst),
            "datalab_best_type": Ranking(scores=worst, candidates=per_type)}


def run_label_quality(case: Case) -> dict[str, Ranking]:
    """cleanlab ``rank.get_label_quality_scores`` (self-confidence), inverted."""
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(case.label_codes(), case.pred_probs())
    return {"label_quality": Ranking(scores=1.0 - quality)}


def run_iforest(case: Case) -> dict[str, Ranking]:
    """PyOD IForest (defaults, seeded) fitted and scored on the encoded features."""
    from pyod.models.iforest import IForest

    return {"iforest": Ranking(IForest(random_state=case.seed).fit(case.features())
                               .decision_scores_)}


def run_ecod(case: Case) -> dict[str, Ranking]:
    """PyOD ECOD (defaults) fitted and scored on the encoded features."""
    from pyod.models.ecod import ECOD

    return {"ecod": Ranking(ECOD().fit(case.features()).decision_scores_)}


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes
    ----------
    name : str
    run : callable
        ``run(case) -> {ranking name: Ranking}``.
    rankings : dict
        Ranking name -> label used in the results.
    requires : tuple of str
        Importable modules it needs (checked before running).
    uses_pred_probs : bool
        Needs the shared out-of-fold predicted probabilities.
    """

    name: str
    run: Callable[[Case], dict[str, Ranking]]
    rankings: dict[str, str]
    requires: tuple[str, ...] = ()
    uses_pred_probs: bool = False

    def missing(self) -> list[str]:
        """Required modules that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


#: The registry, in reporting order. Add a method by adding one entry.
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("poisonscan", run_poisonscan,
           {"poisonscan": "poisonscan",
            **{f"poisonscan:{f}": f"poisonscan [{f}]" for f in FAMILY_RANKINGS}},
           requires=("poisonscan",)),
    Method("datalab", run_datalab,
           {"datalab_worst": "Datalab worst", "datalab_best_type": "Datalab best type*"},
           requires=("cleanlab", "datasets"), uses_pred_probs=True),
    Method("label_quality", run_label_quality, {"label_quality": "cleanlab label quality"},
           requires=("cleanlab",), uses_pred_probs=True),
    Method("iforest", run_iforest, {"iforest": "IForest"}, requires=("pyod",)),
    Method("ecod", run_ecod, {"ecod": "ECOD"}, requires=("pyod",)),
)}


def ranking_labels() -> dict[str, str]:
    """Every ranking name of every method, with its display label, in reporting order."""
    return {name: text for method in METHODS.values() for name, text in method.rankings.items()}


def scratch_case(frame: pd.DataFrame, via_csv: bool, **fields) -> tuple[Case, object]:
    """Build a :class:`Case` in a fresh temporary directory.

    For ``via_csv`` the frame is written to ``poisoned.csv`` and read back with pandas, so
    poisonscan scans the file and the peers read the same file.

    Returns
    -------
    case : Case
    tmp : tempfile.TemporaryDirectory
        Keep it alive while the case is used; ``cleanup()`` when done.
    """
    tmp = tempfile.TemporaryDirectory(prefix="poisonscan-bench-")
    workdir = Path(tmp.name)
    source: object = frame
    if via_csv:
        path = workdir / "poisoned.csv"
        frame.to_csv(path, index=False)
        frame, source = pd.read_csv(path, low_memory=False), str(path)
    return Case(frame=frame, source=source, workdir=workdir, **fields), tmp
