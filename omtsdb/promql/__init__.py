"""PromQL: parser (no numpy), engine and function kernels."""
