"""PyFlink ``Row``s for answers to a ``RowTypeInfo`` output schema.

The core parses structured output but never imports PyFlink; importing this module (the Flink
environment does) tells it how to build the ``Row``.
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Row

from flink_agents_async.llm.schema import use_row_maker

__all__ = ["row_of"]


def row_of(fields: dict[str, Any]) -> Row:
    """A ``Row`` with the fields' names, in the schema's order."""
    return Row(**fields)


use_row_maker(row_of)
