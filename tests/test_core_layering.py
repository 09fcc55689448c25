"""The core never imports PyFlink: only bridge/ does."""

from __future__ import annotations

import pathlib
import re

CORE = pathlib.Path(__file__).resolve().parent.parent / "flink_agents_async"


def test_no_core_module_imports_pyflink() -> None:
    importing = [
        str(path.relative_to(CORE.parent))
        for path in CORE.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+pyflink\b", path.read_text(), re.M)
    ]
    assert importing == []
