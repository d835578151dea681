"""Attributes set on another library's objects, and how to put them back (``uninstrument_*``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["patch_attribute"]


def patch_attribute(target: Any, name: str, value: Any) -> Callable[[], None]:
    """Set ``target.<name>`` to ``value``; returns what undoes it: the object's own previous value
    is put back, or, when it had none (a method of its class), the instance attribute is removed."""
    own = vars(target)
    had, previous = name in own, own.get(name)
    setattr(target, name, value)

    def undo() -> None:
        if had:
            setattr(target, name, previous)
        else:
            delattr(target, name)

    return undo
