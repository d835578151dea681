"""The stackwatch demo service: a small FastAPI app on PostgreSQL and Redis, plus a load generator.

Not part of the installed distribution; the container image copies this folder. Run it with
``uvicorn demo.app:app`` and load it with ``python -m demo.loadgen --target http://127.0.0.1:8000``.
"""
