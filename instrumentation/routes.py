"""The ``http_route`` label: the matched route template, read from the scope after routing.

The routers leave what they matched in the request scope: ``scope["route"]`` is the innermost
route, every ``Mount`` on the way appended its matched prefix to ``scope["root_path"]``, and
FastAPI's lazily included routers record the full prefixed template of the route in their
effective route context. A mount's own path parameters are put back into that prefix as
``{name}`` (from ``scope["path_params"]``). Nothing is matched again. Requests that no route
matched share one label value, ``UNMATCHED``, unless a mount matched (static files, a 404 below
a mount): then the mount's template is the label. The number of distinct templates is capped
(``OTHER`` beyond the cap), which also bounds what a parameter could not be put back for.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["OTHER", "UNMATCHED", "RouteTemplates", "route_path", "routes_serve"]

UNMATCHED = "UNMATCHED"
OTHER = "OTHER"
_PARAM = re.compile(r"{(\w+)")


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
        root = scope.get("root_path", "")
        prefix = root[len(entry_root):] if root.startswith(entry_root) else ""
        context = None
        mount_only = route is None or route is entry_route
        if mount_only:
            # No route matched. When a mount did (static files, a 404 below a mount: FastAPI
            # records no route for a mount), its prefix is the template, as peers label it.
            route = scope.get("endpoint") if prefix else None
            if route is None:
                return UNMATCHED
        else:
            extra = scope.get("fastapi")
            context = extra.get("effective_route_context") if type(extra) is dict else None
        key = (id(route), id(context), prefix)
        found = self._cache.get(key)
        if found is not None:
            return found[0]
        if mount_only:
            template = _prefix_template(prefix, scope.get("path_params"), ()) or "/"
        else:
            template = self._resolve(route, context, prefix, scope.get("path_params"))
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
    def _resolve(route: Any, context: Any, prefix: str, path_params: Any) -> str:
        if hasattr(route, "routes") and not hasattr(route, "endpoint"):  # a Mount that was the last match
            return _prefix_template(prefix, path_params, ()) or getattr(route, "path", "") or "/"
        path = str(getattr(context, "path_format", None) or getattr(route, "path_format", None)
                   or getattr(route, "path", "") or "")
        return (_prefix_template(prefix, path_params, _PARAM.findall(path)) + path) or "/"


def _prefix_template(prefix: str, path_params: Any, own: Any) -> str:
    """``prefix`` (the concrete path that mounts matched) with the mounts' parameters as ``{name}``.

    A mount's path parameters are the scope's ``path_params`` that the matched route does not
    declare itself (``own``), in the order the mounts matched them; each replaces the next path
    segment holding its value, so ``/tenants/acme`` below ``Mount("/tenants/{tenant}")`` becomes
    ``/tenants/{tenant}``, or, when no segment is the value, the value's last occurrence within
    the next segment holding it (``/v2`` below ``Mount("/v{version}")`` becomes ``/v{version}``).
    (A value that equals a literal segment before it lands there instead: still one label value
    per such coincidence, not one per request.)
    """
    if not prefix or not path_params:
        return prefix
    params = [(name, str(value)) for name, value in path_params.items() if name not in own]
    if not params:
        return prefix
    segments = prefix.split("/")
    start = 1
    for name, value in params:
        if not value:
            continue
        index = next((i for i in range(start, len(segments)) if segments[i] == value), None)
        if index is None:
            index = next((i for i in range(start, len(segments)) if value in segments[i]), None)
            if index is None:
                continue
        head, _, tail = segments[index].rpartition(value)
        segments[index] = head + "{" + name + "}" + tail
        start = index + 1
    return "/".join(segments)


def route_path(scope: Any) -> str:
    """The path below ``root_path`` (the part the app routes on)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


def routes_serve(routes: Any, path: str) -> bool:
    """Whether one of the app's ``routes`` answers ``GET path`` (or ``path`` with another method).

    Matched the way the router matches, into mounts (a mount of an app without routes, such as
    ``StaticFiles`` at ``/``, does not count) and FastAPI's included routers.
    """
    from starlette.routing import Match, Mount

    scope: dict[str, Any] = {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": []}

    def search(candidates: Any, scope: dict[str, Any]) -> bool:
        for route in candidates:
            match, child = route.matches(scope)
            if match is Match.NONE:
                continue
            if not isinstance(route, Mount):
                return True
            if search(route.routes, {**scope, **child}):
                return True
        return False

    return search(routes, scope)
