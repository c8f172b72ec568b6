"""Shared test data: small frames with known poisons, built in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


def make_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Mixed-type rows with a label; no poisons."""
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, rows)
    return pd.DataFrame({
        "uid": [f"u{i:05d}" for i in range(rows)],
        "x": np.round(x, 3),
        "count": rng.poisson(3, rows),
        "colour": rng.choice(["red", "green", "blue"], rows),
        "y": np.where(x + rng.normal(0, 5, rows) > 50, "pos", "neg"),
    })


#: row -> (column, cell text, expected words in the reason)
POISONS = {
    3: ("x", "-9000", "x=-9000<min"),
    17: ("x", "NaN", "x is NaN"),
    250: ("count", "inf", "count=inf"),
    400: ("colour", "ultraviolet", "rare value 'ultraviolet'"),
    555: ("x", "12x", "x unparseable '12x'"),
}


def poisoned_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """:func:`make_frame` as text cells with :data:`POISONS` written in."""
    df = make_frame(rows, seed).astype(str)
    for row, (column, value, _) in POISONS.items():
        df.loc[row, column] = value
    return df


#: Vocabularies of :func:`messages`.
HAM = "meeting lunch tomorrow project report team office call later thanks".split()
SPAM = "free prize winner claim cash urgent offer click txt now".split()


def messages(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Short messages of two labels (``y``: ham 70%, spam 30%) drawn from two vocabularies
    plus shared words, and a small integer column ``n``; every word of a label's vocabulary
    is carried by about half of its rows."""
    rng = np.random.default_rng(seed)
    y = rng.choice(["ham", "spam"], rows, p=[0.7, 0.3])
    shared = "the a to you and is".split()
    text = []
    for i, label in enumerate(y):
        words = list(rng.choice(HAM if label == "ham" else SPAM, rng.integers(3, 9))) \
            + list(rng.choice(shared, 2))
        rng.shuffle(words)
        text.append(" ".join(words) + f" #{i}")
    return pd.DataFrame({"text": text, "n": rng.integers(0, 5, rows), "y": y})


@pytest.fixture
def poisoned_csv(tmp_path) -> Path:
    path = tmp_path / "data.csv"
    poisoned_frame().to_csv(path, index=False)
    return path


def read_suspect_rows(out: Path) -> list[int]:
    return pd.read_csv(out / "suspects.csv")["row"].tolist()


def fit_check(check, df, *, label="y", chunk_rows=300, sample_rows=100_000, seed=0):
    """Fit one check on ``df`` through pass 1 (chunk by chunk, merged) and ``fit``.

    Returns
    -------
    source, schema
        What the check was fitted on, to score with :func:`score_chunks`.
    """
    from poisonscan import pipeline
    from poisonscan.io.schema import ScanSchema
    from poisonscan.io.sources import open_source

    source = open_source(df)
    schema = ScanSchema.build(source.arrow_schema, label=label, id_column=None)
    state = None
    for chunk in source.chunks(chunk_rows, schema):
        part = pipeline.summarize(chunk, [check], sample_rows=sample_rows, seed=seed)
        state = pipeline.merge(state, part, [check])
    pipeline.fit(state, [check])
    return source, schema


def score_chunks(check, source, schema, chunk_rows):
    """``(scores, violation, reasons)`` of every row, scored chunk by chunk."""
    parts = [check.score(c) for c in source.chunks(chunk_rows, schema)]
    return (np.concatenate([p.scores for p in parts]),
            np.concatenate([p.violation for p in parts]),
            np.concatenate([p.reasons for p in parts]))
