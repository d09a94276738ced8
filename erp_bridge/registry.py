"""The kinds of ERP omnicrm connects to, by name: each is a module of `erp_bridge` exposing
`KIND` (an `erp_bridge.base.ErpKind`). Adding one is a module and a line here."""

from __future__ import annotations

import importlib

from erp_bridge.base import ErpKind

MODULES = {
    "embedded": "erp_bridge.embedded",
    "odoo": "erp_bridge.odoo",
    "erpnext": "erp_bridge.erpnext",
    "onec": "erp_bridge.onec",
}


def kinds() -> dict[str, ErpKind]:
    """Every kind whose module is installed, by name."""
    found = {}
    for name, module in MODULES.items():
        try:
            kind = importlib.import_module(module).KIND
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        if not isinstance(kind, ErpKind) or kind.name != name:
            raise TypeError(f"{module}.KIND must be the ErpKind named {name!r}")
        found[name] = kind
    return found


def kind(name: str) -> ErpKind | None:
    return kinds().get(name)
