"""Labels, matchers, sample conventions and the exposition formats."""

from omtsdb.model.labels import METRIC_NAME, Labels
from omtsdb.model.matchers import Matcher, MatchType
from omtsdb.model.samples import STALE_NAN, STALE_NAN_BITS, is_stale_nan

__all__ = [
    "METRIC_NAME",
    "STALE_NAN",
    "STALE_NAN_BITS",
    "Labels",
    "MatchType",
    "Matcher",
    "is_stale_nan",
]
