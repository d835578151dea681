"""Methods wrapped on another library's objects, and how the wrapping is undone (``uninstrument_*``).

Two instrumentations may wrap the same method (``instrument_psycopg`` and ``instrument_pool`` both
wrap a psycopg pool's ``getconn``), and either may be undone first. Undoing puts the previous
method back while the wrapper is still the outermost one; when another wrapper was added on top
since, ours stays in that chain and just passes calls through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["wrap_method"]


def wrap_method(target: Any, name: str, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[], None]:
    """Set ``target.<name>`` to ``wrap(<the current method>)``; returns what undoes it."""
    own = vars(target)
    had, previous = name in own, own.get(name)
    original = getattr(target, name)
    calls = [wrap(original)]  # what the installed method calls: the wrapper, or after undo the original

    async def method_async(*args: Any, **kwargs: Any) -> Any:
        return await calls[0](*args, **kwargs)

    def method_sync(*args: Any, **kwargs: Any) -> Any:
        return calls[0](*args, **kwargs)

    method = method_async if inspect.iscoroutinefunction(original) else method_sync
    setattr(target, name, method)

    def undo() -> None:
        calls[0] = original
        if vars(target).get(name) is not method:
            return  # wrapped again since: stay in the chain, passing through
        if had:
            setattr(target, name, previous)
        else:
            delattr(target, name)

    return undo
