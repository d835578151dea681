"""Reading Redis: connections, INFO, the source, the TTL sample and the job queues, shared by the
exporter and ``stackwatch check``."""
