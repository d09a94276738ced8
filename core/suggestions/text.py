"""Words as the suggestion engines compare them (pure).

A language tag ("en", "ru-RU", "de") picks the Snowball stemmer (PyStemmer) and the PostgreSQL
text-search configuration of the same name; a language neither knows (Georgian, Chinese...)
is compared by its lower-cased words. Text in scripts written without spaces (Chinese,
Japanese) is cut into single characters, so a question matches inside a run of them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import cache

import Stemmer

# ISO 639-1 -> the name Snowball and PostgreSQL (15+) share for the language.
SNOWBALL: dict[str, str] = {
    "ar": "arabic",
    "hy": "armenian",
    "eu": "basque",
    "ca": "catalan",
    "da": "danish",
    "nl": "dutch",
    "en": "english",
    "fi": "finnish",
    "fr": "french",
    "de": "german",
    "el": "greek",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "ga": "irish",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "no": "norwegian",
    "nb": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "es": "spanish",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}
# The configuration for languages without a stemmer: words as written, lower-cased.
SIMPLE = "simple"
# Words worth matching on, at most, from one question (the rarest are not known here: the
# engines weigh them; a long email is cut to its first words).
MAX_QUERY_TERMS = 32

_WORD = re.compile(r"[^\W_]+")
# Han, Hiragana, Katakana, Hangul syllables: scripts whose words are not separated by spaces.
_UNSPACED = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")
_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")


def base_language(tag: str | None) -> str:
    """'en-US' -> 'en'; '' for none."""
    return (tag or "").split("-")[0].split("_")[0].strip().lower()


def ts_config(language: str | None) -> str:
    """The PostgreSQL text-search configuration for a language tag."""
    return SNOWBALL.get(base_language(language), SIMPLE)


@cache
def _stemmer(algorithm: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(algorithm)


def is_unspaced(word: str) -> bool:
    """A character of a script written without spaces (as `words` cuts them)."""
    return bool(_UNSPACED.fullmatch(word))


def words(text: str) -> list[str]:
    """The words of `text`, case-folded, in order; unspaced scripts one character each."""
    spaced = _UNSPACED.sub(r" \1 ", unicodedata.normalize("NFKC", text).casefold())
    return _WORD.findall(spaced)


def stems(words_: list[str], language: str | None) -> list[str]:
    algorithm = SNOWBALL.get(base_language(language))
    if algorithm is None:
        return list(words_)
    return list(_stemmer(algorithm).stemWords(words_))


def terms(text: str, language: str | None) -> list[str]:
    """The stems of `text` in its language, in order (repeats kept: they weigh)."""
    return stems(words(text), language)


def query_terms(text: str, language: str | None) -> dict[str, str]:
    """A question's distinct stems, each with the first word that gave it (to show why a
    suggestion matched); at most MAX_QUERY_TERMS."""
    found: dict[str, str] = {}
    original = words(text)
    for word, stem in zip(original, stems(original, language), strict=True):
        if stem not in found:
            found[stem] = word
            if len(found) == MAX_QUERY_TERMS:
                break
    return found


def answer_key(answer: str) -> str:
    """The same answer given many times (whatever its case, spacing or placeholders' values)
    has one key, so it is suggested once."""
    reduced = " ".join(words(_PLACEHOLDER.sub(" ", answer)))
    return hashlib.sha256(reduced.encode()).hexdigest()[:32]


def without_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub(" ", text)
