"""One module per dashboard; each exposes ``build() -> grafanalib.core.Dashboard``."""
