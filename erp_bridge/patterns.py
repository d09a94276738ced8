"""How an ERP's order numbers look: its `order_number_pattern`, compiled once, the same way
for every use (settings validation, the search box, the status link, automatic answers).

Patterns run on RE2, in linear time whatever an admin wrote, within a bounded memory.
"""

from __future__ import annotations

from typing import Any

import re2

# RE2's memory for one compiled pattern: a counted repeat past it is refused when compiled.
MAX_MEMORY = 1 << 20


def compile_pattern(pattern: str, *, case_sensitive: bool = True) -> Any:
    """`pattern` on RE2; ValueError "not a valid regular expression: <RE2's reason>"."""
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    options.max_mem = MAX_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else str(exc)
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise ValueError(f"not a valid regular expression: {text}") from None


def pattern_of(adapter: object, default: str) -> str:
    """The adapter's `settings.order_number_pattern`, or `default` when it has none."""
    pattern = getattr(getattr(adapter, "settings", None), "order_number_pattern", None)
    return pattern if isinstance(pattern, str) and pattern else default
