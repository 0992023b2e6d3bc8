"""``__name__`` removal: immediate (Prometheus 3.5's default) or delayed (its
``promql-delayed-name-removal`` flag, which the upstream test scripts enable)."""

from __future__ import annotations

import numpy as np
import pytest

from omtsdb.errors import ExecutionError
from omtsdb.model.labels import Labels
from omtsdb.promql.engine import Engine, EngineOpts
from omtsdb.promql.value import Sample
from omtsdb.tsdb.db import DB, DBOptions


@pytest.fixture
def db() -> DB:
    d = DB.open(None, DBOptions())
    app = d.appender()
    ts = np.arange(0, 600_001, 60_000, dtype=np.int64)
    for name, step in (("a_total", 1.0), ("b_total", 3.0)):
        app.append(Labels({"__name__": name, "env": "1"}), ts, np.arange(ts.size) * step)
    app.commit()
    return d


def _q(db: DB, query: str, delayed: bool) -> dict[str, float]:
    eng = Engine(EngineOpts(enable_delayed_name_removal=delayed))
    v = eng.instant_query(db, query, 600_000).value
    assert isinstance(v, list)
    out = {}
    for s in v:
        assert isinstance(s, Sample)
        out[s.labels.to_promql() if s.labels else "{}"] = s.v
    return out


def test_label_replace_sees_the_name_only_when_delayed(db: DB) -> None:
    q = 'label_replace(rate(a_total[5m]), "n", "$1", "__name__", "(.+)")'
    assert _q(db, q, delayed=False) == {'{env="1"}': pytest.approx(1 / 60)}
    assert _q(db, q, delayed=True) == {'{env="1", n="a_total"}': pytest.approx(1 / 60)}


def test_writing_the_name_keeps_it(db: DB) -> None:
    q = 'label_replace(-a_total, "__name__", "neg_$1", "__name__", "(.+)")'
    assert _q(db, q, delayed=True) == {'neg_a_total{env="1"}': -10.0}


def test_or_of_marked_and_plain(db: DB) -> None:
    q = "sum by (__name__) (a_total or on (__name__) rate(b_total[5m]))"
    assert _q(db, q, delayed=True) == {"a_total": 10.0, "{}": pytest.approx(0.05)}
    # one marked series in a group marks the group
    q = 'sum by (__name__) (a_total or label_replace(-a_total, "x", "y", "", ""))'
    assert _q(db, q, delayed=True) == {"{}": 0.0}


def test_duplicates_after_the_final_drop_are_an_error(db: DB) -> None:
    with pytest.raises(ExecutionError, match="same labelset"):
        _q(db, 'sum by (__name__) (rate({env="1"}[5m]))', delayed=True)
    with pytest.raises(ExecutionError, match="same labelset"):
        _q(db, 'rate({env="1"}[5m])', delayed=False)


def test_type_and_unit_labels_go_with_the_name() -> None:
    d = DB.open(None, DBOptions())
    app = d.appender()
    lb = Labels({"__name__": "x_total", "__type__": "counter", "__unit__": "req", "job": "a"})
    app.append(lb, np.array([600_000], np.int64), np.array([5.0]))
    app.commit()
    for delayed in (False, True):
        assert _q(d, "x_total * 2", delayed) == {'{job="a"}': 10.0}
        assert _q(d, "x_total / on (job) x_total", delayed) == {'{job="a"}': 1.0}
        assert len(_q(d, "+x_total", delayed)) == 1
        assert next(iter(_q(d, "x_total > 1", delayed))).count("__type__") == 1
