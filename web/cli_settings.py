"""Command-line flags built from a pydantic settings model: `omnicrm channel add|set` (a
channel's account settings, web/cli_channels.py) and `omnicrm erp set` (an ERP's connection
settings, web/cli_erp.py) share them.

A field becomes `--<field with - for _>` (or the name its `json_schema_extra={"cli": ...}`
gives; `False`: no flag, for nested values set through the API or the config file), a bool
field `--x/--no-x`, a list field a flag given once per item, a choice field a flag with those
choices. Secret fields are never flags with a value: `--<flag>-stdin` reads the secret from
stdin, one line per such flag in the order they are given (a terminal is asked without
echo). Validation errors name the flags at fault (`in_flags`).
"""

from __future__ import annotations

import argparse
import enum
import getpass
import sys
import types
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from core.errors import InvalidInput

SETTING = "setting__"
SECRET_ORDER = "secret_order"  # noqa: S105 - the name of an argparse destination


def flag_of(name: str, info: FieldInfo) -> str:
    """The flag of a settings field: its `cli` name if it gives one, else the field's."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("cli"), str):
        return str(extra["cli"])
    return name.replace("_", "-")


class _SecretFromStdin(argparse.Action):
    """`--x-stdin`: remembers which secret to read, in the order the flags are given."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        order: list[str] = getattr(namespace, SECRET_ORDER, None) or []
        setattr(namespace, SECRET_ORDER, [*order, self.dest.removeprefix(SETTING)])


def setting_arguments(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    secret_fields: frozenset[str],
    *,
    change: bool,
) -> None:
    """A flag for each field of `model` (`change`: the help names no defaults or required
    fields, what is not given stays as it is)."""
    parser.set_defaults(**{SECRET_ORDER: []})
    for name, info in model.model_fields.items():
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("cli") is False:
            continue  # set through the API or the config file only (nested values)
        flag = flag_of(name, info)
        dest = SETTING + name
        text = info.description or name
        if not change and info.is_required():
            text += " (required)"
        elif not change and info.default not in (None, "", PydanticUndefined):
            default = info.default.value if isinstance(info.default, enum.Enum) else info.default
            text += f" (default {default})"
        # argparse formats help with %: a default such as \d{5} or 100% must not be read so.
        text = text.replace("%", "%%")
        if name in secret_fields:
            parser.add_argument(
                f"--{flag}-stdin", action=_SecretFromStdin, dest=dest, help=f"read {text} "
                "from stdin, one line",
            )  # fmt: skip
            continue
        kind, multiple = kind_of(info.annotation)
        if kind is bool:
            parser.add_argument(
                f"--{flag}", action=argparse.BooleanOptionalAction, dest=dest, help=text
            )
        elif isinstance(kind, tuple):
            parser.add_argument(
                f"--{flag}",
                dest=dest,
                choices=kind,
                action="append" if multiple else "store",
                help=text,
            )
        else:
            parser.add_argument(
                f"--{flag}",
                dest=dest,
                type=kind,
                action="append" if multiple else "store",
                metavar=name.upper(),
                help=text + (" (repeat for each)" if multiple else ""),
            )


def kind_of(annotation: Any) -> tuple[Any, bool]:
    """What a flag's value is (a type, or a tuple of choices) and whether it repeats."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kind_of(options[0]) if len(options) == 1 else (str, False)
    if origin in (list, tuple, set, frozenset):
        inner = get_args(annotation)
        kind, _ = kind_of(inner[0] if inner else str)
        return kind, True
    if origin is Literal:
        return tuple(str(arg) for arg in get_args(annotation)), False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(str(member.value) for member in annotation), False
    if annotation in (bool, int, float):
        return annotation, False
    return str, False


def given_settings(
    args: argparse.Namespace, model: type[BaseModel], secret_fields: frozenset[str]
) -> dict[str, Any]:
    """The settings given as flags, then the secrets read from stdin in their flags' order."""
    given = {
        name: getattr(args, SETTING + name)
        for name in model.model_fields
        if name not in secret_fields and getattr(args, SETTING + name, None) is not None
    }
    for name in getattr(args, SECRET_ORDER, None) or []:
        given[name] = read_secret(f"--{flag_of(name, model.model_fields[name])}-stdin", name)
    return given


def read_secret(flag: str, name: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(f"{name}: ")
    line = sys.stdin.readline()
    if not line:
        raise InvalidInput(
            f"{flag}: no line left on stdin (give one line per --...-stdin flag, in their order)"
        )
    return line.rstrip("\r\n")


def in_flags(
    exc: InvalidInput,
    model: type[BaseModel] | None,
    secret_fields: frozenset[str],
    renamed: Mapping[str, str] | None = None,
) -> InvalidInput:
    """The error with each field named by its flag ("--imap-port: ..."), on one line;
    `renamed` gives the flags of fields that are not settings ({"queue_id": "queue"})."""
    fields = model.model_fields if model is not None else {}
    problems = []
    for field, message in exc.fields.items():
        name = field.removeprefix("settings.")
        if name in fields:
            flag = flag_of(name, fields[name])
            flag += "-stdin" if name in secret_fields else ""
        else:
            flag = (renamed or {}).get(name, name).replace("_", "-")
        problems.append(f"--{flag}: {message}")
    return InvalidInput("; ".join(problems) or exc.message)
