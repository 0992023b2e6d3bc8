"""Command line: the only place that wires the parts together."""
