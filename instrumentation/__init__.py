"""Drop-in instrumentation for FastAPI/ASGI services (see docs/instrumentation.md)."""
