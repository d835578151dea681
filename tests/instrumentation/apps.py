"""Small FastAPI apps for the instrumentation tests: routers, mounts, errors."""

from __future__ import annotations

from typing import Any

import fastapi
from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse


def make_app(**fastapi_kwargs: Any) -> fastapi.FastAPI:
    """An app with plain routes, an included router, a mounted sub-app and failing endpoints.

    ``fastapi.FastAPI`` is looked up at call time, so ``FastAPIInstrumentor().instrument()``'s class
    patch applies as it does under ``opentelemetry-instrument``.
    """
    app = fastapi.FastAPI(**fastapi_kwargs)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/items")
    async def create() -> JSONResponse:
        return JSONResponse({"ok": True}, status_code=201)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise HTTPException(status_code=503, detail="down")

    @app.get("/sync/{name}")
    def sync(name: str) -> PlainTextResponse:
        return PlainTextResponse(name)

    router = APIRouter(prefix="/users")

    @router.get("/{user_id}/orders")
    async def orders(user_id: int) -> list[int]:
        return [user_id]

    app.include_router(router, prefix="/v1")

    sub = fastapi.FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: str) -> dict[str, str]:
        return {"report": report_id}

    app.mount("/admin", sub)
    return app
