"""Where the new text of a plain-text reply ends and the quoted conversation begins.

Pure: `split_quoted_text` parts a plain-text message into its new text and the quoted reply
and signature below it (`ParsedEmail.text` and `text_quoted`).
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"on\b.{1,300}\bwrote"
    r"|am\b.{1,300}\bschrieb"
    r"|le\b.{1,300}\ba\s+écrit"
    r"|el\b.{1,300}\bescribió"
    r"|op\b.{1,300}\bschreef"
    r"|il\b.{1,300}\bha\s+scritto"
    r"|em\b.{1,300}\bescreveu"
    r")\s*:\s*$",
    re.IGNORECASE,
)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*\*?(?:from|von|de|van|da|från)\s*:\*?\s*\S", re.IGNORECASE)
_OUTLOOK_SENT = re.compile(
    r"^\s*\*?(?:sent|gesendet|envoyé|enviado|verzonden|inviato|skickat)\b[^:]{0,10}:",
    re.IGNORECASE,
)
_OUTLOOK_RULE = re.compile(r"^\s*_{10,}\s*$")
_SIGNATURE = re.compile(r"^-- ?$")


def split_quoted_text(text: str) -> tuple[str, str]:
    """(new text, quoted reply and signature) of a plain-text message.

    Recognizes "On ... wrote:" attributions (also wrapped over two lines, and in a few other
    languages), Outlook's "-----Original Message-----" and "From: ... Sent: ..." blocks, the
    "-- " signature delimiter and a trailing block of ">" lines. A message that would have no
    new text left is returned whole.
    """
    lines = text.split("\n")
    cut = _quote_start(lines)
    if cut is None:
        return text.strip("\n"), ""
    new_text = "\n".join(lines[:cut]).rstrip()
    if not new_text.strip():
        return text.strip("\n"), ""
    return new_text, "\n".join(lines[cut:]).strip("\n")


def _quote_start(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        if _SIGNATURE.match(line) or _ORIGINAL_MESSAGE.match(line):
            return index
        if _ATTRIBUTION.match(line):
            return index
        if index + 1 < len(lines) and _ATTRIBUTION.match(f"{line} {lines[index + 1]}"):
            return index
        if _OUTLOOK_FROM.match(line) and any(
            _OUTLOOK_SENT.match(following) for following in lines[index + 1 : index + 5]
        ):
            above = index - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            return above if above >= 0 and _OUTLOOK_RULE.match(lines[above]) else index
    return _trailing_quote_start(lines)


def _trailing_quote_start(lines: list[str]) -> int | None:
    """Where the block of ">" and blank lines at the end begins, if it quotes anything."""
    start = len(lines)
    while start > 0 and (not lines[start - 1].strip() or lines[start - 1].lstrip().startswith(">")):
        start -= 1
    while start < len(lines) and not lines[start].strip():
        start += 1
    return start if start < len(lines) else None
