"""Element-wise functions on instant-vector values (any array shape)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from omtsdb.model.samples import F64

Elementwise = Callable[[F64], F64]


def _sgn(v: F64) -> F64:
    out: F64 = np.sign(v)
    return out


def _date(kind: str) -> Elementwise:
    def fn(v: F64) -> F64:
        out = np.full(v.shape, np.nan)
        ok = np.isfinite(v)
        if not ok.any():
            return out
        secs = np.floor(v[ok]).astype(np.int64)
        dt = secs.astype("datetime64[s]")
        days = dt.astype("datetime64[D]")
        if kind == "year":
            r = dt.astype("datetime64[Y]").astype(np.int64) + 1970
        elif kind == "month":
            r = dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
        elif kind == "day_of_month":
            r = (days - dt.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
        elif kind == "day_of_week":
            r = (days.astype(np.int64) + 4) % 7  # 1970-01-01 was a Thursday
        elif kind == "day_of_year":
            r = (days - dt.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1
        elif kind == "days_in_month":
            m = dt.astype("datetime64[M]")
            r = ((m + 1).astype("datetime64[D]") - m.astype("datetime64[D]")).astype(np.int64)
        elif kind == "hour":
            r = (secs // 3600) % 24
        else:  # minute
            r = (secs // 60) % 60
        out[ok] = r.astype(np.float64)
        return out

    return fn


def _np(f: Callable[..., F64]) -> Elementwise:
    def fn(v: F64) -> F64:
        with np.errstate(all="ignore"):
            return f(v)

    return fn


ELEMENTWISE: dict[str, Elementwise] = {
    "abs": _np(np.abs),
    "ceil": _np(np.ceil),
    "floor": _np(np.floor),
    "exp": _np(np.exp),
    "sqrt": _np(np.sqrt),
    "ln": _np(np.log),
    "log2": _np(np.log2),
    "log10": _np(np.log10),
    "sgn": _sgn,
    "acos": _np(np.arccos),
    "acosh": _np(np.arccosh),
    "asin": _np(np.arcsin),
    "asinh": _np(np.arcsinh),
    "atan": _np(np.arctan),
    "atanh": _np(np.arctanh),
    "cos": _np(np.cos),
    "cosh": _np(np.cosh),
    "sin": _np(np.sin),
    "sinh": _np(np.sinh),
    "tan": _np(np.tan),
    "tanh": _np(np.tanh),
    "deg": _np(np.degrees),
    "rad": _np(np.radians),
    **{
        k: _date(k)
        for k in (
            "year",
            "month",
            "day_of_month",
            "day_of_week",
            "day_of_year",
            "days_in_month",
            "hour",
            "minute",
        )
    },
}


def round_to(v: F64, to_nearest: F64) -> F64:
    """Prometheus's round: ``floor(v * inv + 0.5) / inv`` with ``inv = 1 / to_nearest``."""
    with np.errstate(all="ignore"):
        inv = 1.0 / to_nearest
        out: F64 = np.floor(v * inv + 0.5) / inv
    return out


def clamp(v: F64, lo: F64, hi: F64) -> F64:
    with np.errstate(all="ignore"):
        out: F64 = np.maximum(lo, np.minimum(hi, v))
    return out
