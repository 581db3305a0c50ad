"""Lucene's PorterStemmer (org.apache.lucene.analysis.en.PorterStemmer, Lucene 9.9.1), line for line.

Martin Porter's reference implementation (Release 3, with its two bug fixes), as Lucene's PorterStemFilter
runs it: on the UTF-16 code units of a lower-cased term, words of up to two units untouched. It differs
from NLTK's and Snowball's "porter" on a few suffixes (e.g. Lucene maps "-bli" to "-ble" and "-logi" to
"-log" in step 3, and treats every non-ASCII unit as a consonant), so it is ported rather than borrowed;
``tests/test_lucene_english.py`` compares it with Lucene itself.
"""

from __future__ import annotations

from functools import lru_cache

_VOWELS = frozenset("aeiou")


class _Porter:
    """One word's state: the code units ``b`` and the indices k0 <= j <= k of the algorithm."""

    __slots__ = ("b", "j", "k", "k0")

    def __init__(self, units: list[str]) -> None:
        self.b = units
        self.k0 = 0
        self.k = len(units) - 1
        self.j = 0

    def cons(self, i: int) -> bool:
        ch = self.b[i]
        if ch in _VOWELS:
            return False
        if ch == "y":
            return True if i == self.k0 else not self.cons(i - 1)
        return True

    def m(self) -> int:
        n, i, j = 0, self.k0, self.j
        while True:
            if i > j:
                return n
            if not self.cons(i):
                break
            i += 1
        i += 1
        while True:
            while True:
                if i > j:
                    return n
                if self.cons(i):
                    break
                i += 1
            i += 1
            n += 1
            while True:
                if i > j:
                    return n
                if not self.cons(i):
                    break
                i += 1
            i += 1

    def vowelinstem(self) -> bool:
        return any(not self.cons(i) for i in range(self.k0, self.j + 1))

    def doublec(self, j: int) -> bool:
        if j < self.k0 + 1 or self.b[j] != self.b[j - 1]:
            return False
        return self.cons(j)

    def cvc(self, i: int) -> bool:
        if i < self.k0 + 2 or not self.cons(i) or self.cons(i - 1) or not self.cons(i - 2):
            return False
        return self.b[i] not in ("w", "x", "y")

    def ends(self, s: str) -> bool:
        length = len(s)
        o = self.k - length + 1
        if o < self.k0:
            return False
        if "".join(self.b[o : o + length]) != s:
            return False
        self.j = self.k - length
        return True

    def setto(self, s: str) -> None:
        o = self.j + 1
        for i, ch in enumerate(s):
            if o + i < len(self.b):
                self.b[o + i] = ch
            else:
                self.b.append(ch)
        self.k = self.j + len(s)

    def r(self, s: str) -> None:
        if self.m() > 0:
            self.setto(s)

    def step1(self) -> None:
        b = self.b
        if b[self.k] == "s":
            if self.ends("sses"):
                self.k -= 2
            elif self.ends("ies"):
                self.setto("i")
            elif b[self.k - 1] != "s":
                self.k -= 1
        if self.ends("eed"):
            if self.m() > 0:
                self.k -= 1
        elif (self.ends("ed") or self.ends("ing")) and self.vowelinstem():
            self.k = self.j
            if self.ends("at"):
                self.setto("ate")
            elif self.ends("bl"):
                self.setto("ble")
            elif self.ends("iz"):
                self.setto("ize")
            elif self.doublec(self.k):
                ch = self.b[self.k]
                self.k -= 1
                if ch in ("l", "s", "z"):
                    self.k += 1
            elif self.m() == 1 and self.cvc(self.k):
                self.setto("e")

    def step2(self) -> None:
        if self.ends("y") and self.vowelinstem():
            self.b[self.k] = "i"

    def step3(self) -> None:
        if self.k == self.k0:
            return  # Bug 1
        for suffix, replacement in _STEP3.get(self.b[self.k - 1], ()):
            if self.ends(suffix):
                self.r(replacement)
                return

    def step4(self) -> None:
        for suffix, replacement in _STEP4.get(self.b[self.k], ()):
            if self.ends(suffix):
                self.r(replacement)
                return

    def step5(self) -> None:
        if self.k == self.k0:
            return  # Bug 1
        ch = self.b[self.k - 1]
        if ch == "o":
            if not (
                (self.ends("ion") and self.j >= 0 and self.b[self.j] in ("s", "t")) or self.ends("ou")
            ):  # j >= 0 fixes Bug 2
                return
        elif not any(self.ends(suffix) for suffix in _STEP5.get(ch, ())):
            return
        if self.m() > 1:
            self.k = self.j

    def step6(self) -> None:
        self.j = self.k
        if self.b[self.k] == "e":
            a = self.m()
            if a > 1 or (a == 1 and not self.cvc(self.k - 1)):
                self.k -= 1
        if self.b[self.k] == "l" and self.doublec(self.k) and self.m() > 1:
            self.k -= 1

    def stem(self) -> str:
        if self.k > self.k0 + 1:
            self.step1()
            self.step2()
            self.step3()
            self.step4()
            self.step5()
            self.step6()
        return "".join(self.b[: self.k + 1])


# step3/step4: the suffixes tried (in Lucene's order) by the letter before the last / the last letter
_STEP3: dict[str, tuple[tuple[str, str], ...]] = {
    "a": (("ational", "ate"), ("tional", "tion")),
    "c": (("enci", "ence"), ("anci", "ance")),
    "e": (("izer", "ize"),),
    "l": (("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous")),
    "o": (("ization", "ize"), ("ation", "ate"), ("ator", "ate")),
    "s": (("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous")),
    "t": (("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")),
    "g": (("logi", "log"),),
}
_STEP4: dict[str, tuple[tuple[str, str], ...]] = {
    "e": (("icate", "ic"), ("ative", ""), ("alize", "al")),
    "i": (("iciti", "ic"),),
    "l": (("ical", "ic"), ("ful", "")),
    "s": (("ness", ""),),
}
_STEP5: dict[str, tuple[str, ...]] = {
    "a": ("al",),
    "c": ("ance", "ence"),
    "e": ("er",),
    "i": ("ic",),
    "l": ("able", "ible"),
    "n": ("ant", "ement", "ment", "ent"),
    "s": ("ism",),
    "t": ("ate", "iti"),
    "u": ("ous",),
    "v": ("ive",),
    "z": ("ize",),
}


def _utf16_units(word: str) -> list[str]:
    """The word as Java sees it: one element per UTF-16 code unit (astral characters as two surrogates)."""
    if word.isascii() or max(word) <= "\uffff":
        return list(word)
    data = word.encode("utf-16-le", "surrogatepass")
    return [chr(int.from_bytes(data[i : i + 2], "little")) for i in range(0, len(data), 2)]


@lru_cache(maxsize=200_000)
def porter_stem(word: str) -> str:
    """Lucene's ``PorterStemmer.stem`` of one (lower-cased) term."""
    if len(word) <= 2 and word.isascii():
        return word
    stemmed = _Porter(_utf16_units(word)).stem()
    if stemmed.isascii():
        return stemmed
    return stemmed.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
