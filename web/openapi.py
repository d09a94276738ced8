"""The OpenAPI 3.1 document, generated from the routes' declarations.

Invariants: every schema name in `components` stands for one schema (two different models
that would share a name stop the build with `SchemaNameCollision`, instead of one silently
replacing the other); every operation lists each error status it can answer
(`RouteDoc.error_statuses`) with the JSON error schema.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from core.pagination import MAX_ID
from web.api import ERROR_STATUSES, PATH_PARAM, PUBLIC, RouteDoc, id_params

ROUTE_DOCS: web.AppKey[list[RouteDoc]] = web.AppKey("route_docs", list[RouteDoc])
_REF = "#/components/schemas/{model}"


class SchemaNameCollision(ValueError):
    """Two different schemas would be published under one component name."""


def _add_component(components: dict[str, Any], name: str, schema: Any) -> None:
    known = components.get(name)
    if known is not None and known != schema:
        raise SchemaNameCollision(
            f"two different models are named {name!r} in the OpenAPI document; rename one"
        )
    components[name] = schema


def _add_definitions(components: dict[str, Any], schema: dict[str, Any]) -> None:
    for name, definition in schema.pop("$defs", {}).items():
        _add_component(components, name, definition)


def _schema(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema(ref_template=_REF)
    _add_definitions(components, schema)
    name = getattr(annotation, "__name__", None)
    # Component names allow letters, digits, ".", "-", "_": Page[ContactOut] -> Page_ContactOut
    title = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") if name else None
    if schema.get("type") == "object" and title and "properties" in schema:
        _add_component(components, title, schema)
        return {"$ref": _REF.format(model=title)}
    return schema


def _path_parameter(name: str, ids: tuple[str, ...]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if name in ids:
        schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }


def _operation(doc: RouteDoc, components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": doc.summary,
        "operationId": f"{doc.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', doc.path.lower())}",
        "tags": [doc.tag],
    }
    ids = id_params(doc.path)
    parameters = [_path_parameter(name, ids) for name in PATH_PARAM.findall(doc.path)]
    if doc.query is not None:
        # The model's own schema keeps each field's limits (ge, le, max_length, enums).
        query_schema = doc.query.model_json_schema(ref_template=_REF)
        _add_definitions(components, query_schema)
        properties = query_schema.get("properties", {})
        required = set(query_schema.get("required", []))
        for name, field in doc.query.model_fields.items():
            key = field.alias or name
            parameters.append(
                {
                    "name": key,
                    "in": "query",
                    "required": key in required,
                    "description": field.description or "",
                    "schema": properties.get(key, {}),
                }
            )
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(doc.body, components)}},
        }
    success: dict[str, Any] = {"description": "success"}
    if doc.response is not None and doc.status != 204:
        success["content"] = {"application/json": {"schema": _schema(doc.response, components)}}
    responses: dict[str, Any] = {str(doc.status): success}
    for status in sorted(doc.also):
        responses[str(status)] = {**success, "description": "answered with the same body"}
    for status in doc.error_statuses:
        responses[str(status)] = _error_response(ERROR_STATUSES[status])
    if doc.roles:
        operation["security"] = [{"session": []}, {"bearer": []}]
        operation["description"] = "Roles: " + ", ".join(sorted(doc.roles))
    else:
        operation["security"] = []
    operation["responses"] = responses
    return operation


def build_document(docs: list[RouteDoc]) -> dict[str, Any]:
    components: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "fields"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
            },
        }
    }
    paths: dict[str, Any] = {}
    for doc in docs:
        path = PATH_PARAM.sub(r"{\1}", doc.path)
        paths.setdefault(path, {})[doc.method.lower()] = _operation(doc, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "omnicrm", "version": "1", "description": "omnicrm REST API"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "omnicrm_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


__all__ = ["PUBLIC", "ROUTE_DOCS", "SchemaNameCollision", "build_document"]
