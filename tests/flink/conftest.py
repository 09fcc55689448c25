"""MiniCluster tests of the Flink bridge. Each test runs real PyFlink jobs (a few seconds each),
so cases are batched into as few jobs as possible."""

from __future__ import annotations

import pytest

pytest.importorskip("pyflink", reason="the Flink tests need the flink extra (apache-flink)")
