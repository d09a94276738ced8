"""`omnicrm suggestions rebuild|embed`: the suggestion index, from the command line.

- `suggestions rebuild`: indexes every source afresh (resolved conversations' replies, canned
  responses, knowledge articles; core/suggestions/index.py), a batch per transaction, with a
  progress bar on stderr (plain counts when it is not a terminal), then the semantic
  engine's vectors when that engine is installed and chosen; a summary line on stdout.
  Indexing happens by itself as conversations are resolved: a rebuild is for a database
  filled before this version, or after changing what is indexed.
- `suggestions embed`: only the vectors the semantic engine lacks.
"""

# ruff: noqa: T201 - a CLI talks to its user on stdout and stderr

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from web.cli_common import CliError, ProgressBar, add_command, database

if TYPE_CHECKING:
    from core.settings import Settings

# The suggestion engines are imported when a command runs: `omnicrm --help` builds this
# parser and must not load the database layer (tests/test_cli_admin.py).


def add_suggestion_commands(commands: Any) -> None:
    group = commands.add_parser("suggestions", help="the index of suggested replies")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_command(
        actions,
        "rebuild",
        "index every resolved conversation, canned response and article afresh",
        cmd_rebuild,
    )
    add_command(actions, "embed", "make the semantic engine's missing vectors", cmd_embed)


async def _embed(settings: Settings, sessions: Any) -> int | None:
    from core.suggestions.engines import build_service
    from core.suggestions.semantic import SemanticEngine, embed_pending

    engine = build_service(settings.suggestion_engine).engines.get("semantic")
    if not isinstance(engine, SemanticEngine):
        return None
    print("making the semantic engine's vectors (the model loads first)...", file=sys.stderr)
    return await embed_pending(sessions, engine)


async def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from core.suggestions import index

    bar = ProgressBar("indexing", "sources", sys.stderr, every=500)
    async with database(settings) as sessions:
        try:
            documents = await index.rebuild(sessions, bar.update)
        finally:
            bar.close()
        embedded = await _embed(settings, sessions)
    vectors = "" if embedded is None else f", {embedded} vectors made"
    print(f"suggestion index rebuilt: {documents} answers{vectors}")
    return 0


async def cmd_embed(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as sessions:
        embedded = await _embed(settings, sessions)
    if embedded is None:
        raise CliError(
            "the semantic engine is not in use (suggestion_engine) or not installed "
            "(pip install 'omnicrm[semantic]')"
        )
    print(f"{embedded} vectors made")
    return 0
