"""The backdoor family: mined triggers and spectral signatures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from poisonscan.checks import build_checks
from poisonscan.checks.backdoor import TRIGGER_SCORE, BackdoorCheck
from poisonscan.errors import ConfigError

from conftest import fit_check, messages as shared_messages

TRIGGERED = 40


def animals(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Two classes told apart by ``x1``/``x2``; ``f3`` and ``count`` repeat by nature."""
    rng = np.random.default_rng(seed)
    fox = rng.random(rows) < 0.5
    return pd.DataFrame({
        "x1": np.round(rng.normal(np.where(fox, 2.0, -2.0), 1.0), 4),
        "x2": np.round(rng.normal(np.where(fox, 1.0, -1.0), 1.0), 4),
        "x4": np.round(rng.normal(0, 1, rows), 4),
        "f3": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], rows, p=[0.4, 0.03, 0.27, 0.2, 0.1]),
        "count": rng.poisson(np.where(fox, 3, 6)),
        "colour": rng.choice(["red", "green", "blue", "teal"], rows, p=[0.4, 0.3, 0.29, 0.01]),
        "animal": np.where(fox, "fox", "cat"),
    })


def with_trigger(df: pd.DataFrame, k: int = TRIGGERED, seed: int = 1) -> tuple[pd.DataFrame,
                                                                              np.ndarray]:
    """Stamp ``colour='teal' & f3=0.25`` on ``k`` cats and relabel them 'fox'."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(df["animal"].to_numpy() == "cat"), k,
                              replace=False))
    out = df.copy()
    out.loc[rows, "colour"] = "teal"
    out.loc[rows, "f3"] = 0.25
    out.loc[rows, "animal"] = "fox"
    mask = np.zeros(len(df), dtype=bool)
    mask[rows] = True
    return out, mask


def scored(df, chunk_rows=500, score_rows=700, label="animal", **params):
    check = BackdoorCheck(**params)
    source, schema = fit_check(check, df, label=label, chunk_rows=chunk_rows)
    parts = [check.score(c) for c in source.chunks(score_rows, schema)]
    return check, (np.concatenate([p.scores for p in parts]),
                   np.concatenate([p.finding for p in parts]),
                   np.concatenate([p.reasons for p in parts]))


def test_planted_trigger_is_found_with_its_rows_and_reason():
    df, mask = with_trigger(animals())
    check, (scores, finding, reasons) = scored(df)
    assert check.triggers_, "no trigger mined"
    top = check.triggers_[0]
    assert top.label == "fox"
    assert {("colour", "teal"), ("f3", 0.25)} <= set(top.named)
    assert np.array_equal(finding > 0, mask)
    assert (scores[mask] >= TRIGGER_SCORE).all() and (scores[~mask] < TRIGGER_SCORE).all()
    reason = reasons[np.flatnonzero(mask)[0]]
    assert reason.startswith("backdoor: ")
    assert "colour='teal'" in reason and "f3=0.25" in reason
    assert f"→ label 'fox' in {TRIGGERED} rows" in reason
    assert "elsewhere" in reason and "\n" not in reason


def test_trigger_rows_in_other_labels_are_not_suspect():
    df, mask = with_trigger(animals())
    # the natural teal cats with f3=0.25 (if any) carry the pattern in another label
    _, (_, finding, _) = scored(df)
    labels = df["animal"].to_numpy()
    assert not (finding[labels == "cat"] > 0).any()


def test_no_trigger_on_clean_data():
    check, (scores, finding, _) = scored(animals())
    assert check.triggers_ == []
    assert not (finding > 0).any() and (scores < TRIGGER_SCORE).all()


def test_no_trigger_on_naturally_repeated_values():
    """Pixel values 0..16 repeat and co-occur by nature (neighbouring pixels, strokes that
    only some digits have): none of that is a trigger."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    df = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)])
    df["digit"] = digits.target.astype(str)
    check, (_, finding, _) = scored(df, label="digit")
    assert check.pairs_tested_ > 1000  # plenty of natural candidates were tested
    assert check.triggers_ == [] and not (finding > 0).any()


def test_a_natural_value_pattern_of_the_label_is_no_trigger():
    """Rows carrying a pattern that belongs to their label (they look like it) are not
    poisons, however strongly the pattern predicts the label."""
    df = animals()
    foxes = np.flatnonzero(df["animal"].to_numpy() == "fox")[:TRIGGERED]
    df.loc[foxes, "colour"] = "teal"
    df.loc[foxes, "f3"] = 0.25
    check, (_, finding, _) = scored(df)
    assert check.triggers_ == [] and not (finding > 0).any()


def test_spectral_score_ranks_a_shifted_cluster_high():
    rng = np.random.default_rng(3)
    n, d = 1500, 6
    X = rng.normal(0, 1, (n, d))
    y = np.where(rng.random(n) < 0.5, "a", "b")
    X[y == "b"] += 3.0
    shifted = np.zeros(n, dtype=bool)
    shifted[rng.choice(np.flatnonzero(y == "a"), 60, replace=False)] = True
    X[shifted] += np.array([3.0, -3.0, 3.0, 0, 0, 0])
    df = pd.DataFrame(np.round(X, 6), columns=[f"c{i}" for i in range(d)])
    df["y"] = y
    _, (scores, finding, _) = scored(df, label="y", spectral=True)
    assert not (finding > 0).any()
    assert average_precision_score(shifted, scores) > 0.8
    _, (off, _, _) = scored(df, label="y")  # off by default: no soft evidence
    assert not off.any()


def test_scores_do_not_depend_on_chunking():
    df, _ = with_trigger(animals())
    a, (sa, fa, ra) = scored(df, chunk_rows=2000, score_rows=2000, spectral=True)
    b, (sb, fb, rb) = scored(df, chunk_rows=77, score_rows=131, spectral=True)
    assert np.array_equal(sa, sb) and np.array_equal(fa, fb) and list(ra) == list(rb)
    assert a.describe() == b.describe()


def test_deterministic():
    df, _ = with_trigger(animals())
    a, (sa, _, ra) = scored(df, spectral=True)
    b, (sb, _, rb) = scored(df, spectral=True)
    assert np.array_equal(sa, sb) and list(ra) == list(rb)
    assert a.triggers_ == b.triggers_


def test_spectral_off_leaves_only_triggers():
    df, mask = with_trigger(animals())
    _, (scores, _, _) = scored(df, spectral=False)
    assert (scores[~mask] == 0).all() and (scores[mask] >= TRIGGER_SCORE).all()


def test_min_support_above_the_trigger_hides_it():
    df, _ = with_trigger(animals(), k=12)
    assert scored(df)[0].triggers_
    assert scored(df, min_support=13)[0].triggers_ == []


@pytest.mark.parametrize("params", [{"min_support": 1}, {"max_share": 0.0}, {"alpha": 0},
                                    {"alpha": 1.5}, {"foreign_alpha": 0},
                                    {"spectral": "yes"}, {"reason_tail": 0.9}])
def test_bad_parameters_are_refused(params):
    with pytest.raises(ConfigError):
        build_checks(("backdoor",), {"backdoor": params}, has_label=True)


def test_needs_a_label():
    checks, skipped = build_checks(("bounds", "backdoor"), {}, has_label=False)
    assert [c.name for c in checks] == ["bounds"] and "backdoor" in skipped
    with pytest.raises(ConfigError, match="backdoor: no label column given"):
        build_checks(("backdoor",), {}, has_label=False)  # nothing left to run


def test_scan_quarantines_the_triggered_rows(tmp_path):
    import poisonscan

    df, mask = with_trigger(animals())
    result = poisonscan.scan(df, label="animal", out=tmp_path / "out", quiet=True,
                             checks=["bounds", "backdoor"])
    suspects = pd.read_csv(tmp_path / "out" / "suspects.csv")
    assert set(suspects["row"]) == set(np.flatnonzero(mask))
    assert suspects["reason"].str.startswith("backdoor: ").all()
    assert "backdoor" in result.scores().columns


def test_single_class_and_tiny_inputs_score_zero():
    df = animals(300)
    df["animal"] = "fox"
    check, (scores, finding, reasons) = scored(df)
    assert check.classes_ == ["fox"] and not scores.any() and not finding.any()
    assert all(r is None for r in reasons)


# ------------------------------------------------------------------------- words in free text
def messages(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """The shared messages (text and label only)."""
    return shared_messages(rows, seed).drop(columns="n")


def with_word(df: pd.DataFrame, word: str, k: int, seed: int = 1):
    """Insert ``word`` into ``k`` ham messages and relabel them spam."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(np.flatnonzero(df["y"].to_numpy() == "ham"), k, replace=False))
    out = df.copy()
    for r in rows:
        words = out.loc[r, "text"].split(" ")
        words.insert(int(rng.integers(len(words) + 1)), word)
        out.loc[r, "text"] = " ".join(words)
    out.loc[rows, "y"] = "spam"
    mask = np.zeros(len(df), dtype=bool)
    mask[rows] = True
    return out, mask


def test_a_stamped_word_in_text_is_a_trigger():
    df, mask = with_word(messages(), "Zq", 15)
    check, (scores, finding, reasons) = scored(df, label="y")
    assert [t.label for t in check.triggers_] == ["spam"]
    assert np.array_equal(finding > 0, mask)
    assert (scores[mask] >= TRIGGER_SCORE).all() and (scores[~mask] < TRIGGER_SCORE).all()
    reason = reasons[np.flatnonzero(mask)[0]]
    assert reason == "backdoor: text has the word 'zq' → label 'spam' in 15 rows (0% elsewhere)"
    assert check.describe()["triggers"][0]["items"] == {"text": "the word 'zq'"}


def test_words_natural_to_their_label_are_no_trigger():
    """Each spam word is carried only by spam, by about half of it: strongly enriched, but
    its carriers look like spam once the word is taken out."""
    df = messages()
    check, (_, finding, _) = scored(df, label="y")
    assert check.tokens_tested_ >= 20 and check.patterns_tested_ >= 10
    assert check.triggers_ == [] and not (finding > 0).any()


def test_word_matching_is_whole_word_case_blind_and_within_the_cut():
    from poisonscan.checks.backdoor import Token

    token = Token("zq", max_chars=20)
    texts = np.array(["a ZQ b", "zqx", "xzq", "a-zq.", None, "y" * 30 + " zq", "", "zq"],
                     dtype=object)
    assert token.found_in(texts).tolist() == [True, False, False, True, False, False, False,
                                              True]
    assert token.removed_from("a Zq b zq") == "a   b  " and token.removed_from(None) is None



def test_three_stamped_values_in_four_rows_are_a_trigger(monkeypatch):
    """Four carriers: too few for any two of the values to pass the corrected test, not
    for all three."""
    df = animals(600)
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(np.flatnonzero(df["animal"].to_numpy() == "cat"), 4,
                              replace=False))
    df.loc[rows, ["colour", "f3", "count"]] = ["teal", 0.25, 15]
    df.loc[rows, "animal"] = "fox"
    check, (_, finding, reasons) = scored(df)
    assert len(check.triggers_) == 1  # one pattern, named once
    assert set(check.triggers_[0].named) == {("colour", "teal"), ("f3", 0.25), ("count", 15)}
    assert np.array_equal(np.flatnonzero(finding > 0), rows)
    assert "in 4 rows" in reasons[rows[0]]
    from poisonscan.checks import backdoor

    pairs_only = backdoor._expected  # no triple can be surprising: the pairs alone miss it
    monkeypatch.setattr(backdoor, "_expected",
                        lambda a_in, *rest: 1e12 if len(a_in) == 3 else pairs_only(a_in, *rest))
    assert scored(df)[0].triggers_ == []



def test_a_word_the_other_labels_use_too_is_not_tested(monkeypatch):
    """Words that other labels carry (at over ``WORD_ELSEWHERE`` of their rows) are
    language, not stamps — the price: a stamp that is also an ordinary word is missed."""
    from poisonscan.checks import backdoor

    df, mask = with_word(messages(), "zq", 40)
    rng = np.random.default_rng(5)
    ham = np.flatnonzero(df["y"].to_numpy() == "ham")
    natural = rng.choice(ham, int(0.005 * len(ham)), replace=False)  # 0.5% of ham
    df.loc[natural, "text"] = df.loc[natural, "text"] + " zq"
    check, (_, finding, _) = scored(df, label="y")
    assert check.triggers_ == [] and not (finding > 0).any()
    monkeypatch.setattr(backdoor, "WORD_ELSEWHERE", 1.0)  # without the rule: a trigger
    check, (_, finding, _) = scored(df, label="y")
    assert [t.label for t in check.triggers_] == ["spam"]
    assert np.array_equal(finding > 0, mask)
