"""Duplicate and near-duplicate removal for dataset rows.

A row is a tuple of fields (a preference row: prompt, chosen, rejected). Two passes:

1. **Exact after normalisation.** Each field is case-folded, punctuation becomes a space
   and runs of white space collapse, so ``"Hello,  World!"`` and ``"hello world"`` are the
   same. Rows whose normalised fields are all equal are duplicates; the first is kept.
2. **Near duplicates** by MinHash over word shingles (k consecutive words of a field) with
   locality-sensitive hashing (Broder 1997; Leskovec, Rajaraman & Ullman, *Mining of
   Massive Datasets*, ch. 3). The Jaccard similarity of two rows is estimated by the share
   of equal signature slots; rows sharing one LSH band become candidates, and a candidate
   pair is a near duplicate when its estimated similarity reaches the threshold. Near
   duplicates form groups (connected components), of which the first row is kept.

Shingles are tagged with their field, so ``(p, A, B)`` and ``(p, B, A)`` -- opposite
preferences -- are never duplicates of each other. The signature of a row is the slot-wise
minimum of its fields' signatures, each field's rotated by its own number of slots (so each
field is hashed by other functions: MinHash of the union of tagged shingles), and a text
shared by many rows (a prompt, an output in several pairs) is hashed once.

Everything runs in numpy: words are hashed once per distinct word (BLAKE2b, stable across
processes), shingles by multiply-add on 64-bit words folded to 32 bits, and each signature
slot is an affine map modulo 2^32 with an odd multiplier (a bijection) of the shingle hash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

__all__ = ["DedupeResult", "dedupe_rows", "lsh_bands", "normalise"]

_PUNCT = re.compile(r"[^\w\s]+|_+")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_SHINGLE_MULT = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F),
                 np.uint64(0x165667B19E3779F9), np.uint64(0x27D4EB2F165667C5),
                 np.uint64(0x94D049BB133111EB), np.uint64(0xBF58476D1CE4E5B9))


# The same mapping for ASCII text as a translation table (three times faster than the regex)
_ASCII = str.maketrans({chr(c): " " for c in range(128)
                        if not (chr(c).isalnum() or chr(c).isspace())})


def _words(text: str) -> list[str]:
    folded = text.casefold()
    if folded.isascii():
        return folded.translate(_ASCII).split()
    return _PUNCT.sub(" ", folded).split()


def normalise(text: str) -> str:
    """Case-folded, punctuation as space, white space collapsed."""
    return " ".join(_words(text))


@dataclass(frozen=True)
class DedupeResult:
    """``keep[i]`` says whether row i stays; ``reason[i]`` is ``""``, ``"duplicate"`` or
    ``"near_duplicate"``; ``duplicate_of[i]`` the index of the kept row it repeats (-1)."""

    keep: np.ndarray
    reason: list[str]
    duplicate_of: np.ndarray

    @property
    def n_duplicate(self) -> int:
        return sum(r == "duplicate" for r in self.reason)

    @property
    def n_near_duplicate(self) -> int:
        return sum(r == "near_duplicate" for r in self.reason)


def lsh_bands(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows per band) with ``bands * rows <= num_perm`` whose S-curve midpoint
    ``(1/b)^(1/r)`` lies just below ``threshold``: LSH then finds most pairs at the
    threshold (recall), and the exact signature comparison removes the false candidates."""
    best: tuple[float, int, int] | None = None
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if b < 1:
            break
        mid = (1 / b) ** (1 / r)
        # aim 0.1 below the threshold: at the threshold a pair is found with probability
        # 1 - (1 - t^r)^b, above 0.97 for the defaults
        score = abs(mid - (threshold - 0.1))
        if best is None or score < best[0]:
            best = (score, b, r)
    assert best is not None
    return best[1], best[2]


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8", "surrogatepass"),
                                          digest_size=8, person=b"fl-words").digest(),
                          "little")


class _Signer:
    """MinHash signatures of normalised texts (``tag`` salts the shingles)."""

    def __init__(self, num_perm: int, shingle_size: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 2**31, size=num_perm, dtype=np.uint32) * np.uint32(2) \
            + np.uint32(1)  # odd multipliers
        self.b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint32)
        self.k = shingle_size
        self.num_perm = num_perm
        self.words: dict[str, int] = {}

    def sign(self, texts: Sequence[str], tag: int = 0,
             words_of: dict[str, list[str]] | None = None) -> np.ndarray:
        """(len(texts), num_perm) uint32 signatures; an empty text gets all-max slots.
        ``words_of`` may hold the words of (some) texts, split already."""
        n = len(texts)
        sig = np.full((n, self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        if n == 0:
            return sig
        known = words_of or {}
        split = [known.get(t) or t.split() for t in texts]
        lengths = np.fromiter(map(len, split), dtype=np.int64, count=n)
        total = int(lengths.sum())
        if total == 0:
            return sig
        words = self.words
        for w in set(chain.from_iterable(split)):
            if w not in words:
                words[w] = _word_hash(w)
        tok = np.fromiter(map(words.__getitem__, chain.from_iterable(split)),
                          dtype=np.uint64, count=total)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        text_of = np.repeat(np.arange(n), lengths)
        pos = np.arange(total) - starts[text_of]  # position of each token in its text
        remaining = lengths[text_of] - pos  # tokens from here to the end of the text
        k = self.k
        # shingle = sum of (token * multiplier) over the k words from here (wrapping)
        with np.errstate(over="ignore"):
            sh = tok * _SHINGLE_MULT[0]
            for o in range(1, k):
                nxt = np.zeros(total, dtype=np.uint64)
                nxt[:-o] = tok[o:]
                nxt[remaining <= o] = 0  # past the end of this text
                sh = sh + nxt * _SHINGLE_MULT[o % len(_SHINGLE_MULT)]
            if tag:
                sh ^= np.uint64(tag) * np.uint64(0xD6E8FEB86659FD93)
        # a shingle starts wherever k words remain, and at the start of a shorter text
        valid = (remaining >= k) | ((pos == 0) & (lengths[text_of] < k))
        sh = sh[valid]
        owner = text_of[valid]
        has = lengths > 0
        first = np.searchsorted(owner, np.nonzero(has)[0])
        rows = np.nonzero(has)[0]
        # Fold to 32 bits, then one affine map mod 2^32 per slot (odd multipliers, so each
        # is a bijection); the minimum over each text's shingles is its slot value.
        x = (sh ^ (sh >> np.uint64(32))).astype(np.uint32)
        out = np.empty((self.num_perm, rows.size), dtype=np.uint32)
        with np.errstate(over="ignore"):
            for p in range(self.num_perm):
                h = x * self.a[p]
                h += self.b[p]
                out[p] = np.minimum.reduceat(h, first)
        sig[rows] = out.T
        return sig


def _components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Label of each node's connected component: its smallest member."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if left.size == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(left.size, dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n))
    return smallest[labels]


def dedupe_rows(rows: Sequence[Sequence[str]], *, exact: bool = True, near: bool = True,
                threshold: float = 0.8, shingle_size: int = 3, num_perm: int = 64,
                seed: int = 1, cache: dict[str, str] | None = None) -> DedupeResult:
    """Which rows to keep. ``rows[i]`` holds row i's field texts (the same number of fields
    in every row); earlier rows win, so pass them in a canonical order. ``cache`` (text ->
    normalised text) may be shared with the caller."""
    n = len(rows)
    keep = np.ones(n, dtype=bool)
    reason = [""] * n
    dup_of = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return DedupeResult(keep, reason, dup_of)
    n_fields = len(rows[0])
    if cache is None:
        cache = {}

    words_of: dict[str, list[str]] = {}

    def norm(t: str) -> str:
        found = cache.get(t)
        if found is None:
            words = _words(t)
            found = cache[t] = " ".join(words)
            words_of[found] = words
        return found

    hit = cache.get  # most texts recur (a prompt in every row of its pairs): look up first
    columns = [[hit(row[f]) or norm(row[f]) for row in rows] for f in range(n_fields)]
    normed = list(zip(*columns, strict=True))
    if exact:
        first: dict[tuple[str, ...], int] = {}
        for i, key in enumerate(normed):
            j = first.setdefault(key, i)
            if j != i:
                keep[i] = False
                reason[i] = "duplicate"
                dup_of[i] = j
    if not near:
        return DedupeResult(keep, reason, dup_of)
    live = np.nonzero(keep)[0]
    # Each distinct text is signed once, whatever fields it appears in. Field f reads its
    # text's signature rotated by f * shift slots: slot j of a row is then the minimum over
    # its fields of a different hash function per field, which is MinHash of the union of
    # field-tagged shingles (an output as chosen is not the same shingle as rejected).
    signer = _Signer(num_perm, shingle_size, seed)
    live_l = live.tolist()
    live_cols = [[col[i] for i in live_l] for col in columns]
    texts = list(dict.fromkeys(chain.from_iterable(live_cols)))
    where = {t: k for k, t in enumerate(texts)}
    idx = [np.fromiter(map(where.__getitem__, col), dtype=np.int64, count=live.size)
           for col in live_cols]
    text_sig = signer.sign(texts, words_of=words_of)
    shift = max(1, num_perm // n_fields)
    sig = np.full((live.size, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    for f in range(n_fields):
        rotate = (np.arange(num_perm) + f * shift) % num_perm
        np.minimum(sig, text_sig[idx[f]][:, rotate], out=sig)
    bands, r = lsh_bands(num_perm, threshold)
    lefts, rights = [], []
    mult = np.arange(1, r + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    for band in range(bands):
        block = sig[:, band * r:(band + 1) * r].astype(np.uint64)
        with np.errstate(over="ignore"):
            key = (block * mult).sum(axis=1) ^ (block[:, 0] << np.uint64(32))
        order = np.argsort(key)
        sk = key[order]
        new = np.ones(sk.size, dtype=bool)
        new[1:] = sk[1:] != sk[:-1]
        if new.all():
            continue
        # every member of a bucket against the bucket's first row (the smallest index)
        starts = np.nonzero(new)[0]
        heads = np.minimum.reduceat(order, starts)
        head = heads[np.cumsum(new) - 1]
        member = order != head
        lefts.append(head[member])
        rights.append(order[member])
    if lefts:
        n_live = np.int64(live.size)
        pair = np.unique(np.concatenate(lefts) * n_live + np.concatenate(rights))
        left, right = pair // n_live, pair % n_live
        similar = (sig[left] == sig[right]).mean(axis=1) >= threshold
        left, right = left[similar], right[similar]
    else:
        left = right = np.zeros(0, dtype=np.int64)
    root = _components(live.size, left, right)
    for pos in np.nonzero(root != np.arange(live.size))[0]:
        i = int(live[pos])
        keep[i] = False
        reason[i] = "near_duplicate"
        dup_of[i] = int(live[root[pos]])
    return DedupeResult(keep, reason, dup_of)
