# One image for the stackwatch exporter (`stackwatch exporter`, the default command), the
# demo service (`uvicorn demo.app:app`), its worker (`rq worker reports`) and its load generator
# (`python -m demo.loadgen`).
# Build: docker build -t stackwatch:local .   (docker compose builds it for you)

FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
COPY . .
# Wheels for stackwatch, the server for the demo (uvicorn), the load generator's client
# (httpx) and the demo worker's queue (rq), with every dependency: the runtime stage installs without a network
# or compiler and without the sources.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[fastapi,sentry]" "uvicorn>=0.29" "httpx>=0.27" "rq>=2"

FROM python:3.11.10-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app stackwatch
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl && rm -rf /wheels
WORKDIR /app
# The demo application is an example, not part of the stackwatch distribution.
COPY --chown=root:root demo /app/demo
USER 10001:10001
EXPOSE 9188 8000
CMD ["stackwatch", "exporter", "--listen", "0.0.0.0:9188"]
