"""The pages and static files as the server hands them out (no browser needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import UserFactory
from web.routes_pages import STATIC_DIR, _read_static

PAGES = sorted(STATIC_DIR.rglob("*.html"))
MODULES = sorted(STATIC_DIR.rglob("*.js"))
IMPORT = re.compile(r"""^\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']""", re.MULTILINE)


def test_the_pages_hold_no_inline_code_the_policy_would_block() -> None:
    assert {path.relative_to(STATIC_DIR).as_posix() for path in PAGES} == {
        "login.html",
        "console/index.html",
        "monitor/index.html",
        "pipeline/index.html",
        "reports/index.html",
        "admin/index.html",
    }
    for path in PAGES:
        page = path.read_text("utf-8")
        scripts = re.findall(r"<script\b[^>]*>", page)
        assert scripts, path
        assert all(' src="/static/' in tag and 'type="module"' in tag for tag in scripts), path
        bodies = re.findall(r"<script\b[^>]*>(.*?)</script>", page, re.DOTALL)
        assert len(bodies) == len(scripts), path
        assert not any(body.strip() for body in bodies), f"inline script in {path}"
        assert not re.search(r"\son[a-z]+\s*=", page), f"inline event handler in {path}"
        assert not re.search(r"\sstyle\s*=", page), f"inline style in {path}"
        assert not re.search(r"https?://", page), f"a URL off this site in {path}"


def test_every_module_import_and_page_asset_exists() -> None:
    for module in MODULES:
        for target in IMPORT.findall(module.read_text("utf-8")):
            assert target.startswith("."), f"{module}: only relative imports ({target})"
            assert (module.parent / target).resolve().is_file(), f"{module}: {target}"
    for page in PAGES:
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.read_text("utf-8")):
            assert (STATIC_DIR / asset.removeprefix("/static/")).is_file(), f"{page}: {asset}"


async def test_pages_carry_a_strict_content_security_policy(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/login")
    assert response.status == 200
    policy = response.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in policy
    assert "unsafe" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_static_files_are_served_with_types_and_revalidation(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/static/console/main.js")
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert "import" in await response.text()
    etag = response.headers["ETag"]
    again = await client.get("/static/console/main.js", headers={"If-None-Match": etag})
    assert again.status == 304
    css = await client.get("/static/common/base.css")
    assert css.content_type == "text/css"


@pytest.mark.parametrize(
    "path",
    [
        "/static/console/index.html",  # pages only through their routes (and role checks)
        "/static/nothing-here.js",
        "/static/%2e%2e/routes_pages.py",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/console/%2e%2e/%2e%2e/%2e%2e/tests/browser/conftest.js",
        "/static/..%2f..%2fapp.js",
    ],
)
async def test_static_route_serves_nothing_outside_its_files(
    client: TestClient[Any, Any], path: str
) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_pages_send_the_signed_out_to_sign_in_and_check_roles(
    client: TestClient[Any, Any], make_user: UserFactory
) -> None:
    for path in ("/console/", "/monitor/", "/pipeline/", "/reports/"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == f"/login?next={path}"
    for path in ("/console", "/pipeline", "/reports"):
        response = await client.get(path, allow_redirects=False)
        assert response.headers["Location"] == f"{path}/"

    operator = await make_user("operator")
    response = await operator.get("/console/")
    assert response.status == 200
    assert '<main id="conversation"' in await response.text()
    response = await operator.get("/monitor/")
    assert response.status == 403
    assert response.content_type == "text/html"
    page = await response.text()
    assert "Supervisors only" in page
    assert "/static/monitor/main.js" not in page
    assert (await operator.get("/api/v1/monitor")).status == 403

    response = await operator.get("/reports/")
    assert response.status == 403
    page = await response.text()
    assert "Supervisors only" in page
    assert "/static/reports/main.js" not in page
    assert (await operator.get("/api/v1/reports")).status == 403

    for role in ("supervisor", "admin"):
        user = await make_user(role)
        response = await user.get("/monitor/")
        assert response.status == 200
        assert "/static/monitor/main.js" in await response.text()
        response = await user.get("/reports/")
        assert response.status == 200
        assert "/static/reports/main.js" in await response.text()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]

    # The sales pipeline board is every operator's, under the same policy.
    for role in ("operator", "supervisor", "admin"):
        user = operator if role == "operator" else await make_user(role)
        response = await user.get("/pipeline/")
        assert response.status == 200
        assert "/static/pipeline/main.js" in await response.text()
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"


def test_static_reads_only_files_inside_the_static_directory() -> None:
    assert _read_static("console/main.js") == (STATIC_DIR / "console/main.js").read_bytes()
    # The file exists, but outside: refused, however the path is spelled.
    assert (STATIC_DIR.parent / "app.py").is_file()
    for path in ("../app.py", "console/../../app.py", str(STATIC_DIR.parent / "app.py")):
        assert _read_static(path) is None
    assert _read_static("console") is None  # a directory
