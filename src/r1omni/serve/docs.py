"""The API's documentation pages, served offline: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with the
scripts, stylesheet and icon of the ``fastapi-offline`` wheel.

:func:`docs_app` is FastAPI with fastapi-offline's ``/docs`` (Swagger UI's validator badge, which the
page would fetch from swagger.io, switched off). ``/redoc`` is added here rather than taken from
fastapi-offline, because ReDoc's script links its sidebar logo from ``cdn.redoc.ly`` in every release:
the copy served at :data:`REDOC_SCRIPT_URL` points it at the local icon instead, so neither page asks
another host for anything (``tests/serve/test_browser.py`` watches every request).

Not here: the OpenAPI document itself (``r1omni.serve.app``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline

__all__ = ["docs_app", "REDOC_SCRIPT_URL"]

_ASSETS = Path(fastapi_offline.__file__).with_name("static")
_ASSETS_URL = "/static-offline-docs"   # where FastAPIOffline mounts its assets (its default)
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_SCRIPT_URL = "/redoc.standalone.js"


def docs_app(**fastapi_kwargs: Any) -> FastAPI:
    """``FastAPI(**fastapi_kwargs)`` with ``/docs`` and ``/redoc`` served offline (module docstring)."""
    app = FastAPIOffline(redoc_url=None, static_url=_ASSETS_URL, favicon_url=None,
                         swagger_ui_parameters={"validatorUrl": None}, **fastapi_kwargs)
    script = (_ASSETS / "redoc.standalone.js").read_text(encoding="utf-8")

    @app.get(REDOC_SCRIPT_URL, include_in_schema=False)
    async def redoc_script(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return Response(script.replace(_REDOC_LOGO, f"{root}{_ASSETS_URL}/favicon.png"),
                        media_type="application/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{REDOC_SCRIPT_URL}", with_google_fonts=False,
                              redoc_favicon_url=f"{root}{_ASSETS_URL}/favicon.png")

    return app
