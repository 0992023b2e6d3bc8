"""Ingestion and remote-storage endpoints: remote write 1.0/2.0, remote read, text import,
OTLP/HTTP metrics. ``register_remote_routes`` wires them into the aiohttp app."""

from omtsdb.remote.routes import RemoteOptions, register_remote_routes

__all__ = ["RemoteOptions", "register_remote_routes"]
