"""The Prometheus HTTP API (aiohttp)."""
