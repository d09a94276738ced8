"""Which language a customer wrote in (py3langid: a small model inside its package).

`detect` answers an ISO 639-1 code ("en", "ru", "ka", "zh"...) or None when the text is too
short to tell ("ok", "thanks!") or the model is unsure; callers keep what they knew before
in that case (the contact's language).
"""

from __future__ import annotations

import threading
from functools import cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from core.suggestions.text import is_unspaced, words

# Below this many letters a guess is noise ("ok", "hi"); a character of an unspaced script
# (Chinese, Japanese) counts as a word's worth.
MIN_LETTERS = 8
_UNSPACED_WEIGHT = 4
# The model's normalised probability a guess needs.
MIN_CONFIDENCE = 0.4
# The start of a long text says enough.
MAX_CHARS = 1000

_lock = threading.Lock()


@cache
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def warm() -> None:
    """Loads the model (about 0.7 s, once per process), so that no request waits for it."""
    _identifier()


def detect(text: str) -> str | None:
    sample = text[:MAX_CHARS]
    letters = sum(
        _UNSPACED_WEIGHT if is_unspaced(word) else len(word)
        for word in words(sample)
        if not word.isdigit()
    )
    if letters < MIN_LETTERS:
        return None
    with _lock:
        language, confidence = _identifier().classify(sample)
    return str(language) if confidence >= MIN_CONFIDENCE else None
