"""The hot-path histogram and gauge updates give exactly what client_python's own methods give."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stackwatch.instrumentation.metrics import HTTP_DURATION_BUCKETS, observe, value_adder


def samples(registry: CollectorRegistry) -> list[tuple]:
    out = []
    for family in registry.collect():
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            exemplar = (s.exemplar.labels, s.exemplar.value) if s.exemplar else None
            out.append((s.name, tuple(sorted(s.labels.items())), s.value, exemplar))
    return out


@pytest.mark.parametrize("held", [False, True], ids=["own-lock", "request-lock-held"])
def test_observe_matches_client_python(held: bool) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    children = [Histogram("d_seconds", "d", ["route"], buckets=HTTP_DURATION_BUCKETS, registry=r).labels("/x")
                for r in (ours, theirs)]
    amounts = [0.0, 0.001, 0.005, 0.0050001, 0.1, 0.75, 10.0, 10.5, 1e9, 0.3, 0.005]
    for i, amount in enumerate(amounts):
        exemplar = {"trace_id": f"{i:032x}", "span_id": f"{i:016x}"} if i % 2 else None
        observe(children[0], amount, exemplar, held=held)
        children[1].observe(amount, exemplar)
    assert samples(ours) == samples(theirs)
    assert any(s[3] for s in samples(ours))  # exemplars were compared too


@pytest.mark.parametrize("held", [False, True], ids=["own-lock", "request-lock-held"])
def test_value_adder_matches_inc_and_dec(held: bool) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    add = value_adder(Gauge("a", "a", ["m"], registry=ours).labels("GET"), held=held)
    count = value_adder(Counter("c", "c", ["m"], registry=ours).labels("GET"), held=held)
    child = Gauge("a", "a", ["m"], registry=theirs).labels("GET")
    counter = Counter("c", "c", ["m"], registry=theirs).labels("GET")
    for amount in (1, 1, -1, 2.5, -3):
        add(amount)
        child.inc(amount) if amount > 0 else child.dec(-amount)
        count(abs(amount))
        counter.inc(abs(amount))
    assert samples(ours) == samples(theirs)
    assert theirs.get_sample_value("a", {"m": "GET"}) == 0.5
    assert theirs.get_sample_value("c_total", {"m": "GET"}) == 8.5
