"""The ``http_route`` label of requests that only a mount matched, and of mount parameters inside a segment."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stackwatch.instrumentation import instrument

from .test_middleware import client, count, routes_seen


async def test_fastapi_static_files_are_labelled_by_their_mount(registry, clean_env, tmp_path):
    (tmp_path / "app.css").write_text("body {}")
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> int:
        return item_id

    app.mount("/static", StaticFiles(directory=tmp_path), name="static")
    sub = FastAPI()

    @sub.get("/reports/{report_id}")
    async def report(report_id: str) -> str:
        return report_id

    app.mount("/admin", sub)
    instrument(app, registry=registry, traces=False, environ=clean_env)
    async with client(app) as c:
        for _ in range(3):
            assert (await c.get("/static/app.css")).status_code == 200
        assert (await c.get("/static/missing.css")).status_code == 404
        assert (await c.get("/admin/nothing/here")).status_code == 404
        assert (await c.get("/nowhere")).status_code == 404
        assert (await c.get("/items/1")).status_code == 200
    assert count(registry, "GET", "/static", "200") == 3
    assert count(registry, "GET", "/static", "404") == 1
    assert count(registry, "GET", "/admin", "404") == 1
    assert count(registry, "GET", "UNMATCHED", "404") == 1
    assert routes_seen(registry) == {"/static", "/admin", "UNMATCHED", "/items/{item_id}"}


async def test_a_starlette_sub_app_404_below_a_fastapi_mount_is_labelled_by_the_mount(registry, clean_env):
    async def show(request):
        return PlainTextResponse("x")

    app = FastAPI()
    app.mount("/legacy", Starlette(routes=[Route("/page/{n}", show)]))
    instrument(app, registry=registry, traces=False, environ=clean_env)
    async with client(app) as c:
        assert (await c.get("/legacy/page/1")).status_code == 200
        assert (await c.get("/legacy/other")).status_code == 404
    assert routes_seen(registry) == {"/legacy/page/{n}", "/legacy"}


async def test_a_parameter_inside_a_mount_segment_stays_a_template(registry, clean_env):
    async def show(request):
        return PlainTextResponse("x")

    app = Starlette(routes=[Mount("/v{version}", routes=[Route("/items/{item_id}", show)]),
                            Mount("/tenants/{tenant}", routes=[Route("/t{n}", show)])])
    instrument(app, registry=registry, traces=False, environ=clean_env)
    async with client(app) as c:
        for i in range(1, 60):
            assert (await c.get(f"/v{i}/items/{i}")).status_code == 200
            assert (await c.get(f"/v{i}/missing")).status_code == 404
        for tenant in ("t", "n", "ten"):  # values that also occur within literal segments
            assert (await c.get(f"/tenants/{tenant}/t5")).status_code == 200
    assert routes_seen(registry) == {"/v{version}/items/{item_id}", "/v{version}", "/tenants/{tenant}/t{n}"}
    assert count(registry, "GET", "/v{version}/items/{item_id}", "200") == 59
