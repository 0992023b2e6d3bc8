"""Runner for Prometheus's PromQL ``.test`` scripts."""
