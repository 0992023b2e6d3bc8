"""PromQL function kernels: pure functions over numpy arrays (see ``rollups``)."""
