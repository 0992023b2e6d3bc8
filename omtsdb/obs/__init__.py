"""omtsdb's own metrics: a small registry (``registry``) and the metrics it exposes
(``metrics``) on ``/metrics``."""
