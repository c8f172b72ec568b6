"""The duplicates check: fingerprints, groups over all rows, spill, conflicts, repetition."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from poisonscan import pipeline
from poisonscan.checks import duplicates
from poisonscan.checks.duplicates import (DuplicatesCheck, DuplicateScores, hash_numbers,
                                          hash_strings)
from poisonscan.fusion import SOFT_MAX, Fusion
from poisonscan.io.chunk import Chunk
from poisonscan.io.schema import ScanSchema
from poisonscan.io.sources import CsvSource, open_source


# --------------------------------------------------------------------------- helpers

def fit_on(source, label="y", id_column=None, chunk_rows=100, sample_rows=10_000, **params):
    """Run pass 1 and fit over ``source`` in chunks; return the fitted check, plan, schema."""
    source = source if hasattr(source, "chunks") else open_source(source)
    schema = ScanSchema.build(source.arrow_schema, label=label, id_column=id_column)
    check = DuplicatesCheck(**params)
    state = None
    for chunk in source.chunks(chunk_rows, schema):
        state = pipeline.merge(state, pipeline.summarize(chunk, [check], sample_rows=sample_rows,
                                                         seed=0), [check])
    plan = pipeline.fit(state, [check])
    return check, plan, source, schema


def score_all(check, source, schema, chunk_rows=10**9) -> DuplicateScores:
    parts = [check.score(c) for c in source.chunks(chunk_rows, schema)]
    return DuplicateScores(
        np.concatenate([p.scores for p in parts]), np.concatenate([p.violation for p in parts]),
        np.concatenate([p.reasons for p in parts]),
        conflict=np.concatenate([p.conflict for p in parts]),
        disagreement=np.concatenate([p.disagreement for p in parts]),
        finding=np.concatenate([p.finding for p in parts]),
        unnatural=np.concatenate([p.unnatural for p in parts]))


def two_classes(n=400, seed=0) -> pd.DataFrame:
    """Two well separated classes in 3 continuous features plus a categorical column."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, "fox", "owl")
    centre = np.where(y == "fox", -3.0, 3.0)[:, None]
    x = rng.normal(size=(n, 3)) + centre
    return pd.DataFrame({"a": np.round(x[:, 0], 6), "b": np.round(x[:, 1], 6),
                         "c": np.round(x[:, 2], 6),
                         "colour": rng.choice(["red", "green"], n), "y": y})


def insert(frame: pd.DataFrame, new: pd.DataFrame, seed=1) -> tuple[pd.DataFrame, np.ndarray]:
    """Insert ``new`` rows at random positions; returns the frame and a mask of them."""
    rng = np.random.default_rng(seed)
    key = np.concatenate([np.arange(len(frame)), rng.uniform(0, len(frame), len(new))])
    order = np.argsort(key, kind="stable")
    out = pd.concat([frame, new], ignore_index=True).iloc[order].reset_index(drop=True)
    mask = np.zeros(len(out), dtype=bool)
    mask[np.flatnonzero(order >= len(frame))] = True
    return out, mask


def table_chunk(table: pa.Table, label="y") -> Chunk:
    schema = ScanSchema.build(table.schema, label=label, id_column=None)
    return Chunk(table, np.arange(table.num_rows), schema)


# --------------------------------------------------------------------------- fingerprints

def test_numbers_are_canonicalised_before_hashing():
    h = hash_numbers(np.array([1, 1.0, 1.00, 0.1 + 0.2, 0.3, -0.0, 0.0, 1.5, 2.0]), 15)
    assert h[0] == h[1] == h[2]
    assert h[3] == h[4]          # 0.30000000000000004 is 0.3 at 15 significant digits
    assert h[5] == h[6]          # -0.0 is 0.0
    assert len({h[0], h[3], h[5], h[7], h[8]}) == 5


def test_rounding_is_configurable():
    x = np.array([1.234, 1.236, 1234.0, 1236.0])
    fine, coarse = hash_numbers(x, (15, 2))
    assert fine[0] != fine[1] and fine[2] != fine[3]
    assert coarse[0] == coarse[1] and coarse[2] == coarse[3]   # 1.2 and 1200 at 2 digits
    assert coarse[0] != coarse[2]                              # the exponent still counts


def test_textual_forms_of_one_number_make_one_group(tmp_path):
    """``1``, ``1.0`` and ``1.00`` in a CSV are one value; ``1.01`` is another."""
    path = tmp_path / "d.csv"
    path.write_text("v,w,y\n1,5,a\n1.0,5,b\n1.00,5,a\n1.01,5,a\n7,8,a\n")
    check, _, source, schema = fit_on([path])
    out = score_all(check, source, schema)
    assert check.exact_.sizes.tolist() == [3]
    assert out.conflict.tolist() == [True, True, True, False, False]


def test_nan_null_and_infinities_are_distinct_but_deterministic():
    nan_a = np.float64(np.nan)
    nan_b = np.frombuffer(np.uint64(0x7FF8000000000123).tobytes(), dtype=np.float64)[0]
    assert np.isnan(nan_b)
    h = hash_numbers(np.array([nan_a, nan_b, np.inf, -np.inf, 0.0]), 15)
    assert h[0] == h[1]                               # any NaN payload is one NaN
    assert len({h[0], h[2], h[3], h[4]}) == 4
    table = pa.table({"v": pa.array([np.nan, np.nan, None, None, 1.0, np.inf, np.inf]),
                      "y": ["a"] * 7})
    chunk = table_chunk(table)
    check = DuplicatesCheck()
    exact, _ = check._fingerprints(chunk)
    assert exact[0] == exact[1] and exact[2] == exact[3] and exact[5] == exact[6]
    assert len({exact[0], exact[2], exact[4], exact[5]}) == 4   # NaN != missing != 1 != inf
    again, _ = DuplicatesCheck()._fingerprints(table_chunk(table))
    assert np.array_equal(exact, again)


def test_unparseable_cells_are_keyed_by_their_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("v,w,y\n" + "".join(f"{i},1,a\n" for i in range(30))
                    + "12x,1,a\n12x,1,b\n13x,1,a\n,1,a\n")
    source = CsvSource([path], text_columns=["y"])
    schema = ScanSchema.build(source.arrow_schema, label="y", id_column=None)
    chunk = next(source.chunks(100, schema))
    assert 30 in chunk.errors["v"].positions   # the cell really failed to parse
    exact, _ = DuplicatesCheck()._fingerprints(chunk)
    assert exact[30] == exact[31] and exact[30] != exact[32] and exact[30] != exact[33]


def test_string_hash_ignores_the_arrow_encoding_and_near_folds_case():
    plain = pa.array(["Red", "red ", None, "", "blue"])
    as_dict = plain.dictionary_encode()
    assert np.array_equal(hash_strings(plain), hash_strings(as_dict))
    h = hash_strings(plain)
    assert len(set(h.tolist())) == 5
    folded = hash_strings(plain, fold=True)
    assert folded[0] == folded[1] and folded[0] != folded[4] and folded[2] == h[2]


def test_label_and_id_are_not_part_of_the_fingerprint():
    table = pa.table({"uid": ["u1", "u2"], "v": [1.0, 1.0], "y": ["a", "b"]})
    schema = ScanSchema.build(table.schema, label="y", id_column="uid")
    exact, _ = DuplicatesCheck()._fingerprints(Chunk(table, np.arange(2), schema))
    assert exact[0] == exact[1]
    no_id = ScanSchema.build(table.schema, label="y", id_column=None)
    exact, _ = DuplicatesCheck()._fingerprints(Chunk(table, np.arange(2), no_id))
    assert exact[0] != exact[1]
    exact, _ = DuplicatesCheck(exclude=["uid"])._fingerprints(Chunk(table, np.arange(2), no_id))
    assert exact[0] == exact[1]


def test_integers_beyond_float64_precision_are_fingerprinted_exactly():
    """2**60 and 2**60 + 1 are one float64: the exact fingerprint keys such integers by
    their own value (an int64 and a uint64 of one value alike), the near one rounds."""
    big = [2 ** 60, 2 ** 60 + 1, 2 ** 60, None, -2 ** 63, -2 ** 63 + 1, 2 ** 53, 2 ** 53 + 2]
    for values in (pa.array(big, pa.int64()),
                   pa.array([2 ** 64 - 1, 2 ** 64 - 2, 2 ** 64 - 1, None, 2 ** 63, 2 ** 63 + 1,
                             2 ** 53, 2 ** 53 + 2], pa.uint64())):
        table = pa.table({"h": values, "v": [1.0] * 8, "y": ["a"] * 8})
        exact, near = DuplicatesCheck()._fingerprints(table_chunk(table))
        assert exact[0] == exact[2] and len(set(exact.tolist())) == 7
        assert near[0] == near[1]                      # 3 significant digits
    same = [duplicates.big_integer_codes(pa.array([2 ** 62], t))[1] for t in
            (pa.int64(), pa.uint64())]
    assert same[0] == same[1]
    assert duplicates.big_integer_codes(pa.array([2 ** 53, -2 ** 53], pa.int64()))[0].size == 0
    # two ids that differ by one, in otherwise identical rows of different labels, are no
    # exact duplicates (near ones they are: the near fingerprint rounds to 3 digits)
    rows = pa.table({"id": pa.array([2 ** 60 + 1000 * i for i in range(40)] + [2 ** 60 + 1],
                                    pa.int64()),
                     "v": [float(i) for i in range(40)] + [0.0],
                     "y": ["a", "b"] * 20 + ["b"]})
    check, _, source, schema = fit_on(rows, near_digits=None)
    assert check.exact_.distinct == 41 and check.exact_.repeated_rows == 0
    assert not score_all(check, source, schema).conflict.any()


# --------------------------------------------------------------------------- all rows, any split

def test_groups_straddle_chunks_and_files_and_do_not_depend_on_the_split(tmp_path):
    frame = two_classes(300)
    copies = frame.iloc[[5, 5, 5, 250]].copy()
    copies["y"] = ["owl", "owl", "fox", "fox" if frame.y[250] == "owl" else "owl"]
    data = pd.concat([frame, copies], ignore_index=True)   # copies at rows 300-303
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    data.iloc[:160].to_csv(first, index=False)              # row 5 in one file, its copies
    data.iloc[160:].to_csv(second, index=False)             # in the other
    whole = tmp_path / "whole.csv"
    data.to_csv(whole, index=False)
    results = []
    for files, chunk_rows in (([whole], 1000), ([first, second], 37), ([first, second], 7)):
        check, _, source, schema = fit_on(files, chunk_rows=chunk_rows)
        results.append((check, score_all(check, source, schema, chunk_rows=53)))
    (check, out), others = results[0], results[1:]
    assert np.flatnonzero(out.conflict).tolist() == [5, 250, 300, 301, 302, 303]
    assert out.reasons[5].startswith("duplicates: 4 copies (rows 300, 301, 302) — labels ")
    assert out.reasons[302].startswith("duplicates: 4 copies (rows 5, 300, 301) — labels ")
    for other_check, other in others:
        assert other_check.describe() == check.describe()
        assert np.array_equal(other.scores, out.scores)
        assert np.array_equal(other.finding, out.finding)
        assert np.array_equal(other.disagreement, out.disagreement, equal_nan=True)
        assert list(other.reasons) == list(out.reasons)


def test_the_state_costs_at_most_24_bytes_per_row():
    frame = two_classes(1000)
    chunk = table_chunk(pa.Table.from_pandas(frame, preserve_index=False))
    state = DuplicatesCheck().summarize(chunk)
    assert state.nbytes / len(frame) == 21          # 8 + 8 fingerprints, 4 row offset, 1 label
    many = frame.assign(y=[f"label{i}" for i in range(len(frame))])   # > 255 labels: 2 bytes
    state = DuplicatesCheck().summarize(table_chunk(pa.Table.from_pandas(many,
                                                                         preserve_index=False)))
    assert state.nbytes / len(frame) == 22


def test_spilled_state_fits_like_the_in_memory_state(tmp_path, monkeypatch):
    frame = two_classes(400)
    copies = frame.iloc[[3, 3, 9]].copy()
    copies["y"] = ["owl", "fox", "owl" if frame.y[9] == "fox" else "fox"]
    data, _ = insert(frame, copies)
    table = pa.Table.from_pandas(data, preserve_index=False)
    spill_parent = tmp_path / "spill"
    spill_parent.mkdir()
    memory, _, source, schema = fit_on(table, chunk_rows=50)
    spilled_check = DuplicatesCheck(memory_mb=1e-6, spill_dir=str(spill_parent))
    state = None
    for chunk in source.chunks(50, schema):
        state = spilled_check.merge(state, spilled_check.summarize(chunk))
    assert all(run.arrays is None for run in state.runs)
    assert state.nbytes == 0 and state.spilled_bytes == 21 * len(data)
    files = [f for d in spill_parent.iterdir() for f in d.iterdir()]
    assert len(files) == len(state.runs)
    # a range of a spilled run is read from its file, every array
    assert [a.tolist() for a in state.runs[1].read_range(7, 19)] == \
        [a[7:19].tolist() for a in state.runs[1].read()]
    profile = None
    for chunk in source.chunks(50, schema):
        part = pipeline.summarize(chunk, [], sample_rows=10_000, seed=0).profile
        profile = part if profile is None else profile.merge(part)
    monkeypatch.setattr(duplicates, "MIN_SLICE_ROWS", 16)   # and fit it slice by slice
    spilled_check.fit(state, profile)
    spilled_facts, memory_facts = spilled_check.describe(), memory.describe()
    assert spilled_facts.pop("fingerprints") == {
        "rows": len(data), "bytes_per_row": 21.0, "in_memory_mb": 0.0,
        "spilled_mb": round(21 * len(data) / 2 ** 20, 2)}
    assert memory_facts.pop("fingerprints")["in_memory_mb"] == round(21 * len(data) / 2 ** 20, 2)
    assert spilled_facts == memory_facts
    for key in ("keys", "sizes", "members", "label_codes", "label_counts"):
        assert np.array_equal(getattr(spilled_check.exact_, key), getattr(memory.exact_, key))
    chunk = next(source.chunks(10**9, schema))
    assert np.array_equal(spilled_check.score(chunk).scores, memory.score(chunk).scores)
    assert len(list(spill_parent.iterdir())) == 1
    copy = pickle.loads(pickle.dumps(state))       # e.g. shipped to another process
    assert all(run.arrays is not None for run in copy.runs)  # it carries its data
    assert np.array_equal(copy.runs[0].read()[1], state.runs[0].read()[1])
    del copy
    gc.collect()
    assert len(list(spill_parent.iterdir())) == 1  # a copy never owns the files
    shipped = pickle.dumps(state)
    del state
    gc.collect()
    assert list(spill_parent.iterdir()) == []     # the spill directory goes with the state
    # and what was shipped still fits, though the files it came from are gone (another
    # process, or machine, freed them)
    arrived = DuplicatesCheck().fit(pickle.loads(shipped), profile)
    assert np.array_equal(arrived.score(chunk).scores, memory.score(chunk).scores)


def test_merge_is_order_free_and_associative():
    frame = two_classes(300)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema = ScanSchema.build(table.schema, label="y", id_column=None)
    check = DuplicatesCheck()
    a, b, c = (check.summarize(Chunk(table.slice(s, 100), np.arange(s, s + 100), schema))
               for s in (0, 100, 200))
    left = check.merge(check.merge(a, b), c)
    for other in (check.merge(a, check.merge(b, c)), check.merge(check.merge(c, a), b)):
        assert pickle.dumps(other) == pickle.dumps(left)
    assert left.n_rows == 300


# --------------------------------------------------------------------------- conflicts

def test_conflicting_labels_flag_the_group_and_fusion_picks_the_copy():
    frame = two_classes(400)
    flipped = frame.iloc[[10, 20, 30]].copy()
    flipped["y"] = np.where(flipped.y == "fox", "owl", "fox")
    data, mask = insert(frame, flipped)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    chunk = next(source.chunks(10**9, schema))
    out = check.score(chunk)
    assert out.conflict.sum() == 6 and not out.violation.any()
    # the family itself does not choose: both members of a pair score alike
    assert len(set(out.scores[out.conflict].tolist())) == 1
    # the neighbourhood outside the group disagrees with the copy, not with the original
    assert (out.disagreement[mask] > 0.9).all()
    assert (out.disagreement[out.conflict & ~mask] < 0.1).all()
    score, violation, _, reason = plan.fusion.fuse({"duplicates": out})
    assert not violation.any()
    assert (score[mask] >= 1.0).all() and (score[out.conflict & ~mask] < 1.0).all()
    copy = int(np.flatnonzero(mask)[0])
    assert reason[copy].startswith("duplicates: 2 copies (rows ")
    assert ": suspect" in reason[copy]
    assert "less suspect" in reason[np.flatnonzero(out.conflict & ~mask)[0]]


def test_reason_names_the_group_its_members_and_label_counts():
    frame = two_classes(200)
    copies = pd.concat([frame.iloc[[7]]] * 40, ignore_index=True)
    copies["y"] = "fox"
    base = frame.copy()
    base.loc[7, "y"] = "owl"
    data = pd.concat([base, copies], ignore_index=True)
    check, _, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    out = check.score(next(source.chunks(10**9, schema)))
    assert out.reasons[7].startswith("duplicates: 41 copies (rows 200, 201, 202, 203, 204, …)"
                                     " — labels 'fox' ×40, 'owl' ×1")
    assert out.reasons[200].startswith("duplicates: 41 copies (rows 7, 201, 202, 203, 204, …)")
    assert out.reasons[0] is None


def test_label_family_evidence_settles_conflicts_and_its_absence_flags_the_group():
    check_scores = DuplicateScores(
        np.array([0.9, 0.9, 0.9, 0.9, 0.0]), np.zeros(5, dtype=bool),
        np.array(["duplicates: g1", "duplicates: g1", "duplicates: g2", "duplicates: g2", None],
                 dtype=object),
        conflict=np.array([True, True, True, True, False]),
        disagreement=np.full(5, np.nan), finding=np.zeros(5))
    reference = {"duplicates": check_scores}
    # no label evidence at all: every member is flagged, equally, and the reason says so
    fusion = Fusion().fit(reference)
    score, _, _, reason = fusion.fuse({"duplicates": check_scores})
    assert (score[:4] >= 1.0).all() and len(set(score[:4].tolist())) == 1 and score[4] < 1
    assert all("no label evidence either way: whole group flagged" in r for r in reason[:4])
    # a label family that ran decides: rows 1 and 2 have labels it doubts
    labels = pa.array([0.0, 0.99, 0.98, 0.01, 0.5]).to_numpy()
    from poisonscan.checks.base import CheckScores
    label_scores = CheckScores(labels, np.zeros(5, dtype=bool), np.full(5, None, dtype=object))
    ref_labels = CheckScores(np.linspace(0, 1, 101), np.zeros(101, dtype=bool),
                             np.full(101, None, dtype=object))
    fusion = Fusion().fit({"duplicates": check_scores, "labels": ref_labels})
    score, _, _, reason = fusion.fuse({"duplicates": check_scores, "labels": label_scores})
    assert score[1] >= 1.0 and score[2] >= 1.0 and score[0] < 1.0 and score[3] < 1.0
    assert "labels 0.9" in reason[1] and ": suspect" in reason[1]
    assert "less suspect" in reason[0]


def test_conflicts_that_hold_most_rows_are_the_datas_nature_not_findings(tmp_path):
    """Three categorical columns and 10% of labels flipped: every point repeats, nearly
    every group holds both labels. Flagging the undecided groups whole quarantined 38% of
    the rows; the conflicts are how the data is, and the label check ranks the flips."""
    import poisonscan
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    n = 1000
    frame = pd.DataFrame({"a": rng.choice(list("pqrs"), n), "b": rng.choice(list("xyz"), n),
                          "c": rng.choice(["lo", "hi"], n)})
    y = np.where((frame.a == "p") | (frame.c == "hi"), "yes", "no")
    flipped = rng.random(n) < 0.1
    y[flipped] = np.where(y[flipped] == "yes", "no", "yes")
    frame["y"] = y
    result = poisonscan.scan(frame, label="y", out=tmp_path / "out", quiet=True)
    learned = result.summary["checks"]["duplicates"]["learned"]
    assert learned["natural_conflicts"] is True
    assert learned["exact"]["rows_in_conflicting_groups"] >= 0.5 * n
    assert result.summary["rows"]["quarantined"] == 0
    scores = result.scores().sort_values("row")
    assert average_precision_score(flipped, scores["score"]) > 0.9
    # one row per point, and three of them copied with the other label (6 of 27 rows in
    # conflicts): inserted conflicts, not the data's nature
    base = frame[~flipped].drop_duplicates(["a", "b", "c"])
    copies = base.iloc[:3].copy()
    copies["y"] = np.where(copies.y == "yes", "no", "yes")
    mixed = pd.concat([base, copies], ignore_index=True)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(mixed, preserve_index=False))
    assert check.natural_conflicts_ is False


def test_a_natural_conflict_is_no_finding_whatever_the_label_evidence():
    group = np.array([True, True, True, True, False])
    check_scores = DuplicateScores(
        np.array([0.9, 0.9, 0.9, 0.9, 0.0]), np.zeros(5, dtype=bool),
        np.array(["duplicates: g1"] * 4 + [None], dtype=object), conflict=group,
        disagreement=np.array([0.95, 0.05, 0.5, np.nan, np.nan]), finding=np.zeros(5),
        unnatural=np.zeros(5))
    fusion = Fusion().fit({"duplicates": check_scores})
    score, _, _, reason = fusion.fuse({"duplicates": check_scores})
    assert (score[[0, 2, 3]] >= 1.0).all()  # suspect, undecided, no evidence: findings
    check_scores.natural = group
    score, _, _, reason = fusion.fuse({"duplicates": check_scores})
    assert (score < 1.0).all()
    assert all("most of the data's rows are in such groups" in r for r in reason[:4])


def test_where_rows_never_repeat_a_cleared_member_still_ranks_above_the_soft_evidence():
    """A copy of an 'owl' row labelled 'fox' (a flooded copy): the neighbours clear the
    original, but in data where no rows repeat one of the pair was inserted, so the
    original ranks just below the suspects (the evidence may clear the wrong member);
    where rows repeat by nature it keeps the group's soft evidence."""
    frame = two_classes(500)
    copy = frame.iloc[[7]].assign(y="fox")
    assert frame.y[7] == "owl"
    pair = np.array([7, len(frame)])
    for natural, unnatural in ((0, 1.0), (25, 0.0)):
        rng = np.random.default_rng(5)
        extra = frame.drop(index=7).iloc[rng.choice(len(frame) - 1, natural, replace=False)]
        data = pd.concat([frame, copy, extra], ignore_index=True)
        check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
        out = check.score(next(source.chunks(10**9, schema)))
        assert out.conflict[pair].all() and (out.unnatural[pair] == unnatural).all()
        assert (out.unnatural[~out.conflict] == 0).all()
        score, _, _, reason = plan.fusion.fuse({"duplicates": out})
        assert score[len(frame)] >= 1.0 and "suspect" in reason[len(frame)]  # the copy
        others = np.delete(score, pair)
        if unnatural:
            assert SOFT_MAX < score[7] < 1.0 and score[7] > others.max()
            assert reason[7].endswith("(the data holds no such group by nature: ranked high)")
        else:
            assert score[7] <= SOFT_MAX and "ranked high" not in reason[7]


# --------------------------------------------------------------------------- repetition

def test_concentrated_copies_inside_another_class_are_a_finding():
    frame = two_classes(500)
    fox = frame[frame.y == "fox"].index[:2]
    points = frame.loc[fox].copy()
    points["a"] += 0.01                      # new points (no host row shares them) ...
    points["y"] = "owl"                      # ... deep inside 'fox', labelled 'owl'
    copies = points.iloc[np.arange(30) % 2].reset_index(drop=True)
    data, mask = insert(frame, copies)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    out = check.score(next(source.chunks(10**9, schema)))
    # the 15 copies of each point agree on 'owl' with each other; the neighbours say 'fox'
    poisons = mask
    assert not out.conflict.any()
    assert (out.finding[poisons] > 0.5).all()
    assert "neighbours disfavour 'owl'" in out.reasons[np.flatnonzero(poisons)[0]]
    score, _, _, _ = plan.fusion.fuse({"duplicates": out})
    assert score[poisons].min() > score[~poisons & ~out.conflict].max()


def test_repetition_that_is_usual_around_it_is_no_finding():
    """Rows repeat by nature in a discrete region: a large group there is no finding,
    the same count of copies in a region where nothing repeats is."""
    rng = np.random.default_rng(3)
    n = 600
    dense = rng.integers(1, 3, size=(n // 2, 3)).astype(float)       # few values: many repeats
    sparse = rng.normal(size=(n // 2, 3)) * 3 + 20
    x = np.vstack([dense, sparse])
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y="fox")
    frame.loc[n // 2:, "y"] = "owl"
    point = frame.iloc[[n - 1]]
    planted = pd.concat([point] * 40, ignore_index=True)
    data = pd.concat([frame, planted], ignore_index=True)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    chunk = next(source.chunks(10**9, schema))
    out = check.score(chunk)
    exact, _ = check._fingerprints(chunk)
    dense_sizes = check.exact_.sizes[check.exact_.lookup(exact[: n // 2])]
    assert dense_sizes.min() >= 25                   # natural groups about as large as the planted
    assert (out.finding[: n // 2] == 0).all()
    assert (out.finding[n:] > 0.3).all() and out.finding[n - 1] > 0.3


def test_a_copied_row_is_a_finding_only_where_rows_never_repeat():
    """Two copies of a continuous row, in data where no row repeats, are a finding however
    ordinary their place; the same pair where the rows repeat by nature is not."""
    frame = two_classes(500)
    copy = frame.iloc[[7]]
    data = pd.concat([frame, copy], ignore_index=True)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    out = check.score(next(source.chunks(10**9, schema)))
    pair = np.array([7, len(frame)])
    assert check.exact_.rarity == 1.0 and check.describe()["any_copy_is_evidence"]
    assert (out.finding[pair] >= 0.25).all()      # halved: the pair sits deep in its class
    assert (np.delete(out.finding, pair) == 0).all()
    label = frame.y[7]
    assert out.reasons[7] == (f"duplicates: 2 copies (rows {len(frame)}) — labels '{label}' ×2;"
                              " 2× the groups around it, in data whose rows never repeat; "
                              f"neighbours favour '{label}' (0.00)")
    # one row in twenty repeats by nature (each of 'fox' and 'owl'): a pair is ordinary
    rng = np.random.default_rng(5)
    natural = frame.iloc[rng.choice(len(frame), 25, replace=False)]
    repeating = pd.concat([frame, natural, copy], ignore_index=True)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(repeating, preserve_index=False))
    out = check.score(next(source.chunks(10**9, schema)))
    assert check.exact_.rarity == 0.0 and not check.describe()["any_copy_is_evidence"]
    assert (out.finding == 0).all()


@pytest.mark.parametrize("kind", ["counts", "text"])
def test_a_copied_count_or_text_row_may_be_chance(kind):
    """Rows of whole numbers or of text may meet by chance: a pair of them is no finding
    even where nothing else repeats (and is one once the values are continuous)."""
    frame = two_classes(500)
    if kind == "counts":
        frame[["a", "b", "c"]] = (frame[["a", "b", "c"]] * 1000).round()
    else:
        frame = pd.DataFrame({"note": [f"item {i} of batch {i % 7}" for i in range(len(frame))],
                              "y": frame.y})
    data = pd.concat([frame, frame.iloc[[7]]], ignore_index=True)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    out = check.score(next(source.chunks(10**9, schema)))
    assert check.exact_.rarity == 1.0 and not check.continuous_
    assert not check.describe()["any_copy_is_evidence"]
    assert (out.finding == 0).all()
    if kind == "counts":
        data[["a", "b", "c"]] += 0.5
        check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
        out = check.score(next(source.chunks(10**9, schema)))
        assert check.continuous_ and (out.finding[[7, len(frame)]] > 0).all()


def test_a_rare_labels_few_rows_do_not_make_a_common_labels_pair_foreign():
    """'owl' is 5% of the rows. A pair of 'fox' rows with 3 'owl' rows among its 10
    neighbours sits where 'owl' is enriched six-fold, yet 'fox' still outnumbers it: the
    pair is no finding. The same pair with 'owl' outnumbering 'fox' around it is one."""
    rng = np.random.default_rng(6)
    n = 1000
    x = rng.normal(size=(n, 3))
    y = np.where(np.arange(n) < 50, "owl", "fox")
    x[:3] = [0.05, 0.0, 0.0] + rng.normal(scale=0.01, size=(3, 3))   # 3 owls beside the pair
    frame = pd.DataFrame(np.round(x, 6), columns=["a", "b", "c"]).assign(y=y)
    natural = frame.iloc[rng.choice(np.arange(50, n), 30, replace=False)]  # fox pairs are usual
    pair = pd.DataFrame({"a": [0.0, 0.0], "b": [0.0, 0.0], "c": [0.0, 0.0], "y": "fox"})

    def pair_finding(data):
        check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
        out = check.score(next(source.chunks(10**9, schema)))
        assert check.exact_.usual_by_label[check.labels_.index("fox") + 1] >= 2
        return out.disagreement[-2:], out.finding[-2:]

    disagreement, finding = pair_finding(pd.concat([frame, natural, pair], ignore_index=True))
    assert (disagreement <= 0.5).all() and (finding == 0).all()
    more = frame.iloc[:3].assign(a=frame.a[:3] - 0.1)               # now 6 owls beside it
    disagreement, finding = pair_finding(pd.concat([frame, natural, more, more.assign(
        b=more.b + 0.02), pair], ignore_index=True))
    assert (disagreement > 0.9).all() and (finding > 0.4).all()


def test_repetition_findings_grow_with_the_excess():
    frame = two_classes(500)
    rows = frame.index[frame.y == "fox"][:3]
    copies = [frame.loc[[r]] for r, k in zip(rows, (2, 6, 12)) for _ in range(k)]
    data = pd.concat([frame] + copies, ignore_index=True)
    rng = np.random.default_rng(7)
    natural = frame.iloc[rng.choice(len(frame), 30, replace=False)]   # pairs are usual
    data = pd.concat([data, natural], ignore_index=True)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    out = check.score(next(source.chunks(10**9, schema)))
    strength = [out.finding[r] for r in rows]
    assert strength[0] == 0 < strength[1] < strength[2]
    assert strength[2] > 0.45                     # halved: deep in its class


def test_scores_are_deterministic_and_pure():
    frame = two_classes(300)
    extra = frame.iloc[[1, 1, 2]].copy()
    extra["y"] = ["owl", "fox", "owl"]
    data, _ = insert(frame, extra)
    table = pa.Table.from_pandas(data, preserve_index=False)
    first, _, source, schema = fit_on(table, chunk_rows=64)
    second, _, _, _ = fit_on(table, chunk_rows=301)
    before = pickle.dumps(first)
    a = score_all(first, source, schema, chunk_rows=1000)
    b = score_all(second, source, schema, chunk_rows=17)
    assert pickle.dumps(first) == before
    assert np.array_equal(a.scores, b.scores) and list(a.reasons) == list(b.reasons)
    assert np.array_equal(a.disagreement, b.disagreement, equal_nan=True)
    assert a.conflict.sum() == 3 + (2 if frame.y[2] == "fox" else 0)


def test_runs_without_a_label():
    frame = two_classes(200).drop(columns="y")
    data = pd.concat([frame, pd.concat([frame.iloc[[4]]] * 12)], ignore_index=True)
    check, _, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False),
                                      label=None)
    out = check.score(next(source.chunks(10**9, schema)))
    assert not out.conflict.any()
    assert (out.finding[200:] > 0).all() and out.finding[:4].max() == 0
    assert "labels" not in out.reasons[200]


def test_near_duplicates_join_rows_equal_after_rounding():
    frame = two_classes(300)
    jitter = frame.iloc[[11]].copy()
    jitter["a"] = jitter["a"] * (1 + 1e-5)
    jitter["y"] = "owl" if frame.y[11] == "fox" else "fox"
    jitter["colour"] = jitter["colour"].str.upper()
    data = pd.concat([frame, jitter], ignore_index=True)
    table = pa.Table.from_pandas(data, preserve_index=False)
    check, _, source, schema = fit_on(table)
    out = check.score(next(source.chunks(10**9, schema)))
    assert len(check.exact_.keys) == 0 and len(check.near_.keys) == 1
    assert out.conflict[[11, 300]].all() and "2 near copies" in out.reasons[300]
    off, _, _, _ = fit_on(table, near_digits=None)
    assert not off.score(next(source.chunks(10**9, schema))).conflict.any()


def test_near_conflicts_are_the_datas_nature_where_its_points_meet_at_near_precision(tmp_path):
    """One continuous feature and a noisy label: at three significant digits, natural
    neighbours share their near fingerprint (more than half of the rows), and a tenth of
    those pairs hold both labels. Those conflicts are label noise that happens to meet,
    not inserted copies: as findings they quarantined 316 of these 2,000 rows; a group
    no larger than the data's usual near groups is now no finding. Where the
    data's points do not meet (``test_near_duplicates_join_rows_equal_after_rounding``),
    a near copy with the other label stays a conflict and a finding."""
    import poisonscan

    rng = np.random.default_rng(3)
    n = 2000
    x = rng.random(n)
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-8 * (x - 0.5))), "yes", "no")
    frame = pd.DataFrame({"x1": x, "y": y})
    result = poisonscan.scan(frame, label="y", out=tmp_path / "out", quiet=True)
    learned = result.summary["checks"]["duplicates"]["learned"]
    assert learned["near"]["rows_in_groups"] > 0.5 * n
    assert learned["near"]["rows_in_conflicting_groups"] > 0.05 * n
    assert learned["natural_near_copies"] is True
    assert result.summary["rows"]["quarantined"] < 0.01 * n
    # what is left: groups larger than the data's usual near group (a natural 10 here)
    reasons = pd.read_csv(tmp_path / "out" / "suspects.csv")["reason"]
    sizes = reasons.str.extract(r"(\d+) near copies")[0].astype(float)
    assert (sizes > learned["near"]["usual"]).all()
    # offset by a million, every value rounds to one near fingerprint: one group of every
    # row, both labels, had 1,199 of 2,000 rows quarantined
    shifted = poisonscan.scan(frame.assign(x1=1e6 + frame.x1), label="y",
                              out=tmp_path / "shifted", quiet=True)
    learned = shifted.summary["checks"]["duplicates"]["learned"]
    assert learned["near"]["groups"] == 1 and learned["natural_near_copies"] is True
    assert shifted.summary["rows"]["quarantined"] < 0.01 * n
    # twelve jittered copies of one point stand out by their size all the same
    point = x[np.argmin(np.abs(x - 0.2))]
    copies = pd.DataFrame({"x1": point * (1 + 1e-6 * np.arange(1, 13)), "y": "yes"})
    result = poisonscan.scan(pd.concat([frame, copies], ignore_index=True), label="y",
                             out=tmp_path / "out2", quiet=True)
    suspects = set(pd.read_csv(tmp_path / "out2" / "suspects.csv")["row"])
    assert set(range(n, n + 12)) <= suspects and len(suspects) < 12 + 0.01 * n
    # the gate is the data's: rows of three continuous features never meet by nature
    frame = two_classes(300)
    jitter = frame.iloc[[11]].copy()
    jitter["a"] = jitter["a"] * (1 + 1e-5)
    jitter["y"] = "owl" if frame.y[11] == "fox" else "fox"
    data = pd.concat([frame, jitter], ignore_index=True)
    check, plan, source, schema = fit_on(pa.Table.from_pandas(data, preserve_index=False))
    out = check.score(next(source.chunks(10**9, schema)))
    assert check.near_natural_ is False and out.conflict[[11, 300]].all()
    assert not out.natural.any()
    score, _, _, _ = plan.fusion.fuse({"duplicates": out})
    assert score[300] >= 1.0


@pytest.mark.parametrize("param,value", [("digits", 0), ("neighbors", 0), ("memory_mb", 0.0),
                                          ("repeat_quantile", 0.2)])
def test_bad_parameters_are_config_errors(param, value):
    from poisonscan.errors import ConfigError
    check = DuplicatesCheck(**{param: value})
    with pytest.raises(ConfigError, match=param):
        check._validate_params()


@pytest.mark.parametrize("n, distinct", [(0, 1), (1, 1), (7, 1), (5_000, 3), (5_000, 2_500),
                                         (5_000, 10**12)])
def test_fingerprints_are_ordered_by_key_then_row_like_lexsort(n, distinct):
    rng = np.random.default_rng(n + distinct)
    keys = rng.integers(0, distinct, n).astype(np.uint64)
    rows = rng.permutation(10 * n)[:n].astype(np.int64)  # distinct, in no order
    order = duplicates._key_then_row_order(keys, rows)
    assert np.array_equal(order, np.lexsort((rows, keys)))


def test_many_labels_are_asked_about_in_blocks_with_the_same_answer(monkeypatch):
    """The neighbour counts hold one cell per row asked about and label: with tens of
    thousands of labels they ran out of memory. Rows are asked about in blocks, and a
    row's answer does not depend on its block."""
    frame = two_classes(600)
    frame["y"] = [f"{y}{i % 150}" for i, y in enumerate(frame["y"])]  # 300 labels
    copies = frame.iloc[[3, 3, 3, 9, 9]].copy()
    copies["y"] = ["fox7", "owl8", "owl8", "fox9", "owl1"]
    data, mask = insert(frame, copies)
    table = pa.Table.from_pandas(data, preserve_index=False)
    check, _, source, schema = fit_on(table)
    whole = score_all(check, source, schema)
    monkeypatch.setattr(duplicates, "NEIGHBOUR_CELLS", 3 * (len(check.labels_) + 1))
    blocked = score_all(check, source, schema)   # three rows at a time
    assert np.isfinite(whole.disagreement).sum() == 7  # the two groups' rows, in 3 blocks
    assert np.array_equal(whole.scores, blocked.scores)
    assert np.array_equal(whole.disagreement, blocked.disagreement, equal_nan=True)
    assert list(whole.reasons) == list(blocked.reasons)
    assert whole.scores[mask].min() > np.median(whole.scores)  # the copies stand out
