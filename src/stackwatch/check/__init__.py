"""``stackwatch check``: the backend performance checklist evaluated against live systems.

Each source module (:mod:`.postgres`, :mod:`.redis`, :mod:`.prometheus`, :mod:`.app`) declares
its checklist items and yields one :class:`~.model.Finding` per item; :mod:`.runner` runs them
under one deadline and :mod:`.render` prints the report. See ``docs/check.md``.
"""

from .model import Finding, Item, Status

__all__ = ["Finding", "Item", "Status"]
