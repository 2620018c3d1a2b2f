"""A fast test for profanity with better-profanity's word list and matching rules.

``better_profanity.Profanity.contains_profanity`` censors the whole text character by
character and compares each word against every listed word in turn: about 5 texts of 200
words per second. This module gives the same answer about three orders of magnitude
faster by indexing the list once:

- better-profanity splits text into words (runs of its ``ALLOWED_CHARACTERS``), lowercases
  them, and calls a word profane when it is a *variant* of a listed word, where each letter
  may be written as one of its substitutes (``a`` as ``@``, ``*`` or ``4``; ``s`` as ``$``
  or ``5``...). It also joins a word with up to ``MAX_NUMBER_COMBINATIONS`` following words,
  with and without the separators between them ("blow job", "bull shit").
- Here every word is mapped to a *skeleton* in which each letter and all its substitutes
  fall together (``s``, ``$``, ``5`` all become ``s``); a word can only be a variant of a
  listed word with the same skeleton. The skeletons of the list are kept in a dict, their
  prefixes in a set (to know when joining the next word can still lead to a match), and a
  skeleton hit is confirmed with better-profanity's own ``VaryingString`` comparison.

For ASCII text, the usual case is decided in C: each process remembers the real words it
has seen clean (a word's verdict never depends on its neighbours), and the pairs of
neighbouring skeletons that begin a listed word are looked up as tuples; only runs of words
starting with such a pair are followed in Python, each on its own.

Built on first use and kept for the process (the list and its index take ~3 MB, the memo
of clean words at most ~7 MB).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import compress, count, pairwise
from typing import Any

__all__ = ["ProfanityIndex", "profanity_index"]


# Real words remembered as clean per process; past this many the memo starts over, so text
# full of one-off tokens (ids, numbers) cannot grow it without bound (~7 MB at the cap).
CLEAN_WORDS_LIMIT = 50_000


@dataclass(frozen=True, eq=False)
class ProfanityIndex:
    """The listed words by skeleton, the skeletons' proper prefixes, and how to split."""

    by_skeleton: dict[str, list[Any]]
    prefixes: frozenset[str]
    max_join: int
    skeleton_table: dict[int, str]
    split: Callable[[str], list[str]]
    ascii_split: Callable[[str], list[str]]
    # Byte tables for ASCII text: skeleton letters and separators to spaces / separators only.
    ascii_table: bytes
    ascii_separators: bytes
    skeleton_bytes: frozenset[bytes]
    pair_prefixes: frozenset[bytes]
    bare_bytes: frozenset[bytes]
    # (first, second) skeletons of two neighbouring words whose join begins a bare listed
    # skeleton: the only pairs a run of words can start with.
    pair_starts: frozenset[tuple[bytes, bytes]]
    # Bare skeletons of the listed words written with separators ("blow job", "s-o-b"): only
    # for these does a run need its real separators.
    spaced_bare: frozenset[bytes]
    allowed_codes: frozenset[int]
    # Lowercased ASCII words known not to be listed on their own; see CLEAN_WORDS_LIMIT.
    clean_words: set[bytes] = field(default_factory=set, repr=False)

    def contains(self, text: str) -> bool:
        """True when better-profanity would censor something in ``text``."""
        if not text.isascii():
            return self._contains(text)
        low = text.lower()
        # All in C for the usual text: its words were all seen clean before, and no two
        # neighbouring words begin a listed word when joined.
        raw = low.encode("ascii")
        real = raw.translate(self.ascii_separators).split()
        if not self.clean_words.issuperset(real) and self._listed_word(real):
            return True
        words = raw.translate(self.ascii_table).split()
        # Nearly every text has such pairs ("for a", "in your"), a few times each; their
        # positions are picked out in C.
        starts = compress(count(), map(self.pair_starts.__contains__, pairwise(words)))
        return self._listed_run(low, raw, words, real, starts)

    def _listed_word(self, real: list[bytes]) -> bool:
        """True when one of the words (not yet known clean) is a variant of a listed word;
        otherwise they are all remembered as clean (a word's verdict never depends on its
        neighbours)."""
        new = set(real).difference(self.clean_words)
        skeletons, table = self.skeleton_bytes, self.ascii_table
        for word in new:
            skeleton = word.translate(table)
            if skeleton in skeletons and self._confirm_ascii(skeleton, word):
                return True
        if len(self.clean_words) > CLEAN_WORDS_LIMIT:
            self.clean_words.clear()
        self.clean_words.update(new)
        return False

    def _listed_run(self, low: str, raw: bytes, words: list[bytes], real: list[bytes],
                    starts: Iterable[int]) -> bool:
        """True when a run of 2 to ``max_join + 1`` words starting at one of ``starts``
        matches, joined or with its separators, as better-profanity joins a word with the
        ones that follow it.

        Each run is decided on its own, and only confirmed when its skeletons, joined,
        spell a bare listed skeleton: the library's whole-text walk would cost ~200 us for
        one harmless "to it".
        """
        n = len(words)
        if n < 2:
            return False
        # better-profanity never joins a one-character word that ends the text.
        last = n - 1 if len(words[-1]) == 1 and raw[-1] in self.allowed_codes else n
        full, prefixes, max_join = self.bare_bytes, self.pair_prefixes, self.max_join
        parts: list[str] = []  # the text's split, made on first need
        for i in starts:
            joined, end = words[i] + words[i + 1], i + 2
            while end <= last:  # the run is words[i:end]
                if joined in full:
                    if (joined in self.skeleton_bytes
                            and self._confirm_ascii(joined, b"".join(real[i:end]))):
                        return True
                    if joined in self.spaced_bare:
                        # Rare: split out the separators; parts alternate word and separator,
                        # after an empty first part when the text starts with a separator.
                        parts = parts or self.ascii_split(low)
                        first = 2 * i + (0 if parts[0] else 2)
                        spaced = "".join(parts[first:first + 2 * (end - i) - 1])
                        skeleton = spaced.translate(self.skeleton_table)
                        if skeleton in self.by_skeleton and self._confirm(skeleton, spaced):
                            return True
                if end >= n or end - i > max_join:
                    break
                joined += words[end]
                end += 1
                if joined not in prefixes:
                    break
        return False

    def _contains(self, text: str) -> bool:
        """better-profanity's walk, for text that is not ASCII.

        Words are split where the *original* text has a character outside
        ``ALLOWED_CHARACTERS`` and only then lowercased, one part at a time, as the library
        does: a few characters ("ǅ", "Ǆ") are not allowed while their lowercase is."""
        # parts: word, separator, word, ..., word (the first and last may be empty).
        original = self.split(text)
        real = [part.lower() for part in original]
        parts = [part.translate(self.skeleton_table) for part in real]
        by_skel, prefixes = self.by_skeleton, self.prefixes
        if by_skel.keys().isdisjoint(parts[::2]) and prefixes.isdisjoint(parts[::2]):
            return False
        n = len(parts)
        for i in range(0, n, 2):
            word = parts[i]
            if not word:
                continue
            if word in by_skel and self._confirm(word, real[i]):
                return True
            if word not in prefixes:
                continue
            joined, joined_real = word, real[i]
            spaced, spaced_real = word, real[i]
            for j in range(i + 2, min(n, i + 2 + 2 * self.max_join), 2):
                if not parts[j] or (j == n - 1 and len(original[j]) == 1):
                    # better-profanity never joins a one-character word that ends the text
                    break
                joined, joined_real = joined + parts[j], joined_real + real[j]
                spaced = spaced + parts[j - 1] + parts[j]
                spaced_real = spaced_real + real[j - 1] + real[j]
                if joined in by_skel and self._confirm(joined, joined_real):
                    return True
                if spaced in by_skel and self._confirm(spaced, spaced_real):
                    return True
                if joined not in prefixes and spaced not in prefixes:
                    break
        return False

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one index per process, never freed
    def _confirm_ascii(self, skeleton: bytes, word: bytes) -> bool:
        return self._confirm(skeleton.decode(), word.decode())

    def _confirm(self, skeleton: str, word: str) -> bool:
        return any(listed == word for listed in self.by_skeleton[skeleton])


@functools.cache
def profanity_index() -> ProfanityIndex:
    """better-profanity's default list, indexed (once per process)."""
    from better_profanity import Profanity

    lib = Profanity()
    table: dict[int, str] = {}
    # Union-find over "letter ~ substitute" so each class gets one representative.
    parent: dict[str, str] = {}

    def find(c: str) -> str:
        while parent.get(c, c) != c:
            c = parent[c]
        return c

    for letter, subs in lib.CHARS_MAPPING.items():
        for sub in subs:
            a, b = find(letter), find(sub)
            if a != b:
                parent[b] = a
    for c in parent.keys() | {c for subs in lib.CHARS_MAPPING.values() for c in subs}:
        rep = find(c)
        if rep != c:
            table[ord(c)] = rep
    # Representatives must be allowed characters, or the skeleton would split differently.
    assert all(rep in lib.ALLOWED_CHARACTERS for rep in table.values())

    by_skeleton: dict[str, list[Any]] = {}
    prefixes: set[str] = set()
    for listed in lib.CENSOR_WORDSET:
        skel = str(listed).translate(table)
        by_skeleton.setdefault(skel, []).append(listed)
        prefixes.update(skel[:k] for k in range(1, len(skel)))

    allowed = "".join(sorted(lib.ALLOWED_CHARACTERS))
    splitter = re.compile(f"([^{re.escape(allowed)}]+)")
    # ASCII text: skeleton letters, and every character that separates words becomes a space.
    separators = {code: " " for code in range(128) if chr(code) not in lib.ALLOWED_CHARACTERS}
    ascii_separators = bytes(ord(separators.get(c, chr(c))) for c in range(256))
    skeleton_and_separators = {**table, **separators}
    ascii_table = bytes(ord(skeleton_and_separators.get(c, chr(c))) for c in range(256))
    ascii_allowed = "".join(sorted(c for c in lib.ALLOWED_CHARACTERS if c.isascii()))
    # Skeletons of listed words with their separators removed, and all their prefixes: the
    # words a run of text words, joined without separators, must begin with.
    pair_prefixes: set[bytes] = set()
    bare_bytes: set[bytes] = set()
    spaced_bare: set[bytes] = set()
    for skel in by_skeleton:
        bare = "".join(c for c in skel if c in lib.ALLOWED_CHARACTERS)
        encoded = bare.encode()  # non-ASCII entries never meet the ASCII path's words
        bare_bytes.add(encoded)
        if bare != skel:
            spaced_bare.add(encoded)
        pair_prefixes.update(encoded[:k] for k in range(1, len(encoded) + 1))
    # Every split of every prefix into two non-empty halves (~10,000 pairs, ~1.5 MB).
    pair_starts = {(p[:k], p[k:]) for p in pair_prefixes for k in range(1, len(p))}
    return ProfanityIndex(by_skeleton=by_skeleton, prefixes=frozenset(prefixes),
                          max_join=lib.MAX_NUMBER_COMBINATIONS, skeleton_table=table,
                          split=splitter.split, ascii_table=ascii_table,
                          ascii_separators=ascii_separators,
                          skeleton_bytes=frozenset(k.encode() for k in by_skeleton),
                          ascii_split=re.compile(f"([^{re.escape(ascii_allowed)}]+)").split,
                          pair_prefixes=frozenset(pair_prefixes),
                          bare_bytes=frozenset(bare_bytes), pair_starts=frozenset(pair_starts),
                          spaced_bare=frozenset(spaced_bare),
                          allowed_codes=frozenset(map(ord, ascii_allowed)))
