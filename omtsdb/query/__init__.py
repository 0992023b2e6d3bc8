"""The query service (``service``) and the inline cost bound (``costs``): one way to run PromQL
for the HTTP API, the rules engine, the AI layer and the result cache."""

from omtsdb.query.service import InstantQuery, QueryLimits, QueryService, RangeQuery, check_range

__all__ = ["InstantQuery", "QueryLimits", "QueryService", "RangeQuery", "check_range"]
