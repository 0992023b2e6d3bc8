"""omtsdb: a Prometheus-compatible metrics backend in Python."""

__version__ = "0.1.0"
