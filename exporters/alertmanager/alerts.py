"""``stackwatch_alertmanager_alerts{severity, state}``: the alerts an Alertmanager holds, by
whether they reach a receiver.

Prometheus' ``ALERTS`` cannot know about silences and inhibitions, and Alertmanager's own
``alertmanager_alerts{state}`` has no severity, so "critical alerts that page right now" needs
Alertmanager's API: ``state`` is ``silenced`` (a silence matches), ``inhibited`` (an inhibition
rule holds it back; an alert both silenced and inhibited counts as silenced) or ``active``
(neither: it is notified). Every severity x state pair is exported, 0 included, so an empty
Alertmanager reads 0 and an unread one reads no data. Severities outside :data:`SEVERITIES`
(or none) are summed into ``other``: the label stays bounded whatever the rules send.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client.core import Metric

from ..collector import Collector, Tier
from ..families import gauge
from .target import AlertmanagerError, AlertmanagerSource

__all__ = ["OTHER", "SEVERITIES", "STATES", "AlertsCollector", "count_alerts"]

#: the severities stackwatch's rules use (``alerts/rules.py`` ``Severity``), the mixins' set
SEVERITIES = ("critical", "warning", "info", "none")
OTHER = "other"
STATES = ("active", "silenced", "inhibited")


def _state(alert: dict[str, Any]) -> str:
    status = alert.get("status") or {}
    if status.get("silencedBy"):
        return "silenced"
    return "inhibited" if status.get("inhibitedBy") else "active"


def _severity(alert: dict[str, Any]) -> str:
    severity = (alert.get("labels") or {}).get("severity")
    return severity if severity in SEVERITIES else OTHER


def count_alerts(alerts: Any) -> Counter[tuple[str, str]]:
    """Alerts by ``(severity, state)`` from the JSON of ``/api/v2/alerts``."""
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise AlertmanagerError("not_alertmanager", "/api/v2/alerts is not a list of alerts")
    return Counter((_severity(alert), _state(alert)) for alert in alerts)


class AlertsCollector(Collector[AlertmanagerSource]):
    name = "alerts"
    tier = Tier.FAST

    def collect(self, source: AlertmanagerSource) -> list[Metric]:
        counts = count_alerts(source.api("alerts?active=true&silenced=true&inhibited=true&unprocessed=true"))
        family = gauge("stackwatch_alertmanager_alerts", "Alerts Alertmanager holds, by severity and by state: "
                       "active (notified), silenced or inhibited.", ["severity", "state"])
        for severity in (*SEVERITIES, OTHER):
            for state in STATES:
                family.add_metric([severity, state], counts[severity, state])
        return [family]
