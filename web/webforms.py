"""Public web forms: /forms/{slug} (a channel)."""

from __future__ import annotations

from web.api import ApiRoutes

routes = ApiRoutes(tag="forms")
