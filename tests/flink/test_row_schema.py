"""Answers to a RowTypeInfo output schema become PyFlink Rows (found by class path: the core
never imports PyFlink)."""

from __future__ import annotations

from pyflink.common import Row, Types

from flink_agents_async.llm.schema import resolve_output_schema


def test_a_row_schema_answer_becomes_a_row_with_the_schemas_fields() -> None:
    schema = resolve_output_schema(
        Types.ROW_NAMED(["score", "reason"], [Types.INT(), Types.STRING()])
    )
    assert schema is not None

    row = schema.parse('{"reason": "fine", "score": 4, "extra": 1}')

    assert isinstance(row, Row)
    assert (row.score, row.reason) == (4, "fine")
