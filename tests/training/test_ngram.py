"""The n-gram baseline: a proper distribution, exact fast top-k, fragments, persistence, CLI.

Tiny hand-made corpora keep these fast; ``top_cache``/``big_range`` are shrunk so that the
precomputed top lists (the fast paths) are exercised, and :meth:`NgramModel.predict` is
checked against a brute-force ranking of :meth:`NgramModel.token_probs`. Scoring an n-gram
is :mod:`training.evaluate`'s job and is tested with it.
"""

from __future__ import annotations

import gzip
import math
import pickletools
from pathlib import Path

import pytest

from training.ngram import EOS, UNK, NgramEstimator, NgramModel, query
from training.ngram.__main__ import main

CORPUS = [
    "the cat sat on the mat",
    "the cat ate the fish",
    "I saw the cat and the cat saw me",
    "the cat sat on the hat",
    "The dog sat on the log",
    "a dog saw the cat",
    "the dog ate the cake, then the cat ate the cake too",
    "the mouse ran and the cat ran after the mouse",
    "Then the cat slept. The cat's day was long",
    "the Cathedral was tall and the cattle were calm",
]

CONTEXTS = ["", "the", "I saw the", "on the", "zebra quux", "the zebra", "the cat", "Then"]
FRAGMENTS = ["", "c", "ca", "C", "T", "t", "the", "m", "zz"]


def _fit(order: int = 3, min_count: int = 1, **kw: int) -> NgramModel:
    return NgramModel(**kw).fit(CORPUS, order=order, min_count=min_count)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("min_count", [1, 2])
def test_distribution_sums_to_one(order: int, min_count: int) -> None:
    model = _fit(order, min_count)
    for context in ["the", "the cat", "zebra quux", "I saw the", ""]:
        probs = model.token_probs(context)
        assert set(probs) == {*model.tokens()} - {"<s>"}
        assert all(p > 0 for p in probs.values())
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_frequent_continuation_ranks_first() -> None:
    model = _fit()
    best = model.predict("yesterday I saw the", "", 3)
    assert best[0][0] == "cat"
    assert best[0][1] > best[1][1] >= best[2][1]
    assert model.predict("the cat", "", 1)[0][0] in {"sat", "ate", "ran"}


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize(("py_rank_max", "cache_rows"), [(64, 2_000_000), (2, 2_000_000), (2, 6)])
def test_predict_matches_brute_force(
    order: int, py_rank_max: int, cache_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact top-k of the interpolated probability, also through the precomputed lists.

    ``py_rank_max=2`` makes every history with more than two rows start numpy-backed and be
    ranked with numpy, then (after a few uses) become Python tuples: both shapes are
    checked. A tiny ``cache_rows`` makes the caches shrink all the time.
    """
    monkeypatch.setattr(query, "_PY_RANK_MAX", py_rank_max)
    monkeypatch.setattr(query, "_PROMOTE_HITS", 4)
    model = _fit(order, min_count=1, top_cache=3, big_range=2)
    model.cache_rows = cache_rows
    for context in CONTEXTS:
        probs = model.token_probs(context)
        for fragment in FRAGMENTS:
            ranked = sorted(
                ((w, p) for w, p in probs.items() if w not in (UNK, EOS, fragment) and w.startswith(fragment)),
                key=lambda wp: -wp[1],
            )
            for k in (1, 2, 3, 5):
                got = model.predict(context, fragment, k)
                assert len(got) == min(k, len(ranked))
                want = [p for _, p in ranked[:k]]
                assert [p for _, p in got] == pytest.approx(want, rel=1e-5)
                for w, p in got:
                    assert probs[w] == pytest.approx(p, rel=1e-5)


def test_cache_shrink_keeps_hot_histories_and_answers() -> None:
    model = _fit()
    fresh = _fit()
    want = {(c, f): fresh.predict(c, f, 3) for c in CONTEXTS for f in FRAGMENTS}
    for _ in range(40):  # make "I saw the" hot
        assert model.predict("I saw the", "", 3) == want[("I saw the", "")]
    model._shrink_caches()
    assert model._view_cache, "hot views survive a shrink"
    assert all(v.hits >= query._PROMOTE_HITS // 2 for v in model._view_cache.values())
    model.cache_rows = 8  # now it shrinks all the time
    for _ in range(3):
        for (c, f), expected in want.items():
            assert model.predict(c, f, 3) == expected


def test_the_typed_fragment_itself_is_never_proposed() -> None:
    """After typing "the" the slots go to words that complete it, not to "the" itself."""
    model = _fit()
    assert model.predict("I saw", "", 3)[0][0] == "the", "the corpus makes 'the' the likely word here"
    got = model.predict("I saw", "the", 3)
    assert got and all(w.startswith("the") and w != "the" for w, _ in got)


def test_fragment_restriction_is_case_sensitive() -> None:
    model = _fit()
    for context in CONTEXTS:
        upper = model.predict(context, "C", 10)
        assert upper and all(w.startswith("C") for w, _ in upper)
        lower = model.predict(context, "ca", 10)
        assert lower and all(w.startswith("ca") for w, _ in lower)
        assert "cat" in {w for w, _ in lower}
        assert model.predict(context, "zz", 5) == []
        assert model.predict(context, "cat's", 5) == []  # typed in full: nothing left to complete
        assert model.predict(context, "cat'", 5) == [
            ("cat's", pytest.approx(math.exp(model.word_log_prob(context, "cat's")), rel=1e-5))
        ]
    assert model.predict("the", "", 0) == []
    assert all(w not in (UNK, EOS) for w, _ in model.predict("the cat", "", 50))


def test_context_uses_only_last_words() -> None:
    model = _fit()
    long_prefix = "blah " * 5000 + "I saw the"
    assert model.predict(long_prefix, "", 3) == model.predict("I saw the", "", 3)
    assert model.predict("... on   the", "m", 2) == model.predict("on the", "m", 2)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _fit(min_count=2)
    path = tmp_path / "ngram" / "m.pkl.gz"
    model.save(path)
    loaded = NgramModel.load(path)
    for context in CONTEXTS:
        for fragment in FRAGMENTS:
            assert loaded.predict(context, fragment, 4) == model.predict(context, fragment, 4)
        assert loaded.word_log_prob(context, "cat") == model.word_log_prob(context, "cat")
    assert loaded.doc_nll(CORPUS[2]) == model.doc_nll(CORPUS[2])


def test_doc_nll_and_unknown_words() -> None:
    model = _fit(min_count=2)  # singletons become <unk>, so <unk> has learned mass
    nll, n = model.doc_nll("the zorblax cat qwerty sat")
    assert n == 6  # five words + </s>
    assert math.isfinite(nll) and nll > 0
    lp = model.word_log_prob("the", "zorblax")
    assert math.isfinite(lp) and lp == model.word_log_prob("the", UNK)
    assert math.isfinite(model.word_log_prob("the cat", EOS))
    # doc_nll is the sum of the per-word log-probs with the same contexts
    doc = "the cat sat on the zorblax"
    ws = doc.split()
    total = -sum(model.word_log_prob(" ".join(ws[:i]), w) for i, w in enumerate(ws))
    total -= model.word_log_prob(doc, EOS)
    assert model.doc_nll(doc)[0] == pytest.approx(total, rel=1e-6)
    assert model.doc_nll("")[1] == 1


def test_saved_file_holds_no_class_paths(tmp_path: Path) -> None:
    """Only builtins and numpy in the pickle: files load whatever module the classes live in."""
    path = tmp_path / "m.pkl.gz"
    _fit().save(path)
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    strings = [arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)]  # incl. GLOBAL's module
    assert any(s.startswith("numpy") for s in strings)
    assert not [s for s in strings if s.startswith("training")]


def test_estimator_alone_fits_the_same_file(tmp_path: Path) -> None:
    """The CLI fits without the query side; the file must be the one the full model writes."""
    a, b = tmp_path / "a.pkl.gz", tmp_path / "b.pkl.gz"
    NgramEstimator().fit(CORPUS, order=3, min_count=1).save(a)
    model = _fit()
    model.save(b)
    loaded = NgramModel.load(a)
    for context in CONTEXTS:
        for fragment in FRAGMENTS:
            assert loaded.predict(context, fragment, 4) == model.predict(context, fragment, 4)
    assert loaded.discounts == model.discounts
    assert [loaded.doc_nll(d) for d in CORPUS] == [model.doc_nll(d) for d in CORPUS]


def test_cli_fits_and_saves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 3) + "\n", encoding="utf-8")
    out = tmp_path / "runs" / "tri.pkl.gz"
    assert main(["--corpus", str(corpus), "--out", str(out), "--min-count", "1", "--order", "2"]) == 0
    model = NgramModel.load(out)
    assert model.order == 2 and model.predict("I saw the", "", 1)[0][0] == "cat"
    assert model.stats["docs"] == len(CORPUS) * 3
    assert main(["--corpus", str(corpus), "--out", str(out), "--min-count", "1", "--max-docs", "4"]) == 0
    assert NgramModel.load(out).stats["docs"] == 4
    with pytest.raises(SystemExit):  # evaluation is training.evaluate's, not a flag here
        main(["--corpus", str(corpus), "--out", str(out), "--eval-docs", "3"])
    assert "unrecognized arguments: --eval-docs" in capsys.readouterr().err
