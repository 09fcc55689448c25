"""The parity table on the local host: every case gives its expected outputs per key.

``flink/test_parity_flink.py`` runs the same table on the Flink bridge and compares."""

from __future__ import annotations

import pytest
from parity_cases import CASES, Case, by_key, run_locally


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_case_on_the_local_host(case: Case) -> None:
    assert by_key(run_locally(case)) == case.expected
