"""The request duration ends when the response is sent: background tasks are not the client's wait."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse

from stackwatch.instrumentation import instrument

DURATION = "http_server_request_duration_seconds"


def duration_sum(registry, route: str) -> float:
    labels = {"http_request_method": "GET", "http_route": route, "http_response_status_code": "200"}
    return registry.get_sample_value(f"{DURATION}_sum", labels)


async def test_background_task_time_is_not_request_duration(registry, clean_env, serve):
    done: list[float] = []
    app = FastAPI()

    async def slow_job() -> None:
        started = time.perf_counter()
        await asyncio.sleep(1.0)
        done.append(time.perf_counter() - started)

    @app.get("/orders")
    async def orders(background: BackgroundTasks) -> dict[str, bool]:
        background.add_task(slow_job)
        return {"queued": True}

    async def chunks():
        for _ in range(3):
            await asyncio.sleep(0.1)
            yield b"x" * 10

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    instrument(app, registry=registry, traces=False, environ=clean_env)
    with serve(app) as url:
        with httpx.Client(base_url=url, timeout=10) as client:
            started = time.perf_counter()
            assert client.get("/orders").json() == {"queued": True}
            client_seconds = time.perf_counter() - started
            assert client.get("/stream").content == b"x" * 30
            deadline = time.monotonic() + 10
            while not done and time.monotonic() < deadline:
                time.sleep(0.05)
    assert done and done[0] >= 1.0  # the background task really ran, after the response
    assert client_seconds < 0.9
    assert duration_sum(registry, "/orders") < 0.9  # the old middleware measured >= 1.0 here
    assert duration_sum(registry, "/stream") >= 0.3  # a streamed body is measured to its last chunk
