"""The targets file behind ``/probe?target=NAME``: named targets, so credentials never travel in URLs.

```yaml
targets:
  orders-db:
    postgres_dsn_file: /run/secrets/orders_dsn   # or postgres_dsn: postgresql://...
  sessions-cache:
    redis_url: redis://cache:6379/0
```

Any key ending in ``_file`` is replaced by the contents of that file (for secrets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .options import OptionError, read_yaml

__all__ = ["load_targets_file"]


def load_targets_file(path: str) -> dict[str, dict[str, Any]]:
    """Named target entries, with ``*_file`` keys resolved; errors name the file and the key."""
    document = read_yaml(path, "--targets-file")
    targets = (document or {}).get("targets") if isinstance(document, dict) else None
    if not isinstance(targets, dict):
        raise OptionError(f"--targets-file: {path!r} needs a top-level `targets:` mapping of name -> settings")
    entries: dict[str, dict[str, Any]] = {}
    for name, entry in targets.items():
        if not isinstance(entry, dict):
            raise OptionError(f"--targets-file: target {name!r} must be a mapping")
        resolved: dict[str, Any] = {}
        for key, value in entry.items():
            if key.endswith("_file"):
                try:
                    resolved[key[: -len("_file")]] = Path(str(value)).read_text().strip()
                except OSError as error:
                    raise OptionError(f"--targets-file: target {name!r}, {key}: cannot read {value!r}: "
                                      f"{error.strerror}") from None
            else:
                resolved[key] = value
        entries[str(name)] = resolved
    return entries
