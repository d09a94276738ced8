"""Telegram's parse modes as the Bot API applies them to a message's text (the stand-in's
part that reads markup): HTML, MarkdownV2 and the legacy Markdown, each to the plain text
and its entities (offsets and lengths in UTF-16 code units, as Telegram counts), or
`EntityError` with Telegram's wording for markup it refuses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


def utf16_len(text: str) -> int:
    """Telegram's entity offsets and lengths count UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


class EntityError(ValueError):
    """Markup Telegram refuses; the message is its wording after "can't parse entities: "."""


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


@dataclass
class _Open:
    tag: str
    attributes: dict[str, str]
    offset: int  # UTF-16 offset in the plain text
    byte: int


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(3):
            return _NAMED[match.group(3)]
        code = int(match.group(1)) if match.group(1) else int(match.group(2), 16)
        return chr(code) if 0 < code <= 0x10FFFF else ""

    return _HTML_ENTITY.sub(one, text)


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: the plain text and its entities, or EntityError."""
    out: list[str] = []
    position = 0  # UTF-16 length of `out`
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    size = len(text)
    index = 0

    def byte(at: int) -> int:
        return len(text[:at].encode())

    def add(chars: str) -> None:
        nonlocal position
        out.append(chars)
        position += utf16_len(chars)

    while index < size:
        char = text[index]
        if char == "&":
            match = _HTML_ENTITY.match(text, index)
            if match:
                add(_unescape(match.group(0)))
                index = match.end()
                continue
            if strict:
                raise EntityError(
                    f'Character "&" at byte offset {byte(index)} must be escaped as "&amp;"'
                )
        elif char == ">" and strict:
            raise EntityError(
                f'Character ">" at byte offset {byte(index)} must be escaped as "&gt;"'
            )
        elif char == "<" and text.startswith("</", index):
            end = text.find(">", index)
            if end < 0:
                raise EntityError(f"Unclosed end tag at byte offset {byte(index)}")
            name = text[index + 2 : end].strip().lower()
            if not stack:
                raise EntityError(f"Unexpected end tag at byte offset {byte(index)}")
            opened = stack.pop()
            if name != opened.tag:
                raise EntityError(
                    f'Unmatched end tag at byte offset {byte(index)}, expected "</{opened.tag}>", '
                    f'found "</{name}>"'
                )
            _close_html(opened, position, stack, entities)
            index = end + 1
            continue
        elif char == "<":
            start = index
            index += 1
            while index < size and not text[index].isspace() and text[index] not in ">":
                index += 1
            if index >= size:
                raise EntityError(f"Unclosed start tag at byte offset {byte(start)}")
            name = text[start + 1 : index].lower()
            if name not in _HTML_TAGS:
                raise EntityError(f'Unsupported start tag "{name}" at byte offset {byte(start)}')
            attributes: dict[str, str] = {}
            while True:
                while index < size and text[index].isspace():
                    index += 1
                if index >= size:
                    raise EntityError(f"Unclosed start tag at byte offset {byte(start)}")
                if text[index] == ">":
                    index += 1
                    break
                attribute_start = index
                while index < size and not text[index].isspace() and text[index] not in "=>":
                    index += 1
                attribute = text[attribute_start:index].lower()
                if not attribute:
                    raise EntityError(
                        f'Empty attribute name in the tag "{name}" at byte offset {byte(start)}'
                    )
                while index < size and text[index].isspace():
                    index += 1
                value = ""
                if index < size and text[index] == "=":
                    index += 1
                    while index < size and text[index].isspace():
                        index += 1
                    if index >= size:
                        raise EntityError(f"Unclosed start tag at byte offset {byte(start)}")
                    if text[index] in "\"'":
                        close = text.find(text[index], index + 1)
                        if close < 0:
                            raise EntityError(f"Unclosed start tag at byte offset {byte(start)}")
                        value = text[index + 1 : close]
                        index = close + 1
                    else:
                        value_start = index
                        while index < size and not text[index].isspace() and text[index] != ">":
                            index += 1
                        value = text[value_start:index]
                attributes[attribute] = _unescape(value)
            if name == "span" and attributes.get("class") != "tg-spoiler":
                raise EntityError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {byte(start)}'
                )
            stack.append(_Open(name, attributes, position, byte(start)))
            continue
        add(char)
        index += 1
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _close_html(
    opened: _Open, position: int, stack: list[_Open], entities: list[dict[str, Any]]
) -> None:
    length = position - opened.offset
    kind = _HTML_TAGS[opened.tag]
    if kind == "code" and stack and stack[-1].tag == "pre":
        language = opened.attributes.get("class", "")
        if language.startswith("language-"):
            stack[-1].attributes["language"] = language.removeprefix("language-")
        return  # code inside pre: the pre carries it
    if length == 0:
        return
    entity: dict[str, Any] = {"offset": opened.offset, "length": length, "type": kind}
    if kind == "text_link":
        href = opened.attributes.get("href")
        if not href:
            return
        entity["url"] = href
    elif kind == "pre" and opened.attributes.get("language"):
        entity["language"] = opened.attributes["language"]
    elif kind == "blockquote" and "expandable" in opened.attributes:
        entity["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        emoji_id = opened.attributes.get("emoji-id")
        if not emoji_id:
            return
        entity["custom_emoji_id"] = emoji_id
    entities.append(entity)


_MD2_RESERVED = "_*[]()~`>#+-=|{}.!"
_MD2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's MarkdownV2 parse mode: the plain text and its entities, or EntityError."""
    out: list[str] = []
    position = 0
    stack: list[tuple[str, int, int, str]] = []  # kind, UTF-16 offset, byte offset, language
    entities: list[dict[str, Any]] = []
    quote: int | None = None  # the UTF-16 offset of an open blockquote
    size = len(text)
    index = 0

    def at(offset: int) -> str:
        return text[offset] if offset < size else ""

    def byte(offset: int) -> int:
        return len(text[:offset].encode())

    def add(chars: str) -> None:
        nonlocal position
        out.append(chars)
        position += utf16_len(chars)

    def reserved(offset: int) -> EntityError:
        return EntityError(
            f"Character '{text[offset]}' is reserved and must be escaped with the preceding '\\'"
        )

    while index < size:
        char = text[index]
        line_start = index == 0 or text[index - 1] == "\n"
        if char == "\\" and 0 < ord(at(index + 1) or "\0") <= 126:
            add(text[index + 1])
            index += 2
            continue
        if stack and stack[-1][0] in ("code", "pre") and char != "`":
            add(char)
            index += 1
            continue
        if char == "\n" and quote is not None and at(index + 1) != ">":
            entities.append({"offset": quote, "length": position - quote, "type": "blockquote"})
            quote = None
        if char not in _MD2_RESERVED:
            add(char)
            index += 1
            continue
        if char == ">" and line_start and not stack:
            if quote is None:
                quote = position
            index += 1
            continue
        kind = stack[-1][0] if stack else ""
        ends = (
            (kind == "bold" and char == "*")
            or (kind == "italic" and char == "_" and at(index + 1) != "_")
            or (kind == "underline" and char == "_" and at(index + 1) == "_")
            or (kind == "strikethrough" and char == "~")
            or (kind == "spoiler" and char == "|" and at(index + 1) == "|")
            or (kind == "code" and char == "`")
            or (kind == "pre" and text.startswith("```", index))
            or (kind in ("text_link", "custom_emoji") and char == "]")
        )
        if not ends:
            start = index
            language = ""
            if char == "_" and at(index + 1) == "_":
                kind, index = "underline", index + 1
            elif char == "_":
                kind = "italic"
            elif char == "*":
                kind = "bold"
            elif char == "~":
                kind = "strikethrough"
            elif char == "|" and at(index + 1) == "|":
                kind, index = "spoiler", index + 1
            elif char == "[":
                kind = "text_link"
            elif char == "!" and at(index + 1) == "[":
                kind, index = "custom_emoji", index + 1
            elif char == "`" and text.startswith("```", index):
                kind, index = "pre", index + 3
                end = index
                while end < size and not text[end].isspace() and text[end] != "`":
                    end += 1
                if end != index and end < size and text[end] != "`":
                    language, index = text[index:end], end
                if at(index) in ("\n", "\r"):
                    index += 1
                index -= 1
            elif char == "`":
                kind = "code"
            else:
                raise reserved(index)
            stack.append((kind, position, byte(start), language))
            index += 1
            continue
        kind, offset, _, language = stack.pop()
        entity: dict[str, Any] = {"offset": offset, "length": position - offset, "type": kind}
        if kind in ("underline", "spoiler"):
            index += 1
        elif kind == "pre":
            index += 2
            if language:
                entity["language"] = language
        elif kind in ("text_link", "custom_emoji"):
            if at(index + 1) == "(":
                index += 2
                url_start = index
                url: list[str] = []
                while index < size and text[index] != ")":
                    if text[index] == "\\" and 0 < ord(at(index + 1) or "\0") <= 126:
                        url.append(text[index + 1])
                        index += 2
                        continue
                    url.append(text[index])
                    index += 1
                if index >= size:
                    raise EntityError(f"Can't find end of a URL at byte offset {byte(url_start)}")
                target = "".join(url)
            else:
                target = "".join(out)[offset:] if kind == "text_link" else ""
            if kind == "custom_emoji":
                match = re.fullmatch(r"tg://emoji\?id=(\d+)", target)
                if match is None:
                    raise EntityError("Custom emoji entity must contain a tg://emoji URL")
                entity["custom_emoji_id"] = match.group(1)
            else:
                entity["url"] = target
        index += 1
        if entity["length"] > 0 and (kind != "text_link" or entity.get("url")):
            entities.append(entity)
    if stack:
        kind, _, offset_bytes, _ = stack[-1]
        raise EntityError(
            f"Can't find end of {_MD2_NAMES[kind]} entity at byte offset {offset_bytes}"
        )
    if quote is not None:
        entities.append({"offset": quote, "length": position - quote, "type": "blockquote"})
    entities = [entity for entity in entities if entity["length"] > 0]
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's legacy Markdown parse mode (no nesting; `\\` escapes _ * ` [ outside)."""
    out: list[str] = []
    position = 0
    entities: list[dict[str, Any]] = []
    size = len(text)
    index = 0
    kinds = {"*": "bold", "_": "italic", "`": "code", "[": "text_link"}
    while index < size:
        char = text[index]
        if char == "\\" and index + 1 < size and text[index + 1] in "_*`[":
            out.append(text[index + 1])
            position += 1
            index += 2
            continue
        if char not in kinds:
            out.append(char)
            position += utf16_len(char)
            index += 1
            continue
        start = index
        kind = kinds[char]
        end_char = "]" if char == "[" else char
        language = ""
        if text.startswith("```", index):
            kind = "pre"
            index += 3
            newline = text.find("\n", index)
            first_line = text[index:newline] if newline >= 0 else ""
            if newline >= 0 and first_line and " " not in first_line and "`" not in first_line:
                language = first_line
                index = newline + 1
            end = text.find("```", index)
        else:
            index += 1
            end = text.find(end_char, index)
        if end < 0:
            raise EntityError(
                f"Can't find end of the entity starting at byte offset {len(text[:start].encode())}"
            )
        inner = text[index:end]
        offset = position
        out.append(inner)
        position += utf16_len(inner)
        entity: dict[str, Any] = {"offset": offset, "length": position - offset, "type": kind}
        index = end + (3 if kind == "pre" else 1)
        if kind == "pre" and language:
            entity["language"] = language
        if kind == "text_link":
            if index < size and text[index] == "(":
                close = text.find(")", index)
                if close < 0:
                    raise EntityError(
                        f"Can't find end of a URL at byte offset {len(text[:index].encode())}"
                    )
                entity["url"] = text[index + 1 : close]
                index = close + 1
            else:
                entity = {}
        if entity and entity["length"] > 0:
            entities.append(entity)
    return "".join(out), entities


def trimmed(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram strips leading and trailing whitespace, and the entities with it."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(0, entity["offset"] - lead)
        end = min(total, entity["offset"] + entity["length"] - lead)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept
