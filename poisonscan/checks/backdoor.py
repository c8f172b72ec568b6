"""Backdoor checks: mined value triggers and per-class spectral signatures.

A backdoor poison carries a *trigger* — a few fixed feature values, a pixel patch — and the
attacker's target label. Its rows look like their source class but for the trigger, so
label checks see little and outlier checks less. Two kinds of evidence are learned on
the row sample at fit time (the shared encoder exists only after pass 1; with the default
sample of 100,000 rows the sample is the whole dataset up to that size, and a trigger
must be carried by ``min_support`` *sampled* rows to be mined); a third, planted values,
is counted over the whole data in pass 1 (:mod:`poisonscan.checks.planted`):

* **Trigger mining.** An *item* is one exact value of one feature column (a trigger is a
  fixed value: numbers compare exactly, text as stored; identifier-like columns are left
  out), or one word of a free-text column. Per class ``c``, the values carried by at least
  ``min_support`` and at most ``max_share`` of its sampled rows, and not rarer in ``c``
  than elsewhere (a one-sided Poisson screen at ``ITEM_SCREEN``), are candidates — at
  most ``MAX_ITEMS`` per class, the most enriched first.

  1. *Class-specific co-occurrence.* For every pair of candidate values of different
     columns, and every triple that extends such a pair with a value of a third column,
     the rows of ``c`` carrying all of them are compared with what ``c``'s own rates of
     the values predict, times how much the set co-occurs in the other classes (its lift
     there, ``(observed + 1) / (expected + 1)``, at least 1): natural correlations
     (neighbouring pixels, a size measured twice) co-occur in every class and are
     predicted, a stamped trigger co-occurs only in its target label. One-sided Poisson
     test. A triple is tested because three stamped values in five rows are far more
     telling than any two of them. *Words* of a text column are tested alone: a word
     carried by ``n`` sampled rows, ``x`` of them in ``c``, against ``Binomial(n, share of
     c)`` — if at most ``WORD_ELSEWHERE`` of the other labels' rows carry it (a stamped
     word is foreign to their text; the words that mark a label by nature are not).
     Every test is Bonferroni-corrected over all tests, at ``alpha``.
  2. *Carriers that look like another label.* Without the pattern's columns (for a word:
     with the word taken out of the carriers' text), the carriers' nearest sampled rows
     must hold fewer rows of ``c`` than the nearest rows of ``c``'s other rows do
     (one-sided Mann-Whitney test, Bonferroni-corrected over the patterns tested — the
     ``MAX_PATTERNS`` strongest — at ``foreign_alpha``), and not many more than rows at
     random do (``NATURAL_ODDS``). A pattern that belongs to its label by nature (a
     job level that goes with a job title, a stroke only some digits have, a word of
     spam) fails this; rows taken from another class and relabelled pass it.

  A set of values that passes both is a trigger, named with every other candidate of
  ``c`` that at least ``EXTEND_SHARE`` of its carriers hold and at most ``1 -
  EXTEND_SHARE`` of the label's other rows. The rows of ``c`` that carry it — in every
  chunk of pass 2, exactly, whatever the sample held — are a *finding*
  (:mod:`poisonscan.fusion`): they rank above statistical evidence. A single value of a
  column is not mined: alone, it cannot be told from a value that predicts the class by
  nature (a word can: taking it out of its carriers' text leaves the rest of the text to
  compare).
* **Spectral signatures** (Tran, Li & Madry 2018). Per class, the top principal
  direction of the class-centred, standardised encoded features of the sampled rows; a
  row's score is the absolute projection of its centred features on its class's direction,
  in units of the class's standard deviation along it (comparable across classes). Poisons
  relabelled into a class form a sub-population that pulls that direction towards them.
  This is soft evidence, calibrated by the fusion like any family's score; it is off
  unless ``spectral = true`` (see the class docstring for why).

* **Planted values** (``planted``, on by default). One exact value of a full-precision
  column on many rows of one label, beyond what the counters' noise and the labels'
  shares explain: a one-value trigger, or the values a cluster of near copies keeps from
  the row it copies. Its carriers are findings like a mined trigger's.

The family score is the spectral score (0 when it is off), or ``TRIGGER_SCORE`` plus the
finding's strength for rows that carry a trigger in its label or a planted value. Nothing here is a hard violation.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from ..config import Option
from ..encode import standard_scale, varies
from ..io.schema import CATEGORICAL
from .base import Check, CheckScores, quote
from .planted import PlantedValues, ValueSketch, floating_columns

#: Fewest sampled rows of a class for it to be modelled.
MIN_CLASS_ROWS = 10
#: Classes modelled at most (the largest).
MAX_CLASSES = 100
#: Items kept per class for pair tests (the most enriched).
MAX_ITEMS = 64
#: Uncorrected one-sided Poisson level an item's enrichment in its class must reach.
ITEM_SCREEN = 0.5
#: Largest share of the other labels' rows that may carry a word for it to be tested: a
#: stamped word is foreign to their text, while the words that mark a label by nature
#: (a link style of one era, a client's signature) turn up elsewhere too. On the
#: benchmark's ``tweets``, the natural markers that otherwise pass every test are carried
#: by 0.13-2.2% of the other labels' rows.
WORD_ELSEWHERE = 0.001
#: Share of a trigger's carriers that carry another item for it to be named with it.
EXTEND_SHARE = 0.9
#: Family score of a row that carries a mined trigger (above any spectral score).
TRIGGER_SCORE = 1000.0
#: Finding strength of a trigger carrier: ``FINDING_BASE`` plus up to ``FINDING_SPAN`` as
#: the trigger's evidence ``-log10 p`` grows to ``FULL_EVIDENCE``.
FINDING_BASE, FINDING_SPAN, FULL_EVIDENCE = 0.5, 0.4, 50.0
#: Rows whose neighbourhoods are compared in the foreignness test (carriers, controls).
MAX_PROBES = 1000
#: Patterns (the strongest) whose carriers' neighbourhoods are tested at most.
MAX_PATTERNS = 50
#: Sampled rows the neighbours are searched among.
MAX_REFERENCE = 20_000
#: Principal axes the foreignness test's neighbours are searched on.
FOREIGN_DIMS = 32
#: Neighbours per row in the foreignness test.
NEIGHBOURS = 10
#: Carriers whose neighbours hold their label at odds this many times those of the sampled
#: rows are a natural variant of the label. Set on the quality benchmark: trigger carriers
#: came out at 0.45-1.4 times (caravan, diamonds, hpc), the natural variants of a digit
#: that triples of pixel values single out at 8 times and more.
NATURAL_ODDS = 3.0
#: Characters of a value or label quoted in a reason.
MAX_TEXT = 30


@dataclasses.dataclass
class BackdoorScores(CheckScores):
    """:class:`CheckScores` plus the finding strength of trigger carriers (0 = none)."""

    finding: np.ndarray | None = None


def finding_strength(evidence):
    """The finding strength of trigger carriers whose evidence is ``-log10 p``."""
    return FINDING_BASE + FINDING_SPAN * np.minimum(1.0, np.asarray(evidence) / FULL_EVIDENCE)


@dataclasses.dataclass(frozen=True)
class Token:
    """A word of a free-text column, as an item: a cell carries it if its first
    ``max_chars`` characters, lower-cased, hold it as a whole word (the text encoder's
    tokenisation: runs of two or more letters or digits)."""

    word: str
    max_chars: int

    def _pattern(self) -> re.Pattern:
        return re.compile(rf"\b{re.escape(self.word)}\b", re.IGNORECASE)

    def removed_from(self, text: str | None) -> str | None:
        """``text`` without the word (``None`` stays ``None``)."""
        return None if text is None else self._pattern().sub(" ", text)

    def found_in(self, texts: np.ndarray) -> np.ndarray:
        """Whether each of ``texts`` (``None`` for a null cell) carries the word."""
        pattern = self._pattern()
        return np.fromiter((t is not None and pattern.search(t[:self.max_chars])
                            is not None for t in texts), dtype=bool, count=len(texts))


@dataclasses.dataclass(frozen=True)
class _Test:
    """One candidate trigger of class ``label`` (a class index) and its uncorrected p-value.

    ``build()`` gives the items to name, the sampled carriers in the label, and the view of
    the foreignness test: a function of the standardised sample features and their source
    columns that returns the features to compare and the mask of those it keeps.
    """

    label: int
    items: tuple
    pvalue: float
    observed: float
    elsewhere: float
    build: Callable[[], tuple[tuple, np.ndarray, Callable]]


@dataclasses.dataclass(frozen=True)
class Trigger:
    """A mined trigger: exact values (two or three) or a word that go with one label.

    Attributes
    ----------
    label : str
        The label the trigger leads to.
    items : tuple of (str, object)
        The ``(column, value)`` items carriers must hold (a value is a :class:`Token`
        for a word of a text column).
    named : tuple of (str, object)
        Every item the carriers share (the pair first), for the reason.
    rows : int
        Sampled rows of ``label`` that carry the items.
    elsewhere : float
        Share of the sampled rows of other labels that carry the items.
    pvalue : float
        Bonferroni-corrected p-value of the items' association with the label.
    foreign : float
        Bonferroni-corrected p-value (over the patterns tested) that its carriers look no
        less like another label than the label's other rows do.
    """

    label: str
    items: tuple
    named: tuple
    rows: int
    elsewhere: float
    pvalue: float
    foreign: float

    @property
    def strength(self) -> float:
        return float(finding_strength(-math.log10(max(self.pvalue, 1e-300))))

    def describe(self, complete: bool) -> str:
        what = " & ".join(_item_text(c, v) for c, v in self.named)
        rows = "rows" if complete else "sampled rows"
        return (f"backdoor: {what} → label {quote(self.label, MAX_TEXT)} in {self.rows} {rows} "
                f"({100 * self.elsewhere:.2g}% elsewhere)")


class BackdoorCheck(Check):
    """Trigger mining and per-class spectral signatures (see the module docstring).

    Parameters
    ----------
    min_support : int, default 4
        Fewest sampled rows of the target label that must carry a trigger.
    max_share : float, default 0.8
        Items carried by more than this share of a class are no trigger candidates (a
        trigger marks a minority of its label).
    alpha : float, default 1e-4
        Family-wise level of the trigger tests (Bonferroni over the pairs tested).
    spectral : bool, default False
        Also score rows by their class's spectral signature. Off by default: on the quality
        benchmark's backdoor attacks it did not raise the fused ranking (mean AP 0.822 with
        it, 0.835 without, one seed) and its soft evidence diluted the label families on
        random flips (0.620 → 0.605 at 3%).
    reason_tail : float, default 0.01
        Rows whose spectral score is in this top share of the sample's get a reason.
    planted : bool, default True
        Also count the values of floating columns over the whole data in pass 1 and find
        planted values (:mod:`poisonscan.checks.planted`): a one-value trigger, or the
        values a cluster of near copies keeps, on rows the sample barely holds.
    sketch_mb : float, default 32
        Memory of the pass-1 counters of planted values (a count-min sketch, kept for
        pass 2); more counters, less noise, so rarer planted values pass on larger data.

    Attributes
    ----------
    classes_ : list of str
        Modelled classes (the largest with ``MIN_CLASS_ROWS`` sampled rows).
    triggers_ : list of Trigger
        Mined triggers, strongest first.
    pairs_tested_ : int
        Pairs and triples of values tested for co-occurrence.
    tokens_tested_ : int
        Words of text columns tested (with :attr:`pairs_tested_`, the Bonferroni factor
        of the association tests).
    patterns_tested_ : int
        Patterns whose carriers' neighbourhoods were tested (the Bonferroni factor of
        the foreignness tests).
    complete_ : bool
        Whether the sample holds every row (counts in reasons are then exact).
    encoder_ : FeatureEncoder or None
        The shared encoder (``None`` without spectral scores).
    note_ : str
        Why there is nothing to check (no encoded feature, or none that varies in the
        sample), else ``""``.
    mean_, scale_ : numpy.ndarray
        Standardisation of the encoded features.
    centres_, directions_, spreads_ : numpy.ndarray
        Per class: centre, top principal direction and standard deviation along it.
    threshold_ : float
        Spectral score from which a row gets a reason.
    planted_ : PlantedValues or None
        The planted-value tests (``None`` when off, or without a floating column).
    """

    name = "backdoor"
    requires_label = True
    parameters = (
        Option("min_support", "int", 4, "fewest sampled target-label rows carrying a trigger",
               low=2),
        Option("max_share", "float", 0.8, "largest share of a class a trigger item may cover",
               low=0.0, high=1.0, low_open=True),
        Option("alpha", "float", 1e-4, "family-wise level of the trigger tests",
               low=0.0, high=1.0, low_open=True),
        Option("foreign_alpha", "float", 1e-3, "family-wise level of the test that a "
               "trigger's carriers look like another label", low=0.0, high=1.0, low_open=True),
        Option("spectral", "bool", False, "also score rows by their class's spectral "
               "signature (soft evidence)"),
        Option("reason_tail", "float", 0.01, "top share of spectral scores that get a reason",
               low=0.0, high=0.5),
        Option("planted", "bool", True, "count the values of floating columns over the "
               "whole data and find values planted on many rows of one label"),
        Option("sketch_mb", "float", 32.0, "memory of the counters of planted values",
               low=1.0, high=4096.0),
    )

    # ---------------------------------------------------------------------------- pass 1
    def summarize(self, chunk) -> ValueSketch | None:
        """The chunk's counts of planted-value candidates (``None`` when off, or
        without a label or a floating column)."""
        columns = floating_columns(chunk.schema)
        if not self.planted or chunk.schema.label is None or not columns:
            return None
        return ValueSketch.of(chunk, columns, int(self.sketch_mb * 2 ** 20))

    def _merge(self, a: ValueSketch, b: ValueSketch) -> ValueSketch:
        return a.merge(b)

    # ------------------------------------------------------------------------------ fit
    def fit(self, state, profile) -> "BackdoorCheck":
        self._validate_params()
        sample = profile.sample_chunk()
        self.complete_ = len(sample) == profile.n_rows
        self.triggers_, self.pairs_tested_, self.tokens_tested_ = [], 0, 0
        self.patterns_tested_ = 0
        self.encoder_ = None
        self.threshold_ = math.inf
        self.planted_ = None
        self.note_ = ""
        labels = sample.labels()
        present = pd.Series(labels[labels != None]).value_counts()  # noqa: E711
        ordered = sorted(((str(c), int(k)) for c, k in present.items() if k >= MIN_CLASS_ROWS),
                         key=lambda kv: (-kv[1], kv[0]))[:MAX_CLASSES]
        self.classes_ = sorted(c for c, _ in ordered)
        self._class_index = pd.Index(self.classes_, dtype=object)
        if state is not None:  # needs no modelled class: a planted label may be rare
            self.planted_ = PlantedValues(self.alpha, self.min_support).fit(state, sample)
        if len(self.classes_) < 2:
            return self
        codes = self._class_index.get_indexer(labels)
        encoder = profile.encoder()
        X = encoder.transform(sample) if encoder.feature_names_ else None
        if X is None or not varies(X):  # no column holds two values: no trigger to mine
            self.note_ = "nothing to check: " + ("no encodable feature column" if X is None
                                                 else "no encoded feature varies in the sample")
            return self
        self.mean_, self.scale_ = standard_scale(X)
        Z = self._standardise(X)
        columns = [c for c in sample.schema.features if c not in encoder.skipped_]
        self._mine(sample, codes, columns, Z, encoder)
        if self.spectral:
            self.encoder_ = encoder
            self._fit_spectral(Z, codes)
        return self

    def _mine(self, sample, codes: np.ndarray, columns: list[str], Z: np.ndarray | None,
              encoder) -> None:
        """Find the triggers of the sample (sets :attr:`triggers_`, :attr:`pairs_tested_`,
        :attr:`tokens_tested_`, :attr:`patterns_tested_`)."""
        k = len(self.classes_)
        known = codes >= 0
        class_rows = np.bincount(codes[known], minlength=k).astype(np.float64)
        pairs = self._pair_tests(sample, codes, class_rows, [c for c in columns
                                                             if c not in encoder.text_])
        tokens = self._token_tests(sample, codes, class_rows, encoder) if Z is not None else []
        self.pairs_tested_, self.tokens_tested_ = len(pairs), len(tokens)
        tests = pairs + tokens
        if not tests:
            return
        # one Bonferroni factor over every test of either kind
        pvalues = np.array([t.pvalue for t in tests]) * len(tests)
        passed, patterns = [], {}
        order = sorted(range(len(tests)), key=lambda n: (pvalues[n], n))  # strongest first
        for index in order:
            p = float(pvalues[index])
            if p > self.alpha:
                break
            test = tests[index]
            named, hit, view = test.build()
            # a pattern is tested (and kept) once: as its strongest test names it
            key = (test.label, frozenset((col, repr(v)) for col, v in named))
            if key in patterns or len(patterns) == MAX_PATTERNS:
                continue
            patterns[key] = (hit, view)
            passed.append((key, Trigger(self.classes_[test.label], test.items, named,
                                        int(test.observed), float(test.elsewhere),
                                        min(p, 1.0), 1.0)))
        self.patterns_tested_ = len(patterns)
        owners = _owners(encoder)
        covariance = Z.T @ Z / len(Z) if Z is not None and patterns else None  # Z is centred
        foreign = {key: (self._foreign(view(Z, owners), covariance, codes, key[0], hit)
                         if Z is not None else 1.0) * len(patterns)
                   for key, (hit, view) in patterns.items()}
        found = [dataclasses.replace(t, foreign=min(foreign[key], 1.0)) for key, t in passed
                 if foreign[key] <= self.foreign_alpha]
        found.sort(key=lambda t: (t.pvalue, t.label, repr(t.items)))
        self.triggers_ = found

    def _pair_tests(self, sample, codes: np.ndarray, class_rows: np.ndarray,
                    columns: list[str]) -> list["_Test"]:
        """Class-specific co-occurrence tests of pairs and triples of exact values (see the
        module docstring)."""
        k = len(self.classes_)
        known = codes >= 0
        total = class_rows.sum()
        # every column's values as codes (sorted distinct values: deterministic)
        values, item_codes = {}, {}
        for column in columns:
            raw = _item_values(sample, column)
            code, uniques = pd.factorize(raw, sort=True, use_na_sentinel=True)
            values[column], item_codes[column] = uniques, code
        candidates: list[list[tuple[float, str, int]]] = [[] for _ in range(k)]
        for column in columns:
            code, m = item_codes[column], len(values[column])
            if m == 0:
                continue
            ok = known & (code >= 0)
            table = np.bincount(code[ok] * k + codes[ok], minlength=m * k).reshape(m, k)
            overall = table.sum(axis=1, keepdims=True)
            inside = table.astype(np.float64)
            outside_rate = (overall - inside) / np.maximum(total - class_rows, 1.0)
            expected = outside_rate * class_rows
            eligible = (inside >= self.min_support) & (inside <= self.max_share * class_rows)
            v, c = np.nonzero(eligible)
            p = stats.poisson.sf(inside[v, c] - 1, np.maximum(expected[v, c], 1e-12))
            for vi, ci, pi in zip(v.tolist(), c.tolist(), p.tolist()):
                if pi <= ITEM_SCREEN:
                    candidates[ci].append((pi, column, vi))
        raw = []
        for c in range(k):
            kept = sorted(candidates[c], key=lambda t: (t[0], t[1], t[2]))[:MAX_ITEMS]
            if len(kept) < 2:
                continue
            kept.sort(key=lambda t: (t[1], t[2]))
            cols = np.array([col for _, col, _ in kept], dtype=object)
            B = np.column_stack([item_codes[col] == v for _, col, v in kept]).astype(np.float64)
            mine, rest = B[codes == c], B[known & (codes != c)]
            n_in, n_out = float(len(mine)), max(float(len(rest)), 1.0)
            co_in, co_out = mine.T @ mine, rest.T @ rest
            a_in, a_out = np.diag(co_in), np.diag(co_out)
            rows_in = [np.flatnonzero(mine[:, t]) for t in range(len(kept))]
            rows_out = [np.flatnonzero(rest[:, t]) for t in range(len(kept))]
            for i in range(len(kept)):
                for j in range(i + 1, len(kept)):
                    if cols[i] == cols[j] or co_in[i, j] < self.min_support:
                        continue
                    raw.append((c, (i, j), kept, mine, co_in[i, j],
                                _expected(a_in[[i, j]], n_in, co_out[i, j], a_out[[i, j]], n_out),
                                co_out[i, j] / n_out))
                    # the triples that extend the pair with a later item of a third column
                    third = np.arange(j + 1, len(kept))
                    both_in = np.intersect1d(rows_in[i], rows_in[j], assume_unique=True)
                    both_out = np.intersect1d(rows_out[i], rows_out[j], assume_unique=True)
                    tri_in = mine[np.ix_(both_in, third)].sum(axis=0)
                    tri_out = rest[np.ix_(both_out, third)].sum(axis=0)
                    ok = (tri_in >= self.min_support) & (cols[third] != cols[i]) \
                        & (cols[third] != cols[j])
                    for t in np.flatnonzero(ok).tolist():
                        idx = [i, j, int(third[t])]
                        raw.append((c, tuple(idx), kept, mine, tri_in[t],
                                    _expected(a_in[idx], n_in, tri_out[t], a_out[idx], n_out),
                                    tri_out[t] / n_out))
        if not raw:
            return []
        pvalues = stats.poisson.sf(np.array([t[4] for t in raw]) - 1,
                                   np.array([t[5] for t in raw]))

        def item(kept, t):
            return kept[t][1], values[kept[t][1]][kept[t][2]]

        def builder(c, idx, kept, mine):
            def build():
                items = tuple(item(kept, t) for t in idx)
                carriers = (mine[:, list(idx)] > 0).all(axis=1)
                share = mine[carriers].mean(axis=0)
                rest = (mine[~carriers].mean(axis=0) if (~carriers).any()
                        else np.zeros(len(kept)))
                used = {col for col, _ in items}
                extra = tuple(item(kept, t) for t in range(len(kept))
                              if t not in idx and share[t] >= EXTEND_SHARE
                              and rest[t] <= 1.0 - EXTEND_SHARE and kept[t][1] not in used)
                named = items + _one_per_column(extra)
                hit = codes == c
                for t in idx:
                    hit = hit & (item_codes[kept[t][1]] == kept[t][2])
                dropped = list({col for col, _ in named})
                return named, hit, lambda Z, owners: (Z, ~np.isin(owners, dropped))
            return build

        return [_Test(c, tuple(item(kept, t) for t in idx), float(p), observed, elsewhere,
                      builder(c, idx, kept, mine))
                for (c, idx, kept, mine, observed, _, elsewhere), p in zip(raw, pvalues)]

    def _token_tests(self, sample, codes: np.ndarray, class_rows: np.ndarray,
                     encoder) -> list["_Test"]:
        """Tests of single words of free-text columns carried mostly by one label.

        A word (tokenised as the text encoder does) carried by ``n`` sampled rows, ``x``
        of them in class ``c``, is tested against ``Binomial(n, share of c)``: a stamped
        token sits almost only in its target label. Words that belong to a label by nature
        pass this too; the foreignness test that follows tells them apart, on the
        carriers' text with the word taken out.
        """
        from sklearn.feature_extraction.text import CountVectorizer

        known = codes >= 0
        total = class_rows.sum()
        out = []
        for column in sorted(encoder.text_):
            max_chars = encoder.text_[column].max_chars
            cells = sample.strings(column)
            docs = [("" if t is None else t[:max_chars]) for t in cells]
            try:
                counts = CountVectorizer(binary=True, min_df=self.min_support,
                                         dtype=np.float64).fit(docs)
            except ValueError:  # no word is carried by min_support rows
                continue
            X = counts.transform(docs).tocsc()
            words = counts.get_feature_names_out()
            onehot = np.zeros((len(codes), len(self.classes_)))
            onehot[np.flatnonzero(known), codes[known]] = 1.0
            table = np.asarray((X.T @ onehot))  # words x classes
            overall = table.sum(axis=1)
            outside = (overall[:, None] - table) / np.maximum(total - class_rows, 1.0)[None, :]
            w, c = np.nonzero((table >= self.min_support)
                              & (table <= self.max_share * class_rows[None, :])
                              & (outside <= WORD_ELSEWHERE))
            if len(w) == 0:
                continue
            pvalues = stats.binom.sf(table[w, c] - 1, overall[w], class_rows[c] / total)

            def builder(X, column, cells, word_index, label, token):
                def build():
                    hit = np.zeros(len(codes), dtype=bool)
                    hit[X[:, word_index].nonzero()[0]] = True
                    hit &= codes == label

                    def view(Z, owners):  # the carriers' text without the word
                        rows = np.flatnonzero(hit)
                        block = encoder.block_columns(column)
                        edited = np.array([token.removed_from(cells[r]) for r in rows],
                                          dtype=object)
                        out = Z.copy()
                        out[rows, block] = ((encoder.text_[column].transform(edited)
                                             - self.mean_[block]) / self.scale_[block])
                        return out, np.ones(Z.shape[1], dtype=bool)
                    return ((column, token),), hit, view
                return build

            for wi, ci, p in zip(w.tolist(), c.tolist(), pvalues.tolist()):
                token = Token(str(words[wi]), max_chars)
                elsewhere = (overall[wi] - table[wi, ci]) / max(total - class_rows[ci], 1.0)
                out.append(_Test(ci, ((column, token),), float(p), float(table[wi, ci]),
                                 float(elsewhere), builder(X, column, cells, wi, ci, token)))
        return out

    def _foreign(self, view: tuple[np.ndarray, np.ndarray], covariance: np.ndarray,
                 codes: np.ndarray, c: int, hit: np.ndarray) -> float:
        """p-value that the carriers look less like their label than its other rows do.

        ``view`` is the sample's standardised features as the pattern's test sees them and
        the mask of the features it keeps: without the columns of a value pattern, or with
        the word taken out of the carriers' text. On the sample's ``FOREIGN_DIMS``
        principal axes of the kept features, each carrier (at most ``MAX_PROBES``) and as
        many other rows of the label are placed among their ``NEIGHBOURS`` nearest sampled
        rows that do not carry the pattern in the label (at most ``MAX_REFERENCE``; a row is
        not its own neighbour; carriers are left out so that poisons cannot vouch for each
        other); the share of
        those neighbours in the label is compared between carriers and the other rows
        (one-sided Mann-Whitney). Moreover the odds of the label among the carriers'
        neighbours must be below ``NATURAL_ODDS`` times its odds among the reference rows
        (1 is returned otherwise): carriers that sit among their label far more than rows
        at random do are a variant of how the label looks, however much less than its
        other rows they do. Poisons relabelled from another class are surrounded by that
        class; a pattern that is natural to the label is not.
        """
        Z, keep = view
        if not keep.any():
            return 1.0
        probes = _spread(np.flatnonzero(hit), MAX_PROBES)
        controls = _spread(np.flatnonzero((codes == c) & ~hit), MAX_PROBES)
        reference = _spread(np.flatnonzero(~hit), MAX_REFERENCE)
        if len(probes) < 2 or len(controls) < 2 or len(reference) <= NEIGHBOURS:
            return 1.0
        W = Z[:, keep]
        if W.shape[1] > FOREIGN_DIMS:  # a k-d tree is fast in a few dimensions, slow in many
            values, vectors = np.linalg.eigh(covariance[np.ix_(keep, keep)])
            W = W @ vectors[:, np.argsort(values, kind="stable")[::-1][:FOREIGN_DIMS]]
        W = np.ascontiguousarray(W)
        from scipy.spatial import cKDTree
        tree = cKDTree(W[reference])
        same = (codes[reference] == c).astype(np.float64)

        def share(rows: np.ndarray) -> np.ndarray:
            """Share of the label among each row's neighbours, the row itself left out."""
            _, idx = tree.query(W[rows], k=NEIGHBOURS + 1)
            idx = np.asarray(idx).reshape(len(rows), NEIGHBOURS + 1)
            itself = reference[idx] == rows[:, None]
            drop = np.where(itself.any(axis=1), itself.argmax(axis=1), NEIGHBOURS)
            keep = np.arange(NEIGHBOURS + 1)[None, :] != drop[:, None]
            return same[idx[keep].reshape(len(rows), NEIGHBOURS)].mean(axis=1)

        carriers = share(probes)
        if _odds(carriers.mean()) >= NATURAL_ODDS * _odds(same.mean()):
            return 1.0  # they sit among their label far more than rows at random do
        result = stats.mannwhitneyu(carriers, share(controls), alternative="less")
        return float(result.pvalue)

    def _fit_spectral(self, Z: np.ndarray, codes: np.ndarray) -> None:
        d = Z.shape[1]
        k = len(self.classes_)
        self.centres_ = np.zeros((k, d))
        self.directions_ = np.zeros((k, d))
        self.spreads_ = np.ones(k)
        for c in range(k):
            group = Z[codes == c]
            centre = group.mean(axis=0)
            centred = group - centre
            values, vectors = np.linalg.eigh(centred.T @ centred / len(group))
            top = vectors[:, -1]
            top = top * (1.0 if top[np.abs(top).argmax()] >= 0 else -1.0)
            self.centres_[c], self.directions_[c] = centre, top
            self.spreads_[c] = math.sqrt(values[-1]) if values[-1] > 0 else 1.0
        if self.reason_tail > 0:
            spectral = self._spectral(Z, codes)
            self.threshold_ = float(np.quantile(spectral[codes >= 0], 1.0 - self.reason_tail))

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _spectral(self, Z: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``|(z - centre) . direction| / spread`` of each row's class (0 without one)."""
        out = np.zeros(len(Z))
        known = codes >= 0
        c = codes[known]
        projection = np.einsum("ij,ij->i", Z[known] - self.centres_[c], self.directions_[c])
        out[known] = np.abs(projection) / self.spreads_[c]
        return out

    # ---------------------------------------------------------------------------- score
    def score(self, chunk) -> BackdoorScores:
        n = len(chunk)
        scores = np.zeros(n)
        finding = np.zeros(n)
        reasons = np.full(n, None, dtype=object)
        if n == 0 or (len(self.classes_) < 2 and self.planted_ is None):
            return BackdoorScores(scores, np.zeros(n, dtype=bool), reasons, finding=finding)
        labels = chunk.labels()
        codes = self._class_index.get_indexer(labels)
        if self.encoder_ is not None:
            scores = self._spectral(self._standardise(self.encoder_.transform(chunk)), codes)
            for i in np.flatnonzero(scores >= self.threshold_).tolist():
                reasons[i] = (f"backdoor: spectral signature of label "
                              f"{quote(self.classes_[codes[i]], MAX_TEXT)}: "
                              f"{scores[i]:.1f} sd along its top direction")
        carried = np.zeros(n, dtype=bool)
        for trigger in self.triggers_:  # strongest first: a row keeps the strongest
            hit = (labels == trigger.label) & ~carried
            for column, value in trigger.items:
                hit &= _carries(chunk, column, value)
            if not hit.any():
                continue
            carried |= hit
            finding[hit] = trigger.strength
            reasons[hit] = trigger.describe(self.complete_)
        if self.planted_ is not None:
            evidence, why = self.planted_.carriers(chunk, labels)
            hit = (evidence > 0) & ~carried
            carried |= hit
            finding[hit] = finding_strength(evidence[hit])
            reasons[hit] = why[hit]
        scores[carried] = TRIGGER_SCORE + finding[carried] \
            + scores[carried] / (1.0 + scores[carried])
        return BackdoorScores(np.ascontiguousarray(scores, dtype=np.float64),
                              np.zeros(n, dtype=bool), reasons, finding=finding)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"classes": len(getattr(self, "classes_", [])),
                               "pairs_tested": getattr(self, "pairs_tested_", 0),
                               "words_tested": getattr(self, "tokens_tested_", 0)}
        triggers = getattr(self, "triggers_", [])
        out["triggers"] = [{"label": t.label,
                            "items": {c: _value_text(v) for c, v in t.named},
                            "sampled_rows": t.rows, "elsewhere": round(t.elsewhere, 6),
                            "pvalue": float(f"{t.pvalue:.3g}")} for t in triggers[:20]]
        out["spectral"] = getattr(self, "encoder_", None) is not None
        if getattr(self, "planted_", None) is not None:
            out["planted_values"] = self.planted_.describe()
        if getattr(self, "note_", ""):
            out["note"] = self.note_
        return out


def _expected(a_in: np.ndarray, n_in: float, co_out: float, a_out: np.ndarray,
              n_out: float) -> float:
    """Rows of a class expected to carry a set of items (a pair or a triple) by chance.

    ``a_in``: the class's rows carrying each item, of ``n_in``; independence predicts
    ``n_in * prod(a_in / n_in)``. That is multiplied by the set's lift in the other labels,
    ``(co_out + 1) / (n_out * prod(a_out / n_out) + 1)`` when above 1, so that values that
    co-occur in every label by nature are predicted to co-occur in this one too.
    """
    lift = (co_out + 1.0) / (n_out * np.prod(a_out / n_out) + 1.0)
    return float(n_in * np.prod(a_in / n_in) * max(lift, 1.0))


def _odds(share: float) -> float:
    share = min(max(share, 1e-6), 1.0 - 1e-6)
    return share / (1.0 - share)


def _carries(chunk, column: str, value) -> np.ndarray:
    """Whether each row of ``chunk`` holds the item ``(column, value)``."""
    if isinstance(value, Token):
        return value.found_in(chunk.strings(column))
    return _item_values(chunk, column) == value


def _item_values(chunk, column: str) -> np.ndarray:
    """The column's values as items: exact floats for numbers (NaN: none), text otherwise."""
    if chunk.schema.kinds[column] == CATEGORICAL:
        return chunk.strings(column)
    values = chunk.numeric(column)
    return np.where(np.isfinite(values), values, np.nan)


def _owners(encoder) -> np.ndarray:
    """The source column of every encoded feature of ``encoder``."""
    owners = list(encoder.numeric_)
    indicator = getattr(encoder, "imputer_", None)
    if indicator is not None and indicator.indicator_ is not None:
        owners += [encoder.numeric_[i] for i in indicator.indicator_.features_]
    out = np.array(owners + [""] * (len(encoder.feature_names_) - len(owners)), dtype=object)
    for column, target in zip(encoder.categorical_, encoder._targets):
        out[target[target >= 0]] = column
    return out


def _spread(rows: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of ``rows``, evenly spaced (deterministic)."""
    if len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]


def _one_per_column(items: tuple) -> tuple:
    """The first item of each column (a row holds one value per column)."""
    seen, out = set(), []
    for column, value in items:
        if column not in seen:
            seen.add(column)
            out.append((column, value))
    return tuple(out)


def _item_text(column: str, value) -> str:
    if isinstance(value, Token):
        return f"{column} has the word {quote(value.word, MAX_TEXT)}"
    return f"{column}={_value_text(value)}"


def _value_text(value) -> str:
    if isinstance(value, Token):
        return f"the word {quote(value.word, MAX_TEXT)}"
    if isinstance(value, str):
        return quote(value, MAX_TEXT)
    return f"{float(value):.10g}"


