"""Built-in scorers that compare the output with the reference (ideal) output.

Every one needs ``reference``; an item without one gets ``ScoreError("no reference")``
rather than a score of zero, so missing references never drag an average down.
The metric objects are built in the constructor (cheap) and reused for every item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigurationError
from ._options import NO_REFERENCE, scorer_version, want_bool, want_choice
from .base import ScoreItem, ScorerInfo

__all__ = ["BLEU", "ChrF", "ExactMatch", "RougeL"]


def _against_reference(items: Sequence[ScoreItem],
                       compare: Callable[[str, str], Any]) -> list[Any]:
    """``compare(output, reference)`` per item; an item without a reference is an error."""
    return [NO_REFERENCE if item.reference is None else compare(item.output, item.reference)
            for item in items]


_NEEDS = frozenset({"output", "reference"})


def _normalise(text: str) -> str:
    """Case-folded, whitespace runs collapsed to one space, ends stripped."""
    return " ".join(text.casefold().split())


class ExactMatch:
    """True when the output equals the reference; with ``normalize=True``, after case
    folding and collapsing whitespace (``"Paris\\n"`` matches ``"paris"``)."""

    def __init__(self, *, normalize: bool = False) -> None:
        self._normalize = want_bool(normalize, "normalize")
        options = {"normalize": normalize}
        self.info = ScorerInfo(
            name="exact_match", version=scorer_version("1", options), output_type="binary",
            needs=_NEEDS, options=options,
            description="The output equals the reference"
                        + (" (ignoring case and whitespace)." if normalize else "."))

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        if self._normalize:
            return _against_reference(items, lambda o, r: _normalise(o) == _normalise(r))
        return _against_reference(items, lambda o, r: o == r)


class RougeL:
    """ROUGE-L F-measure of the output against the reference, in [0, 1] (Lin 2004), as
    computed by Google's ``rouge-score``: longest common subsequence of tokens, where its
    tokenizer lowercases and keeps only runs of ``[a-z0-9]`` (text in other scripts has
    no tokens and scores 0). ``use_stemmer`` applies the Porter stemmer."""

    def __init__(self, *, use_stemmer: bool = False) -> None:
        from rouge_score import rouge_scorer

        want_bool(use_stemmer, "use_stemmer")
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
        options = {"use_stemmer": use_stemmer}
        self.info = ScorerInfo(
            name="rouge_l", version=scorer_version("1", options, libraries=("rouge-score",)),
            output_type="numeric", needs=_NEEDS, scale_min=0, scale_max=1, options=options,
            description="ROUGE-L F-measure of the output against the reference (0 to 1).")

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        score = self._scorer.score
        # rouge-score's argument order is (target, prediction).
        return _against_reference(items, lambda o, r: float(score(r, o)["rougeL"].fmeasure))


class BLEU:
    """Sentence BLEU of the output against the reference, 0 to 100 (Papineni et al. 2002),
    as ``sacrebleu.sentence_bleu`` computes it: exponential smoothing, effective n-gram
    order, tokenizer ``tokenize`` (default ``13a``, the WMT standard), ``lowercase``
    optional. Sentence BLEU is noisy on short texts; compare averages, not single items.
    sacrebleu's floating point can give 100.00000000000004 for identical texts; results are
    clamped to [0, 100]."""

    def __init__(self, *, tokenize: str = "13a", lowercase: bool = False) -> None:
        from sacrebleu.metrics import BLEU as SacreBLEU

        want_choice(tokenize, "tokenize", tuple(SacreBLEU.TOKENIZERS))
        want_bool(lowercase, "lowercase")
        try:
            # The settings of sacrebleu.sentence_bleu, built once instead of once per call.
            self._metric = SacreBLEU(tokenize=tokenize, lowercase=lowercase,
                                     effective_order=True)
        except (ImportError, RuntimeError) as exc:  # ja-mecab and ko-mecab need extra packages
            raise ConfigurationError(f"sacrebleu tokenizer {tokenize!r} is not usable here: "
                                     f"{exc}", option="tokenize") from None
        options = {"tokenize": tokenize, "lowercase": lowercase}
        self.info = ScorerInfo(
            name="bleu", version=scorer_version("1", options, libraries=("sacrebleu",)),
            output_type="numeric", needs=_NEEDS, scale_min=0, scale_max=100, options=options,
            description="Sentence BLEU (sacrebleu) of the output against the reference, "
                        "0 to 100.")

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        sentence_score = self._metric.sentence_score
        return _against_reference(
            items, lambda o, r: min(100.0, max(0.0, float(sentence_score(o, [r]).score))))


class ChrF:
    """Sentence chrF of the output against the reference, 0 to 100 (Popović 2015), as
    ``sacrebleu.sentence_chrf`` computes it: character n-grams up to 6, beta 2.
    ``word_order=2`` gives chrF++ (Popović 2017). Works for any script."""

    def __init__(self, *, word_order: int = 0, lowercase: bool = False) -> None:
        from sacrebleu.metrics import CHRF

        want_choice(word_order, "word_order", (0, 1, 2))
        want_bool(lowercase, "lowercase")
        self._metric = CHRF(word_order=word_order, lowercase=lowercase)
        options = {"word_order": word_order, "lowercase": lowercase}
        self.info = ScorerInfo(
            name="chrf", version=scorer_version("1", options, libraries=("sacrebleu",)),
            output_type="numeric", needs=_NEEDS, scale_min=0, scale_max=100, options=options,
            description="Sentence chrF (sacrebleu) of the output against the reference, "
                        "0 to 100" + (" (chrF++)." if word_order == 2 else "."))

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        sentence_score = self._metric.sentence_score
        return _against_reference(items, lambda o, r: float(sentence_score(o, [r]).score))
