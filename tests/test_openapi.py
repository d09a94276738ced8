"""The OpenAPI document: one schema per name (a collision stops the build), and every
operation lists the error answers it can give, with the error schema."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel

from core.models import Role
from core.settings import Settings
from web.api import ADMINS, PATH_PARAM, PUBLIC, ApiRoutes, RouteDoc
from web.app import create_app
from web.openapi import ROUTE_DOCS, SchemaNameCollision, build_document


def doc(path: str, **fields: Any) -> RouteDoc:
    values: dict[str, Any] = {
        "method": "POST",
        "path": path,
        "summary": path,
        "roles": ADMINS,
        "body": None,
        "query": None,
        "response": None,
        "status": 200,
        "tag": "test",
        **fields,
    }
    return RouteDoc(**values)


def two_models_named(name: str) -> tuple[type[BaseModel], type[BaseModel]]:
    first = type(name, (BaseModel,), {"__annotations__": {"password": str}})
    second = type(
        name, (BaseModel,), {"__annotations__": {"current_password": str, "new_password": str}}
    )
    return first, second


def test_two_bodies_with_one_name_stop_the_build() -> None:
    first, second = two_models_named("PasswordBody")
    with pytest.raises(SchemaNameCollision, match="PasswordBody"):
        build_document([doc("/a", body=first), doc("/b", body=second)])


def test_two_nested_models_with_one_name_stop_the_build() -> None:
    first, second = two_models_named("Item")
    outer_a = type("OuterA", (BaseModel,), {"__annotations__": {"item": first}})
    outer_b = type("OuterB", (BaseModel,), {"__annotations__": {"item": second}})
    with pytest.raises(SchemaNameCollision, match="Item"):
        build_document([doc("/a", response=outer_a), doc("/b", response=outer_b)])


def test_one_model_used_twice_is_one_schema() -> None:
    first, _ = two_models_named("PasswordBody")
    document = build_document([doc("/a", body=first), doc("/b", body=first)])
    assert set(document["components"]["schemas"]["PasswordBody"]["properties"]) == {"password"}


def test_an_unknown_error_status_is_refused_where_the_route_is_declared() -> None:
    routes = ApiRoutes(tag="test")
    with pytest.raises(ValueError, match="418"):
        routes.post("/teapot", summary="x", errors=(418,))


@pytest.fixture(scope="module")
def route_docs() -> list[RouteDoc]:
    """The application's route declarations (building it opens no database)."""
    app = create_app(Settings(secret_key="x" * 16), background_workers=False)
    return app[ROUTE_DOCS]


@pytest.fixture(scope="module")
def document(route_docs: list[RouteDoc]) -> dict[str, Any]:
    built = build_document(route_docs)
    validate(built)
    return built


def body_properties(document: dict[str, Any], path: str) -> set[str]:
    schema = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    name = schema["schema"]["$ref"].rsplit("/", 1)[1]
    return set(document["components"]["schemas"][name]["properties"])


def test_changing_ones_password_documents_its_own_body(document: dict[str, Any]) -> None:
    assert body_properties(document, "/api/v1/auth/password") == {
        "current_password",
        "new_password",
    }
    assert body_properties(document, "/api/v1/operators/{id}/password") == {"password"}


def statuses(document: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(status) for status in document["paths"][path][method]["responses"]}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("get", "/api/v1/contacts/{id}", {200, 401, 403, 404}),
        ("patch", "/api/v1/contacts/{id}", {200, 400, 401, 403, 404, 409, 413}),
        ("post", "/api/v1/forms", {201, 400, 401, 403, 409, 413}),
        ("delete", "/api/v1/channel-accounts/{id}", {200, 401, 403, 404, 409}),
        ("post", "/api/v1/offers/{id}/accept", {200, 401, 403, 404, 409}),
        ("get", "/api/v1/contacts", {200, 400, 401, 403}),
        ("post", "/forms/{slug}", {201, 400, 404, 413, 415, 429}),
        ("get", "/static/{path}", {200, 404}),
        ("get", "/healthz", {200, 503}),
        ("get", "/metrics", {200, 401, 403}),
    ],
)
def test_operations_list_their_error_answers(
    document: dict[str, Any], method: str, path: str, expected: set[int]
) -> None:
    assert statuses(document, method, path) == expected


def test_every_error_answer_has_the_error_schema_and_roles_imply_401_and_403(
    document: dict[str, Any], route_docs: list[RouteDoc]
) -> None:
    declared = {(d.method.lower(), PATH_PARAM.sub(r"{\1}", d.path)): d for d in route_docs}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            route = declared[(method, path)]
            for status, answer in responses.items():
                if int(status) >= 400 and status != "503":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
            if route.roles != PUBLIC:
                assert {"401", "403"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
            if route.body is not None:
                assert {"400", "413"} <= set(responses), (method, path)


def test_ids_in_paths_are_documented_as_integers(document: dict[str, Any]) -> None:
    [parameter] = document["paths"]["/api/v1/contacts/{id}"]["get"]["parameters"]
    assert parameter["schema"]["type"] == "integer"
    slug = document["paths"]["/forms/{slug}"]["get"]["parameters"][0]
    assert slug["schema"]["type"] == "string"


def test_the_health_answer_is_documented_for_both_statuses(document: dict[str, Any]) -> None:
    responses = document["paths"]["/healthz"]["get"]["responses"]
    assert responses["200"]["content"] == responses["503"]["content"]
    assert Role.ADMIN not in document["paths"]["/healthz"]["get"].get("description", "")
