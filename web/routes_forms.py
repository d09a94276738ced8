"""Web form administration API routes."""

from __future__ import annotations

from web.api import ApiRoutes

routes = ApiRoutes(tag="forms")
