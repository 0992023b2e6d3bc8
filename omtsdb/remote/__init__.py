"""Ingestion and remote-storage endpoints: remote write 1.0/2.0, remote read, text import,
OTLP/HTTP metrics (handlers in ``routes``, registered by the route table ``api.routes``), and
remote write to upstreams (``upstream``)."""
