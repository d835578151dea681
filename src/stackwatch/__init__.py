"""stackwatch: the backend performance checklist, made observable and enforceable.

Sub-packages:

* :mod:`stackwatch.exporters` -- PostgreSQL, Redis and process exporters (``stackwatch exporter``).
* :mod:`stackwatch.instrumentation` -- drop-in instrumentation for FastAPI/ASGI services.
* :mod:`stackwatch.thresholds` -- the checklist thresholds shared by alerts, dashboards and checks.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
