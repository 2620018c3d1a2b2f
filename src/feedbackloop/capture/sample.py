"""Realistic sample data for a customer-support assistant: interactions and the feedback
people and tools gave on them, as wire-format records (see :mod:`.schema`).

Used by the demo, the benchmarks and tests of later stages, so it is built to have the
structure those stages look for: answer quality that depends on the model version, the
topic and the cohort (so evaluation and fairness slices find something), a minority of texts
with PII (so the redactor has work), an experiment with arms and propensities, replayed
questions answered by the other model version (so pairwise preferences have two outputs
for the same input), and annotators who sometimes disagree.

Everything is derived from the ``seed`` through one :class:`random.Random` per call; there
is no global state and nothing is downloaded. The stream of ``generate_interactions(n)``
is a prefix of the stream for any larger ``n`` with the same seed and start.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from .schema import SignalIn

__all__ = [
    "DEFAULT_START",
    "SAMPLE_SIGNALS",
    "TOPICS",
    "card_number",
    "generate_feedback",
    "generate_interactions",
]

DEFAULT_START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
"""Fixed default start so that the same seed always gives the same records (a moving
"now" would turn a second import into conflicts instead of duplicates)."""

ISSUE_LABELS = ["incorrect", "incomplete", "unhelpful", "off_topic", "tone", "too_long",
                "outdated_policy", "other"]

SAMPLE_SIGNALS: tuple[SignalIn, ...] = (
    SignalIn(name="thumbs", type="binary",
             description="End user's thumbs up (true) or down (false) on an answer."),
    SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5,
             description="End user's star rating of an answer, 1 (useless) to 5 (solved it)."),
    SignalIn(name="helpfulness", type="ordinal", scale_min=1, scale_max=5,
             description="Annotator's helpfulness grade under the support guideline, 1-5."),
    SignalIn(name="issue", type="categorical", labels=ISSUE_LABELS,
             description="What was wrong with an answer, chosen by the end user."),
    SignalIn(name="preference", type="pairwise",
             description="Annotator's choice between two answers to the same question: "
                         "'a', 'b' or 'tie'."),
    SignalIn(name="groundedness", type="numeric", scale_min=0, scale_max=1,
             description="Automated check: share of the answer supported by the help "
                         "centre articles it cites."),
)

TOPICS: dict[str, dict[str, Any]] = {
    "billing": {
        "questions": [
            "Why was I charged {amount} twice this month on my {plan} plan?",
            "How do I update the card on file before my next invoice?",
            "I was billed {amount} after cancelling, can I get a refund?",
            "Where can I download the invoice for order {order}?",
            "Can I switch from monthly to yearly billing and keep my {plan} discount?",
            "My payment failed with the message 'card declined', what should I do?",
        ],
        "good": [
            "A duplicate charge usually means one authorisation is still pending; pending "
            "holds drop off within three to five business days without any action.",
            "You can replace the card on file under Settings, then Billing, then Payment "
            "methods; the new card is used for the next invoice automatically.",
            "Refunds for charges made after a cancellation are issued to the original payment "
            "method and normally appear on your statement within five to ten business days.",
            "Every invoice can be downloaded as a PDF from the Billing history page; select "
            "the order and choose Download invoice.",
            "Switching to yearly billing keeps your current discount and we credit the unused "
            "part of this month against the first yearly invoice.",
            "A declined card is most often an expired card or a bank fraud check, so please "
            "confirm the expiry date and ask your bank to allow the payment.",
            "I have checked the account history and can see the second charge, so I have "
            "opened a billing case and you will receive an email once it is reversed.",
        ],
        "wrong": [
            "Duplicate charges cannot be refunded once the invoice has been issued.",
            "You need to contact your bank to change the card, we cannot update it here.",
            "Yearly billing is only available to new customers.",
        ],
    },
    "shipping": {
        "questions": [
            "Where is my order {order}? It was supposed to arrive {days} days ago.",
            "Do you ship to {country} and how long does it take?",
            "The tracking for {order} has not updated since {weekday}, is it lost?",
            "Can I change the delivery address for order {order}?",
            "How much is express shipping for a {product}?",
            "My parcel says delivered but I never received it.",
        ],
        "good": [
            "Orders ship within one business day and the tracking link in your confirmation "
            "email shows each scan from the warehouse to your door.",
            "Tracking can pause for up to three days while a parcel crosses a border or "
            "changes carrier; after five days without a scan we open an investigation.",
            "We ship to {country} with standard delivery in five to eight business days and "
            "express delivery in two to three business days.",
            "The delivery address can be changed until the order is packed, from the order "
            "page under Edit shipping details.",
            "If a parcel shows as delivered but did not arrive, check with neighbours and the "
            "building reception, then report it so we can send a replacement.",
            "Express shipping for a {product} costs a flat fee shown at checkout and is free "
            "on orders above the threshold for your region.",
            "I have asked the carrier for a trace on {order} and will update you within two "
            "business days, and if it is lost we will reship it at no cost.",
        ],
        "wrong": [
            "We do not ship to {country} at the moment.",
            "Once an order has been placed the address can never be changed.",
            "Parcels marked as delivered are the responsibility of the customer.",
        ],
    },
    "account": {
        "questions": [
            "I can't log in, the password reset email never arrives.",
            "How do I turn on two-factor authentication?",
            "How can I delete my account and all my data?",
            "Can I add a second user to my {plan} workspace?",
            "Why was my account locked after I changed my password?",
            "How do I change the email address on my account?",
        ],
        "good": [
            "Reset emails can take a few minutes and are sometimes filtered as spam, so "
            "please check the spam folder and add our address to your contacts.",
            "Two-factor authentication is under Settings, then Security; scan the code with "
            "an authenticator app and store the backup codes somewhere safe.",
            "You can delete your account from Settings, then Privacy; all personal data is "
            "erased within thirty days, as described in our privacy notice.",
            "The {plan} plan includes additional seats, and an owner can invite a user from "
            "the Members page with their work email address.",
            "Accounts are locked for fifteen minutes after several failed sign-ins as a "
            "safety measure, and the lock lifts by itself.",
            "To change your email address, open Profile, enter the new address and confirm "
            "it from the verification link we send to it.",
        ],
        "wrong": [
            "Deleted accounts can be restored at any time within a year.",
            "Two-factor authentication is only available on the enterprise plan.",
            "You will need to create a new account to change your email address.",
        ],
    },
    "returns": {
        "questions": [
            "How do I return a {product} I bought {days} days ago?",
            "The {product} arrived damaged, can I get a replacement?",
            "When will I get my refund for the return of order {order}?",
            "Do I have to pay for return shipping?",
            "Can I exchange the {product} for a different size?",
        ],
        "good": [
            "Items can be returned within thirty days of delivery; start a return from the "
            "order page and print the prepaid label we email you.",
            "For a damaged item please send a photo from the order page and we will ship a "
            "replacement straight away, without waiting for the return.",
            "Refunds are issued as soon as the warehouse scans the returned parcel, which is "
            "usually three to five business days after you drop it off.",
            "Return shipping is free for damaged or wrong items; for other returns a small "
            "fee is deducted from the refund.",
            "Exchanges for a different size are free, and the new size is reserved for you "
            "as soon as you start the exchange.",
        ],
        "wrong": [
            "Returns are only accepted within seven days of purchase.",
            "Refunds are issued as store credit only.",
            "Damaged items have to be returned before we can send a replacement.",
        ],
    },
    "product": {
        "questions": [
            "Is the {product} compatible with {device}?",
            "What is the battery life of the {product}?",
            "How do I reset the {product} to factory settings?",
            "Does the {product} come with a warranty?",
            "What's the difference between the {product} and the Pro version?",
            "The {product} won't turn on after the last update.",
        ],
        "good": [
            "The {product} works with {device} over Bluetooth 5 and needs the companion app "
            "version 4.2 or later.",
            "Battery life is about eighteen hours of typical use, and a fifteen-minute charge "
            "gives roughly three hours.",
            "To reset the {product}, hold the power and volume buttons together for ten "
            "seconds until the light blinks white, then set it up again in the app.",
            "Every {product} comes with a two-year limited warranty that covers defects in "
            "materials and workmanship.",
            "The Pro version adds active noise cancelling, a larger battery and wireless "
            "charging; both share the same app and accessories.",
            "If the {product} does not turn on after an update, charge it for thirty minutes "
            "and then hold the power button for twenty seconds to restart it.",
        ],
        "wrong": [
            "The {product} is not compatible with any {device} models.",
            "The warranty is void once the product has been updated.",
            "A factory reset can only be done at a service centre.",
        ],
    },
    "technical": {
        "questions": [
            "The app crashes when I open the settings page on {device}.",
            "Sync between my phone and laptop stopped working yesterday.",
            "How do I export my data to CSV?",
            "I get error code E{code} when uploading a file.",
            "Notifications stopped working after the update.",
        ],
        "good": [
            "A crash on the settings page was fixed in version 6.3, so please update the app "
            "from the store and restart {device}.",
            "Sync stops when one device is signed in to another workspace; sign out on both "
            "devices, sign in again and sync resumes within a minute.",
            "You can export everything as CSV from Settings, then Data, then Export; large "
            "exports are emailed as a download link.",
            "Error code E{code} means the file is larger than the upload limit of your plan; "
            "compress it or split it into smaller parts.",
            "After an update the system may reset notification permissions, so please allow "
            "notifications again in the phone's settings for our app.",
        ],
        "wrong": [
            "Error code E{code} means your account has been suspended.",
            "Data export is not supported.",
            "Please reinstall your operating system to fix sync problems.",
        ],
    },
}

_TOPIC_WEIGHTS = {"billing": 0.22, "shipping": 0.24, "account": 0.14, "returns": 0.16,
                  "product": 0.14, "technical": 0.10}
_OPENERS = [
    "Thanks for reaching out, I'm happy to help with that.",
    "Thank you for your message.",
    "I understand how frustrating this is, and I'm sorry for the trouble.",
    "Good question, here is what you need to know.",
    "Hi, thanks for contacting support.",
]
_CLOSERS = [
    "Is there anything else I can help you with today?",
    "Let me know if this solves it.",
    "If the problem continues, reply here and a member of the team will take over.",
    "You can also find this in our help centre under the same topic.",
]
_VAGUE = [
    "This can depend on a number of factors related to your account and your region.",
    "Our team is always working to improve the experience for every customer.",
    "In many cases the issue resolves itself after some time has passed.",
    "You may want to check the relevant section of the website for more details.",
    "Policies can change from time to time, so the details may differ in your case.",
    "Please make sure that all the information you entered is correct and complete.",
    "Some customers have reported similar situations in the past.",
    "We appreciate your patience while these matters are being looked into.",
]
_FILLERS = {
    "amount": ["$12.99", "$49.00", "€19.99", "£7.50", "$129.00", "€240.00"],
    "plan": ["Starter", "Plus", "Team", "Business"],
    "country": ["Canada", "Germany", "Japan", "Brazil", "Australia", "Norway", "Mexico"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend"],
    "product": ["Aurora headphones", "Nimbus speaker", "Pulse watch", "Orbit earbuds",
                "Lumen lamp", "Vector keyboard"],
    "device": ["an iPhone 15", "a Pixel 8", "a Galaxy S24", "a MacBook Air", "Windows 11",
               "an iPad"],
}
_LOCALES = [("en-US", 0.42), ("en-GB", 0.14), ("de-DE", 0.12), ("fr-FR", 0.10),
            ("es-ES", 0.09), ("ja-JP", 0.07), ("pt-BR", 0.06)]
# Quality offsets by cohort: the assistant is a little worse outside English, so fairness
# and cohort slices have a real effect to find.
_LOCALE_QUALITY = {"en-US": 0.04, "en-GB": 0.03, "de-DE": -0.04, "fr-FR": -0.03,
                   "es-ES": -0.05, "ja-JP": -0.10, "pt-BR": -0.06}
_PLATFORMS = [("web", 0.5), ("ios", 0.28), ("android", 0.22)]
_SEGMENTS = [("free", 0.6), ("pro", 0.3), ("enterprise", 0.1)]
_TOPIC_QUALITY = {"billing": -0.03, "shipping": 0.02, "account": 0.03, "returns": 0.04,
                  "product": 0.0, "technical": -0.08}
_ERRORS = [
    "upstream model timeout after 30000 ms",
    "rate limited by model provider (429)",
    "content filter blocked the response",
]
_FIRST = ["jane", "omar", "li", "maria", "sven", "aiko", "lucas", "fatima", "noah", "priya"]
_LAST = ["doe", "haddad", "wei", "garcia", "larsen", "sato", "silva", "khan", "smith", "rao"]
_DOMAINS = ["example.com", "mail.example.org", "example.net"]
_COMMENTS_BAD = [
    "This didn't answer my question at all.",
    "The steps you describe do not exist in the app.",
    "Too generic, I need to know what happened to my order.",
    "Wrong, the policy on your website says something else.",
    "I asked about {topic} and got a lecture about something else.",
    "Still broken after doing all of this.",
]
_COMMENTS_GOOD = [
    "Perfect, that fixed it, thanks!",
    "Clear and quick answer.",
    "Helpful, although a bit long.",
    "Exactly what I needed.",
]
_CUSTOMERS = 20_000
EXPERIMENT = "answer-style-2025-01"
"""The sample's experiment: a share of traffic is randomised between the two versions."""


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


def card_number(rng: random.Random, prefix: str = "4") -> str:
    """A 16-digit card number with a valid Luhn check digit, grouped in fours."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    digits = body + str((10 - total % 10) % 10)
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def _pii(rng: random.Random) -> tuple[str, str]:
    """(kind, value) of one piece of PII a customer might paste into a chat."""
    kind = rng.choice(("email", "email", "phone", "card"))
    if kind == "email":
        return kind, (f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(10, 99)}"
                      f"@{rng.choice(_DOMAINS)}")
    if kind == "phone":
        style = rng.randrange(3)
        if style == 0:
            return kind, f"+1 415 555 {rng.randrange(1000, 9999)}"
        if style == 1:
            return kind, f"({rng.randrange(200, 989)}) 555-{rng.randrange(1000, 9999)}"
        return kind, f"+44 20 7946 {rng.randrange(1000, 9999):04d}"
    return kind, card_number(rng, rng.choice(("4", "51", "55")))


_PII_INPUT = {
    "email": ["You can reach me at {v} if that's easier.", "My account email is {v}."],
    "phone": ["Please call me back on {v}.", "My phone number is {v}."],
    "card": ["The card I used is {v}.", "It was charged to card {v}, expiry 08/27."],
}


def _fill(rng: random.Random, template: str, slots: dict[str, str]) -> str:
    if "{" not in template:
        return template
    return template.format(**slots)


def _slots(rng: random.Random) -> dict[str, str]:
    s = {k: rng.choice(v) for k, v in _FILLERS.items()}
    s["order"] = f"FL-{rng.randrange(10_000_000, 99_999_999)}"
    s["days"] = str(rng.randrange(2, 25))
    s["code"] = str(rng.randrange(100, 999))
    return s


def _answer(rng: random.Random, topic: dict[str, Any], quality: float,
            slots: dict[str, str], target_words: int) -> str:
    """An answer of about ``target_words`` words whose sentences are mostly right when
    ``quality`` is high and mostly vague or wrong when it is low."""
    parts = [rng.choice(_OPENERS)] if rng.random() < 0.8 else []
    words = sum(len(p.split()) for p in parts)
    # Each pool is drawn without replacement, so no sentence repeats within an answer.
    good = rng.sample(topic["good"], len(topic["good"]))
    wrong = rng.sample(topic["wrong"], len(topic["wrong"]))
    vague = rng.sample(_VAGUE, len(_VAGUE))
    while words < target_words and (good or wrong or vague):
        r = rng.random()
        if r < quality and good:
            pool = good
        elif r < quality + (1 - quality) * 0.35 and wrong:
            pool = wrong
        else:
            pool = vague or good or wrong
        sentence = _fill(rng, pool.pop(), slots)
        parts.append(sentence)
        words += len(sentence.split())
    if rng.random() < 0.7:
        parts.append(rng.choice(_CLOSERS))
    return " ".join(parts)


def generate_interactions(n: int, *, seed: int, start: datetime | None = None,
                          model_versions: tuple[str, ...] = ("assistant-v1", "assistant-v2"),
                          ) -> Iterator[dict[str, Any]]:
    """``n`` interaction records of a support assistant, oldest first.

    Later versions in ``model_versions`` answer better on average and take over traffic
    over time; about 3 % of questions carry PII, about 1.5 % of calls fail, a quarter of
    the traffic is in an experiment between the first and the last version, and about 4 %
    are replays: the previous question answered again by another version (``metadata``
    ``replay_of``), for side-by-side comparison. ``metadata.sample_quality`` is the hidden
    true quality in [0, 1] that the feedback is drawn from.
    """
    if n < 0:
        raise ValueError("n must be at least 0")
    if not model_versions:
        raise ValueError("give at least one model version")
    rng = random.Random(seed)
    ts = start or DEFAULT_START
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    # A fixed customer base from its own stream, so that the records do not depend on n.
    user_rng = random.Random(seed ^ 0xC057)
    users = [f"cust_{user_rng.getrandbits(48):012x}" for _ in range(_CUSTOMERS)]
    topic_names = list(_TOPIC_WEIGHTS)
    topic_weights = list(_TOPIC_WEIGHTS.values())
    last_version = len(model_versions) - 1
    session = ""
    session_user = ""
    previous: dict[str, Any] | None = None
    for i in range(n):
        ts += timedelta(milliseconds=int(rng.expovariate(1 / 20_000)) + 1)
        cid = f"s{seed}-i{i:07d}"
        if previous is not None and len(model_versions) > 1 and rng.random() < 0.04:
            yield _replay(rng, previous, cid, ts, model_versions)
            previous = None
            continue
        if rng.random() < 0.35 or not session:
            session_user = rng.choice(users)
            session = f"sess_{rng.getrandbits(64):016x}"
        topic_name = rng.choices(topic_names, topic_weights)[0]
        topic = TOPICS[topic_name]
        slots = _slots(rng)
        qi = rng.randrange(len(topic["questions"]))
        question = _fill(rng, topic["questions"][qi], slots)
        locale = _pick(rng, _LOCALES)
        attrs = {"locale": locale, "platform": _pick(rng, _PLATFORMS),
                 "segment": _pick(rng, _SEGMENTS), "topic": topic_name}
        record: dict[str, Any] = {"id": cid, "timestamp": ts.isoformat()}
        if len(model_versions) > 1 and rng.random() < 0.25:
            arm = "treatment" if rng.random() < 0.5 else "control"
            version_i = last_version if arm == "treatment" else 0
            record.update(experiment=EXPERIMENT, arm=arm, propensity=0.5)
        else:
            # The newest version takes over gradually: 10 % of traffic at the start, 80 %
            # after 100k interactions.
            share_new = min(0.8, 0.1 + 0.7 * i / 100_000)
            version_i = last_version if rng.random() < share_new else \
                rng.randrange(max(1, last_version))
        version = model_versions[version_i]
        quality = _quality(rng, version_i, topic_name, locale)
        pii = None
        if rng.random() < 0.03:
            kind, value = _pii(rng)
            pii = kind
            question = f"{question} {rng.choice(_PII_INPUT[kind]).format(v=value)}"
        latency = rng.lognormvariate(6.7 + 0.15 * version_i, 0.45)
        error = None
        if rng.random() < 0.015:
            error = rng.choice(_ERRORS)
            output = ""
            latency = 30_000.0 if "timeout" in error else latency / 4
            quality = 0.0
        else:
            output = _answer(rng, topic, quality, slots, rng.randrange(45, 190))
            if pii == "email" and rng.random() < 0.3:
                output += f" I have sent a confirmation to {value}."
        record.update(
            model_version=version, input=question, output=output, attributes=attrs,
            user_id=session_user, session_id=session, latency_ms=round(latency, 1),
            consent=rng.random() < 0.62,
            metadata={"topic": topic_name, "intent": f"{topic_name}.{qi}",
                      "sample_quality": round(quality, 3)})
        if error is not None:
            record["error"] = error
        if rng.random() < 0.3:
            record["context"] = {"kb_articles": [
                f"kb-{topic_name}-{rng.randrange(1, 60):03d}" for _ in range(rng.randrange(1, 4))
            ]}
        previous = record if error is None else None
        yield record


def _quality(rng: random.Random, version_i: int, topic: str, locale: str) -> float:
    mean = 0.52 + 0.14 * version_i + _TOPIC_QUALITY[topic] + _LOCALE_QUALITY[locale]
    return min(1.0, max(0.0, rng.gauss(mean, 0.2)))


def _replay(rng: random.Random, original: dict[str, Any], cid: str, ts: datetime,
            model_versions: tuple[str, ...]) -> dict[str, Any]:
    """The original question answered again by another model version, offline."""
    old_i = model_versions.index(original["model_version"])
    new_i = rng.choice([j for j in range(len(model_versions)) if j != old_i])
    topic_name = original["metadata"]["topic"]
    quality = _quality(rng, new_i, topic_name, original["attributes"]["locale"])
    slots = _slots(rng)
    output = _answer(rng, TOPICS[topic_name], quality, slots, rng.randrange(45, 190))
    return {
        "id": cid, "timestamp": ts.isoformat(), "model_version": model_versions[new_i],
        "input": original["input"], "output": output,
        "attributes": dict(original["attributes"]),
        "latency_ms": round(rng.lognormvariate(6.7 + 0.15 * new_i, 0.45), 1),
        "consent": original["consent"],
        "metadata": {"topic": topic_name, "intent": original["metadata"]["intent"],
                     "sample_quality": round(quality, 3), "replay_of": original["id"]},
    }


def _later(ts: str, rng: random.Random, mean_s: float) -> str:
    t = datetime.fromisoformat(ts) + timedelta(seconds=int(rng.expovariate(1 / mean_s)) + 1)
    return t.isoformat()


def generate_feedback(interactions: Iterable[dict[str, Any]], *,
                      seed: int) -> Iterator[dict[str, Any]]:
    """Feedback records on ``interactions`` (records from :func:`generate_interactions`),
    for the signals in :data:`SAMPLE_SIGNALS`.

    End users give thumbs (about 22 % of answers), sometimes a star rating, an issue label
    and a comment (about 3 % of comments carry PII); three annotators grade a 2 % sample for
    helpfulness, with noise, and an expert sometimes adds a correction; annotators choose
    between each replay and its original (pairwise); an automated check scores
    groundedness on answers that cite articles.
    """
    rng = random.Random(seed ^ 0x5EED_F00D)
    annotators = [f"ann-{k:02d}" for k in range(1, 9)]
    bias = {a: rng.gauss(0, 0.35) for a in annotators}
    kept: dict[str, dict[str, Any]] = {}
    for rec in interactions:
        meta = rec.get("metadata") or {}
        q = float(meta.get("sample_quality", 0.5))
        iid = rec["id"]
        ts = rec["timestamp"]
        topic = meta.get("topic", "support")
        replay_of = meta.get("replay_of")
        if replay_of is not None and replay_of in kept:
            orig = kept.pop(replay_of)
            if rng.random() < 0.8:
                yield _preference(rng, orig, rec, annotators, ts)
            continue
        kept.clear()  # a replay follows its original directly
        if rec.get("error") is None:
            kept[iid] = rec
        if rng.random() < 0.22:
            up = rng.random() < 0.12 + 0.8 * q
            item: dict[str, Any] = {
                "id": f"{iid}-thumbs", "interaction_id": iid, "signal": "thumbs",
                "value": up, "source": "end_user", "rater_id": rec.get("user_id"),
                "timestamp": _later(ts, rng, 90)}
            if rng.random() < (0.08 if up else 0.3):
                item["comment"] = _comment(rng, up, topic)
            yield item
            if not up and rng.random() < 0.5:
                label = _issue(rng, rec, q)
                yield {"id": f"{iid}-issue", "interaction_id": iid, "signal": "issue",
                       "value": label, "source": "end_user", "rater_id": rec.get("user_id"),
                       "timestamp": _later(ts, rng, 120)}
        if rng.random() < 0.06:
            stars = min(5, max(1, round(1 + 4 * q + rng.gauss(0, 0.7))))
            yield {"id": f"{iid}-rating", "interaction_id": iid, "signal": "rating",
                   "value": stars, "source": "end_user", "rater_id": rec.get("user_id"),
                   "timestamp": _later(ts, rng, 300)}
        if rng.random() < 0.02 and rec.get("error") is None:
            for ann in rng.sample(annotators, 3):
                grade = min(5, max(1, round(1 + 4 * q + bias[ann] + rng.gauss(0, 0.5))))
                yield {"id": f"{iid}-help-{ann}", "interaction_id": iid,
                       "signal": "helpfulness", "value": grade, "source": "annotator",
                       "rater_id": ann, "guideline_version": "support-v1",
                       "timestamp": _later(ts, rng, 86_400)}
            if q < 0.4 and rng.random() < 0.5:
                good = _fill(rng, " ".join(TOPICS.get(topic, TOPICS["product"])["good"][:3]),
                             _slots(rng))
                yield {"id": f"{iid}-help-expert", "interaction_id": iid,
                       "signal": "helpfulness", "value": 1 if q < 0.25 else 2,
                       "source": "expert", "rater_id": "expert-01",
                       "guideline_version": "support-v1", "correction": good,
                       "comment": "Rewritten to follow the current policy.",
                       "timestamp": _later(ts, rng, 2 * 86_400)}
        cited = rec.get("context")
        if cited and rec.get("error") is None:
            score = min(1.0, max(0.0, rng.gauss(0.25 + 0.7 * q, 0.12)))
            yield {"id": f"{iid}-grounded", "interaction_id": iid, "signal": "groundedness",
                   "value": round(score, 3), "source": "automated",
                   "rater_id": "groundedness-check@1.2", "timestamp": _later(ts, rng, 30)}


def _preference(rng: random.Random, a: dict[str, Any], b: dict[str, Any],
                annotators: list[str], ts: str) -> dict[str, Any]:
    qa = float(a["metadata"]["sample_quality"])
    qb = float(b["metadata"]["sample_quality"])
    diff = qa - qb + rng.gauss(0, 0.12)
    value = "tie" if abs(diff) < 0.05 else ("a" if diff > 0 else "b")
    return {"id": f"{b['id']}-pref", "interaction_id": a["id"], "interaction_id_b": b["id"],
            "signal": "preference", "value": value, "source": "annotator",
            "rater_id": rng.choice(annotators), "guideline_version": "support-v1",
            "timestamp": _later(ts, rng, 86_400)}


def _issue(rng: random.Random, rec: dict[str, Any], q: float) -> str:
    if rec.get("error") is not None:
        return rng.choice(("other", "unhelpful"))
    if len(rec["output"].split()) > 150 and rng.random() < 0.3:
        return "too_long"
    if q < 0.35:
        return rng.choices(("incorrect", "outdated_policy", "off_topic"), (5, 2, 1))[0]
    return rng.choices(("incomplete", "unhelpful", "tone", "other"), (4, 3, 1, 1))[0]


def _comment(rng: random.Random, up: bool, topic: str) -> str:
    text = rng.choice(_COMMENTS_GOOD if up else _COMMENTS_BAD).format(topic=topic)
    if rng.random() < 0.03:
        kind, value = _pii(rng)
        text += f" {rng.choice(_PII_INPUT[kind]).format(v=value)}"
    return text
