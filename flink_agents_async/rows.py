"""PyFlink rows, known without importing PyFlink.

Agents that feed Flink tables emit ``pyflink.common.Row`` values on every host, so the core has
to carry them through events and the journal. It recognises them by class path instead of
importing PyFlink (which only the bridge does); rebuilding one from JSON uses the ``Row`` class
of the PyFlink this process has, loaded on demand.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["ROW_MODULE", "build", "from_json", "is_row", "row_class", "to_json"]

ROW_MODULE = "pyflink.common.types"
_ROW_NAME = "Row"


def is_row(value: Any) -> bool:
    """Whether ``value`` is a PyFlink ``Row``."""
    cls = type(value)
    return cls.__name__ == _ROW_NAME and cls.__module__ == ROW_MODULE


def row_class(*, load: bool = True) -> type | None:
    """PyFlink's ``Row`` class: from the loaded module, else (``load``) by importing it; None
    if PyFlink is not installed."""
    module = sys.modules.get(ROW_MODULE)
    if module is None and load:
        try:
            module = importlib.import_module(ROW_MODULE)
        except ImportError:
            return None
    return getattr(module, _ROW_NAME, None) if module is not None else None


def build(cls: type, names: list[str] | None, values: list[Any]) -> Any:
    """A row of PyFlink's ``cls`` from its values, named by ``names`` when given."""
    return cls(*values) if names is None else cls(**dict(zip(names, values, strict=True)))


def to_json(row: Any) -> dict[str, Any]:
    """Upstream's JSON form of a row: ``{"type": "Row", "values": [...]}``, plus ``"fields"``
    (its field names) when it has them."""
    result: dict[str, Any] = {"type": _ROW_NAME, "values": list(row)}
    names = getattr(row, "_fields", None)
    if names:
        result["fields"] = list(names)
    return result


def from_json(data: Any) -> Any:
    """``data`` with every row in upstream's JSON form turned back into a ``Row`` (left as it is
    where PyFlink is not installed)."""
    if isinstance(data, list):
        return [from_json(item) for item in data]
    if not isinstance(data, dict):
        return data
    values = data.get("values")
    if data.get("type") == _ROW_NAME and isinstance(values, list):
        cls = row_class()
        if cls is not None:
            values = [from_json(value) for value in values]
            names = data.get("fields")
            if isinstance(names, list) and len(names) == len(values):
                return build(cls, [str(name) for name in names], values)
            return build(cls, None, values)
    return {name: from_json(value) for name, value in data.items()}
