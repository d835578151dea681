"""The targets file behind ``/probe?target=NAME``: named targets, so credentials never travel in URLs.

```yaml
targets:
  orders-db:
    postgres_dsn_file: /run/secrets/orders_dsn   # or postgres_dsn: postgresql://...
  sessions-cache:
    redis_url: redis://cache:6379/0
```

Each entry has exactly one target key (``postgres_dsn``, ``redis_url``, ``alertmanager_url``) or its ``_file`` twin,
which is replaced by the contents of that file (for secrets). Anything else (an unknown or
misspelled key, two kinds in one entry, a key given twice) is an error naming the entry and the
key: a typo never silently drops a target or a setting.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from stackwatch.core.options import OptionError, read_yaml
from stackwatch.core.redact import redact_text

__all__ = ["load_targets_file"]


def load_targets_file(path: str, keys: Collection[str]) -> dict[str, dict[str, Any]]:
    """Named target entries, each with one of ``keys`` (its ``_file`` twin resolved); errors
    name the file, the entry and the key."""
    document = read_yaml(path, "--targets-file")
    targets = (document or {}).get("targets") if isinstance(document, dict) else None
    if not isinstance(targets, dict):
        raise OptionError(f"--targets-file: {path!r} needs a top-level `targets:` mapping of name -> settings")
    unknown = sorted(str(key) for key in document if key != "targets")
    if unknown:
        raise OptionError(f"--targets-file: unknown top-level key {redact_text(unknown[0])!r} "
                          f"(only `targets:`)")
    known = ", ".join(f"{k}, {k}_file" for k in sorted(keys))
    entries: dict[str, dict[str, Any]] = {}
    for name, entry in targets.items():
        if not isinstance(entry, dict):
            raise OptionError(f"--targets-file: target {name!r} must be a mapping")
        resolved: dict[str, Any] = {}
        for key, value in entry.items():
            base = key[: -len("_file")] if str(key).endswith("_file") else key
            if base not in keys:
                raise OptionError(f"--targets-file: target {name!r}: unknown key {redact_text(str(key))!r} "
                                  f"(known: {known})")
            if base in resolved:
                raise OptionError(f"--targets-file: target {name!r}: {base} and {base}_file both given")
            resolved[base] = value if key == base else _read_secret(name, key, value)
        if len(resolved) != 1:
            given = " and ".join(sorted(resolved)) or "no target key"
            raise OptionError(f"--targets-file: target {name!r}: {given}; an entry is one target "
                              f"with one of: {known}")
        entries[str(name)] = resolved
    return entries


def _read_secret(name: object, key: str, path: object) -> str:
    try:
        return Path(str(path)).read_text().strip()
    except OSError as error:
        raise OptionError(f"--targets-file: target {name!r}, {key}: cannot read {redact_text(str(path))!r}: "
                          f"{error.strerror}") from None
