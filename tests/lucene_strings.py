"""Varied generated strings for the Lucene-analyzer equality test (seeded, so every run checks the same)."""

from __future__ import annotations

import random

_PIECES = [
    # possessives, apostrophes, quotes
    "John's", "JAMES'S", "dogs'", "it\u2019s", "Bob\uff07s", "rock'n'roll", "o'clock", "'quoted'", "d'Alembert's",
    "can't", "won't", "'s", "s'", "l'H\u00f4pital's", "\u05d0\u05d1\"\u05d2", "\u05d0'\u05d1", "\u05e6\u05d4\u05f3",
    # hyphens, dashes, slashes
    "e-mail", "state-of-the-art", "x\u2013y", "a\u2014b", "A/B", "and/or", "--flag", "-5", "re-entrant",
    # numbers
    "3.14", "1,000,000", "1e-5", "v2.0.1", "10:30", "2023-01-02", "0x1F", "1/2", "50%", "$100", "\u00bd",
    "\uff11\uff12\uff13", "\u0661\u0662\u0663", "3.14.15", "1.", ".5", "1..2", "1,,2", "1;2", "12a", "a12", "4th",
    # code
    "def f(x): return x**2", "a_b.c->d", "std::vector<int>", "foo.bar()", "x+=1;", "__init__", "_private",
    "snake_case_name", "camelCaseName", "HTTPServer", "arr[i][j]", "#include <stdio.h>", "$\\frac{a}{b}$",
    "\\sum_{i=1}^{n} x_i", "O(n log n)", "a:b", "a::b", "key=value", "C++", "C#", "node.js", "e.g.", "i.e.",
    "U.S.A.", "Ph.D.", "a.b.c", "x.1", "1.x", "foo_", "_1", "a__b", "a_1_b", "<br/>", "&amp;", "@decorator",
    # URLs, emails, paths
    "http://example.com/a_b?c=d&e=f#frag", "https://www.x.org/wiki/Main_Page", "ftp://ftp.x.net/pub/file.tar.gz",
    "foo@bar.com", "first.last+tag@sub.example.co.uk", "/usr/local/bin", "C:\\Windows\\System32", "www.x.com",
    # letters and scripts
    "caf\u00e9", "na\u00efve", "Stra\u00dfe", "\u0130stanbul", "\u039f\u0394\u039f\u03a3", "\u0391\u03b8\u03ae\u03bd\u03b1",
    "\u041c\u043e\u0441\u043a\u0432\u0430", "\u6771\u4eac\u30bf\u30ef\u30fc", "\u3072\u3089\u304c\u306a",
    "\u30ab\u30bf\u30ab\u30ca\u30fc", "\ud55c\uad6d\uc5b4", "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "e\u0301", "a\u200bb", "a\u00adb", "a\u200db", "\ufeffbom", "\U0001d465\U0001d466", "\U0001d400BC", "\u2160\u2161",
    "\u00b2", "x\u00b2", "\u221e", "\u03c0r\u00b2", "\u2202f/\u2202x", "\u2211", "\u00e6\u00f8\u00e5", "\u0131",
    "\u1e9e", "\u01c5", "\u1f88", "\ua7ae", "\u0345", "\u2126", "\u212a",
    # emoji
    "\U0001f600", "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1fa\U0001f1f8",
    "#\ufe0f\u20e3", "1\u20e3", "\u00a9", "\u2122", "\u2764\ufe0f", "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    "\u263a\ufe0e", "a\U0001f600b",
    # stemming
    "running", "caresses", "ponies", "ties", "agreed", "disabled", "matting", "mating", "meeting", "milling",
    "messing", "meetings", "relational", "conditional", "rational", "valenci", "hesitanci", "digitizer",
    "conformabli", "radicalli", "differentli", "vileli", "analogousli", "vietnamization", "predication",
    "operator", "feudalism", "decisiveness", "hopefulness", "callousness", "formaliti", "sensitiviti",
    "sensibiliti", "triplicate", "formative", "formalize", "electriciti", "electrical", "hopeful", "goodness",
    "revival", "allowance", "inference", "airliner", "gyroscopic", "adjustable", "defensible", "irritant",
    "replacement", "adjustment", "dependent", "adoption", "homologou", "communism", "activate", "angulariti",
    "homologous", "effective", "bowdlerize", "probate", "rate", "cease", "controll", "roll", "generalizations",
    "oscillators", "yyyyy", "syzygy", "sky", "skies", "by", "aed", "eed", "oed", "ion", "ions", "ss", "s", "is",
    "thermodynamics", "eigenvalues", "Hilbert's", "Pythagoras'", "theorem's", "quickly", "happily", "logical",
]
_RANDOM_RANGES = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
                  (0xE00, 0xEFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x2000, 0x206F), (0x20A0, 0x20FF),
                  (0x2100, 0x22FF), (0x3000, 0x30FF), (0x4E00, 0x4E80), (0xAC00, 0xAC80), (0xFE00, 0xFE6F),
                  (0xFF00, 0xFFEF), (0x1D400, 0x1D4FF), (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0xE0000, 0xE007F),
                  (0x0, 0x2FFFF)]
_SEPARATORS = [" ", " ", " ", "\n", "\t", ", ", ". ", "; ", ": ", "(", ")", "-", "_", "'", "\"", ".", "/", "", "\u3000",
               "\u00a0", "\r\n", "\u2028", "\u202f", "\u2009"]


def _random_char(rng: random.Random) -> str:
    low, high = rng.choice(_RANDOM_RANGES)
    cp = rng.randint(low, high)
    return "\ufffd" if 0xD800 <= cp <= 0xDFFF else chr(cp)


def generated_strings(count: int = 3000, seed: int = 22) -> list[str]:
    """``count`` strings: the pieces above alone and glued with separators, random code points, long runs."""
    rng = random.Random(seed)
    out = list(_PIECES)
    out += [
        "a" * 300, "b" * 255 + " " + "c" * 254, "1" * 600, "x" * 510 + "yz", "\U0001d465" * 200,
        "word " * 100 + "z" * 256, "a." * 200, "\u0e01" * 300, "\u30ab" * 300, "\u6771" * 300, "s" * 257 + "'s",
    ]
    while len(out) < count:
        kind = rng.random()
        if kind < 0.5:
            parts = [rng.choice(_PIECES) for _ in range(rng.randint(2, 8))]
            out.append("".join(p + rng.choice(_SEPARATORS) for p in parts))
        elif kind < 0.8:
            out.append("".join(_random_char(rng) for _ in range(rng.randint(1, 40))))
        else:
            mixed = []
            for _ in range(rng.randint(2, 12)):
                mixed.append(rng.choice(_PIECES) if rng.random() < 0.5 else _random_char(rng))
                if rng.random() < 0.5:
                    mixed.append(rng.choice(_SEPARATORS))
            out.append("".join(mixed))
    return out[:count]
