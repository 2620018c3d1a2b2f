"""Built-in scorers on 200-word outputs, one core: items per second through ``score`` in
batches of 1,000, beside a baseline measured in the same run: a ``len(text.split())`` loop
for the cheap scorers (their target is an absolute 20,000 items/s), the wrapped library's
own call for the library-bound ones (their figure says what our layer costs)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from feedbackloop.capture.sample import generate_interactions
from feedbackloop.scoring import ScoreItem, get_scorer

from .report import Result

GROUP = "scoring"
WORDS = 200
BATCH = 1_000
CHEAP_TARGET = 20_000.0
CHEAP_N = 20_000
SLOW_N = 1_000
# Cheap scorers and their options: the ≥ 20,000 items/s per core target applies to them.
CHEAP: list[tuple[str, dict[str, Any]]] = [
    ("length_chars", {}), ("length_words", {}), ("length_tokens", {}), ("profanity", {}),
    ("refusal", {}), ("pii_leakage", {}), ("regex_match", {"pattern": r"\border\s+\d+"}),
    ("json_valid", {}), ("json_schema", {"schema": {"type": "object"}}),
    ("exact_match", {"normalize": True}),
]


def outputs(n: int, seed: int = 0) -> list[ScoreItem]:
    """``n`` distinct outputs of 200 words, cut from the sample support-assistant answers
    (so caches inside libraries never see the same text twice); the reference is another
    such text."""
    words = " ".join(r["output"] for r in generate_interactions(2_000, seed=seed)).split()
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        start = rng.randrange(len(words) - WORDS)
        text = " ".join(words[start:start + WORDS])
        ref_start = rng.randrange(len(words) - WORDS)
        items.append(ScoreItem(input="q", output=text,
                               reference=" ".join(words[ref_start:ref_start + WORDS])))
    return items


def _rate(call: Callable[[Sequence[ScoreItem]], Any], items: list[ScoreItem]) -> float:
    """Items per second of ``call`` over ``items`` in batches (one warm-up batch first)."""
    call(items[:10])
    t0 = time.perf_counter()
    for i in range(0, len(items), BATCH):
        call(items[i:i + BATCH])
    return len(items) / (time.perf_counter() - t0)


def _split_loop(batch: Sequence[ScoreItem]) -> list[int]:
    return [len(item.output.split()) for item in batch]


def _library_baselines() -> dict[str, tuple[str, Callable[[Sequence[ScoreItem]], Any], int]]:
    """The raw library call each library-bound scorer wraps, and how many items to time."""
    import sacrebleu
    import textstat
    from better_profanity import Profanity
    from rouge_score import rouge_scorer
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    rouge = rouge_scorer.RougeScorer(["rougeL"])
    profane = Profanity()
    return {
        "sentiment": ("VADER polarity_scores",
                      lambda b: [vader.polarity_scores(i.output) for i in b], SLOW_N),
        "rouge_l": ("rouge-score RougeScorer.score",
                    lambda b: [rouge.score(i.reference, i.output) for i in b], SLOW_N),
        "bleu": ("sacrebleu.sentence_bleu",
                 lambda b: [sacrebleu.sentence_bleu(i.output, [i.reference]) for i in b],
                 SLOW_N),
        "chrf": ("sacrebleu.sentence_chrf",
                 lambda b: [sacrebleu.sentence_chrf(i.output, [i.reference]) for i in b],
                 SLOW_N),
        # textstat's own Flesch would download the CMU dictionary; its word and sentence
        # counts (what our Readability calls before the syllables) are the offline part.
        "readability": ("textstat lexicon_count + sentence_count",
                        lambda b: [(textstat.lexicon_count(i.output),
                                    textstat.sentence_count(i.output)) for i in b], SLOW_N),
        "profanity": ("better_profanity contains_profanity",
                      lambda b: [profane.contains_profanity(i.output) for i in b], 30),
    }


def run(kinds: list[str]) -> list[Result]:
    print(f"scoring: {CHEAP_N:,} outputs of {WORDS} words")
    items = outputs(CHEAP_N)
    results: list[Result] = []
    split_rate = _rate(_split_loop, items)
    results.append(Result(GROUP, "baseline: len(text.split()) loop", "-", split_rate,
                          split_rate, "items/s", note="the baseline of the cheap scorers",
                          extra={"order": 0}))
    print(results[-1].line())
    libraries = _library_baselines()
    for order, (name, options) in enumerate(CHEAP, start=1):
        ours = _rate(get_scorer(name, **options).score, items)
        results.append(Result(GROUP, f"{name} (cheap)", "-", ours, split_rate, "items/s",
                              target="≥ 20,000/s", passed=ours >= CHEAP_TARGET,
                              extra={"order": order}))
        print(results[-1].line())
        if name in libraries:
            label, call, n = libraries[name]
            base = _rate(call, items[:n])
            results.append(Result(GROUP, f"{name} vs {label}", "-", ours, base, "items/s",
                                  extra={"order": order}))
            print(results[-1].line())
    for order, name in enumerate(("readability", "sentiment", "rouge_l", "bleu", "chrf"),
                                 start=len(CHEAP) + 1):
        label, call, n = libraries[name]
        ours = _rate(get_scorer(name).score, items[:n])
        base = _rate(call, items[:n])
        results.append(Result(GROUP, f"{name} vs {label}", "-", ours, base, "items/s",
                              note="library-bound: no absolute target",
                              extra={"order": order}))
        print(results[-1].line())
    return results
