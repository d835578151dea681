"""The Alertmanager reader: which alerts reach a receiver, by severity (``alerts.py``).

``ALERTS`` in Prometheus counts a silenced or inhibited critical alert as firing; only
Alertmanager knows it pages nobody. One request per fast poll (``GET /api/v2/alerts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stackwatch.core.options import Option

from ..collector import Collector
from ..kinds import Common, ConnectedKind
from .alerts import AlertsCollector
from .target import AlertmanagerOptions, AlertmanagerSource, AlertmanagerTarget, check_url, url_name

__all__ = ["ADDRESS", "COLLECTORS", "KIND", "AlertmanagerOptions", "AlertmanagerTarget"]

COLLECTORS: Sequence[type[Collector[AlertmanagerSource]]] = (AlertsCollector,)

#: the Alertmanagers to read; every other option is declared on a field of :class:`AlertmanagerOptions`
ADDRESS = Option("--alertmanager-url", "STACKWATCH_ALERTMANAGER_URL",
                 "Alertmanager whose alerts to count by severity and state (active, silenced, inhibited): "
                 "http[s]://[user:password@]host:port[/prefix]; newline-separated in the environment",
                 repeat=True, secret=True, metavar="URL")


class _AlertmanagerKind(ConnectedKind[AlertmanagerOptions]):
    prefix = "stackwatch_alertmanager"
    title = "Alertmanager"
    address = ADDRESS
    settings = AlertmanagerOptions
    collectors = COLLECTORS

    def check_address(self, address: str) -> None:
        check_url(address)

    def target_name(self, address: str) -> str:
        return url_name(address)

    def new_target(self, name: str, address: str, collectors: list[Collector[Any]], common: Common,
                   options: AlertmanagerOptions) -> AlertmanagerTarget:
        return AlertmanagerTarget(name, address, collectors, common.intervals, options)


KIND = _AlertmanagerKind()
