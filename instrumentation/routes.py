"""The ``http_route`` label: the matched route template, read from the scope after routing.

The routers leave what they matched in the request scope: ``scope["route"]`` is the innermost
route, every ``Mount`` on the way appended its matched prefix to ``scope["root_path"]``, and
FastAPI's lazily included routers record the full prefixed template of the route in their
effective route context. Nothing is matched again. Requests that no route matched share one
label value, ``UNMATCHED``; and the number of distinct templates is capped (``OTHER`` beyond the
cap), which bounds cardinality even for mounts with path parameters.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OTHER", "UNMATCHED", "RouteTemplates", "route_path"]

UNMATCHED = "UNMATCHED"
OTHER = "OTHER"


class RouteTemplates:
    """Resolves and memoizes templates; at most ``limit`` distinct values."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._values: set[str] = set()
        # id-keyed (routes need not be hashable); the value keeps the objects alive, so ids stay unique.
        self._cache: dict[tuple[int, int, str], tuple[str, Any, Any]] = {}

    def template(self, scope: Any, entry_route: Any, entry_root: str) -> str:
        """The template of the route that served ``scope``; ``entry_*`` are the values before routing."""
        route = scope.get("route")
        if route is None or route is entry_route:
            return UNMATCHED
        root = scope.get("root_path", "")
        prefix = root[len(entry_root):] if root.startswith(entry_root) else ""
        extra = scope.get("fastapi")
        context = extra.get("effective_route_context") if type(extra) is dict else None
        key = (id(route), id(context), prefix)
        found = self._cache.get(key)
        if found is not None:
            return found[0]
        template = self._resolve(route, context, prefix)
        if template not in self._values:
            if len(self._values) >= self.limit:
                template = OTHER
            else:
                self._values.add(template)
        if len(self._cache) >= 4 * self.limit:
            self._cache.clear()
        self._cache[key] = (template, route, context)
        return template

    @staticmethod
    def _resolve(route: Any, context: Any, prefix: str) -> str:
        if hasattr(route, "routes") and not hasattr(route, "endpoint"):  # a Mount that was the last match
            return prefix or getattr(route, "path", "") or "/"
        path = getattr(context, "path_format", None) or getattr(route, "path_format", None) or getattr(route, "path", "")
        return (prefix + str(path or "")) or "/"


def route_path(scope: Any) -> str:
    """The path below ``root_path`` (the part the app routes on)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path
