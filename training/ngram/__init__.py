"""Word n-gram baseline: interpolated modified Kneser-Ney with a fast top-k ``predict``.

Why it exists: the neural models need an honest, cheap peer. A Kneser-Ney trigram over the
same words (:func:`model.text.words`) and the same train/validation split is the classic
one; if a GRU/LSTM cannot beat it on next-word accuracy or keystroke savings, it is not
earning its cost.

This package is the model only: :mod:`training.ngram.estimator` fits, saves and loads the
tables, :mod:`training.ngram.query` answers ``predict`` / ``doc_nll`` from them, and
``python -m training.ngram`` fits and saves one. Scoring is :mod:`training.evaluate`'s job,
so the n-gram is measured with the same definitions as every other model.
"""

from training.ngram.estimator import BOS, EOS, FORMAT_VERSION, UNK, NgramEstimator, modified_kn_discounts
from training.ngram.query import NgramModel

__all__ = ["BOS", "EOS", "FORMAT_VERSION", "UNK", "NgramEstimator", "NgramModel", "modified_kn_discounts"]
