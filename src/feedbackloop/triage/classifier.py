"""The route classifier: TF-IDF over the item's words and a logistic regression, trained on
items people routed, with calibrated confidence.

Calibration (:class:`sklearn.calibration.CalibratedClassifierCV`, 3-fold; Niculescu-Mizil &
Caruana 2005): isotonic regression with at least :data:`ISOTONIC_MIN_PER_ROUTE` examples
of every route, Platt's sigmoid (Platt 1999) with at least
:data:`CALIBRATION_MIN_PER_ROUTE`, and below that the regression's own probabilities
(``calibration`` says "none (too few examples per route)"). On a simulation with known
truth (tests/triage/test_classifier.py) the isotonic confidence is within a few points of
the accuracy; the sigmoid on few examples is somewhat under-confident, which sends more
items to a person, not fewer. The confidence is the probability of the predicted route;
the triage service sends anything below the project's threshold to a human.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..stats.estimate import NotEstimable

__all__ = ["CALIBRATION_MIN_PER_ROUTE", "ISOTONIC_MIN_PER_ROUTE", "RouteClassifier",
           "item_text"]

CALIBRATION_MIN_PER_ROUTE = 6
ISOTONIC_MIN_PER_ROUTE = 50
MIN_TRAINING_ITEMS = 4


def item_text(item: dict[str, Any]) -> str:
    """What the classifier reads of an item: the signal and value as tokens, then the
    comment, the correction and the model's output."""
    value = item.get("value")
    parts = [f"signal_{item.get('signal', '')}", f"value_{str(value).lower()[:40]}",
             item.get("comment") or "", item.get("correction") or "",
             (item.get("output") or "")[:2000]]
    return " ".join(p for p in parts if p)


@dataclass
class RouteClassifier:
    """scikit-learn style: :meth:`fit` returns self; fitted attributes end in ``_``."""

    seed: int = 0
    routes_: list[str] = field(default_factory=list)
    calibration_: str = ""
    n_train_: int = 0
    _model: Any = None

    def fit(self, texts: Sequence[str], routes: Sequence[str]) -> RouteClassifier:
        """Train on ``texts`` labelled with ``routes``. NotEstimable with fewer than
        :data:`MIN_TRAINING_ITEMS` items or a single route."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        if len(texts) != len(routes):
            raise ValueError("texts and routes differ in length")
        counts = Counter(routes)
        if len(texts) < MIN_TRAINING_ITEMS or len(counts) < 2:
            raise NotEstimable(f"the classifier needs at least {MIN_TRAINING_ITEMS} routed "
                               f"items over 2 routes, has {len(texts)} over {len(counts)}")
        base = LogisticRegression(C=1.0, max_iter=1000, random_state=self.seed)
        fewest = min(counts.values())
        head: Any = base
        self.calibration_ = "none (too few examples per route)"
        if fewest >= ISOTONIC_MIN_PER_ROUTE:
            head = CalibratedClassifierCV(base, method="isotonic", cv=3)
            self.calibration_ = "isotonic, 3-fold"
        elif fewest >= CALIBRATION_MIN_PER_ROUTE:
            head = CalibratedClassifierCV(base, method="sigmoid", cv=3)
            self.calibration_ = "sigmoid (Platt), 3-fold"
        # Words, not word pairs: with the few hundred examples people route, pairs mostly
        # add noise (the simulation's accuracy drops with them).
        vectoriser = TfidfVectorizer(ngram_range=(1, 1), min_df=1, sublinear_tf=True,
                                     max_features=50_000)
        self._model = make_pipeline(vectoriser, head)
        self._model.fit(list(texts), list(routes))
        self.routes_ = [str(c) for c in self._model.classes_]
        self.n_train_ = len(texts)
        return self

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """The most probable route of each text and its probability."""
        if self._model is None:
            raise RuntimeError("fit the classifier first")
        if not texts:
            return []
        proba = np.asarray(self._model.predict_proba(list(texts)), dtype=float)
        best = proba.argmax(axis=1)
        return [(self.routes_[int(b)], float(proba[i, b])) for i, b in enumerate(best)]

    def describe(self) -> dict[str, Any]:
        return {"method": "TF-IDF (words) + logistic regression",
                "calibration": self.calibration_, "n_train": self.n_train_,
                "routes": self.routes_}
