"""Prometheus recording and alerting rules, generated from :mod:`stackwatch.thresholds`.

Not part of the installed distribution: ``python -m alerts.generate`` (run from the repository
root) writes the committed ``alerts/rules/*.yml`` that Prometheus loads, and ``alerts/tests/``
holds their promtool unit tests.
"""
