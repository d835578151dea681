"""TTL hygiene per key prefix, from the bounded sample of
:func:`stackwatch.core.redis.ttl_sampler.sample_ttls` (which ``stackwatch check`` takes too)."""

from __future__ import annotations

from prometheus_client.core import Metric

from stackwatch.core.redis.source import RedisSource
from stackwatch.core.redis.ttl_sampler import sample_ttls

from ..collector import Collector, Tier
from ..families import gauge
from .fields import single

__all__ = ["TtlSamplerCollector"]


class TtlSamplerCollector(Collector[RedisSource]):
    name = "ttl_sampler"
    tier = Tier.SLOW

    def collect(self, source: RedisSource) -> list[Metric]:
        opts = source.options
        sample = sample_ttls(source.client, opts.ttl_sample_keys, opts.ttl_sample_seconds,
                             opts.ttl_scan_count, opts.ttl_prefix_delimiter, source.own)
        ratio = gauge("redis_ttl_keys_without_ttl_ratio", "Share of sampled keys without a TTL, per prefix.",
                      ["prefix"])
        estimated = gauge("redis_ttl_keys_without_ttl_estimated",
                          "Estimated keys without a TTL in the database, per prefix (sample scaled by DBSIZE).",
                          ["prefix"])
        total = sample.sampled
        for prefix, (sampled, without) in sorted(sample.bounded(opts.ttl_prefixes_max).items()):
            ratio.add_metric([prefix], without / sampled)
            estimated.add_metric([prefix], round(without * sample.dbsize / total))
        return [
            ratio, estimated,
            single("redis_ttl_keys_sampled", "Keys whose TTL the last walk checked.", total),
            single("redis_ttl_sample_truncated", "1 when a key or time budget cut the last walk short.",
                   float(sample.truncated)),
        ]
