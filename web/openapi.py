"""The OpenAPI 3.1 document, generated from the routes' declarations."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from web.api import PUBLIC, RouteDoc

ROUTE_DOCS: web.AppKey[list[RouteDoc]] = web.AppKey("route_docs", list[RouteDoc])
_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def _schema(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    name = getattr(annotation, "__name__", None)
    # Component names allow letters, digits, ".", "-", "_": Page[ContactOut] -> Page_ContactOut
    title = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") if name else None
    if schema.get("type") == "object" and title and "properties" in schema:
        components[title] = schema
        return {"$ref": _REF.format(model=title)}
    return schema


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
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(doc.path)
    ]
    if doc.query is not None:
        # The model's own schema keeps each field's limits (ge, le, max_length, enums).
        query_schema = doc.query.model_json_schema(ref_template=_REF)
        components.update(query_schema.pop("$defs", {}))
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
    responses["400"] = _error_response("malformed request")
    if doc.roles:
        responses["401"] = _error_response("not signed in")
        responses["403"] = _error_response("role not allowed, or CSRF token missing")
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
        path = _PATH_PARAM.sub(r"{\1}", doc.path)
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


__all__ = ["PUBLIC", "ROUTE_DOCS", "build_document"]
