"""Grafana dashboards, written with grafanalib and generated into ``dashboards/json/``.

Not part of the installed distribution: ``python -m dashboards.generate`` (run from the
repository root) writes the committed JSON that Grafana provisions (provisioning/grafana/),
and ``dashboards.queries`` lists every panel query for the end-to-end test. The sources live
in ``dashboards/src/``, one module per dashboard; threshold lines and colors come from
:mod:`stackwatch.thresholds`, never from a number typed here.
"""
