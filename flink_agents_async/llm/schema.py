"""Structured output: a chat answer read as JSON and validated against a schema.

A ``ChatRequestEvent`` may carry an ``output_schema``: a pydantic model class, a JSON schema
(a dict), a PyFlink ``RowTypeInfo``, or any of those wrapped in ``OutputSchema`` (upstream's
spelling). The chat action then reads the final answer as JSON (a fenced ```json block or JSON
amid text is found too), validates it, and puts the result in the answer's
``extra_args["structured_output"]``: a model instance, a dict, or a ``Row``. An answer that does
not fit is sent back to the model with what was wrong, a bounded number of times.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer, field_validator

from .. import rows
from .tools import create_model_from_schema

__all__ = ["STRUCTURED_OUTPUT", "OutputSchema", "StructuredOutput", "resolve_output_schema"]

STRUCTURED_OUTPUT = "structured_output"
"""The ``extra_args`` key of a chat answer that holds its validated structured output."""


class OutputSchema(BaseModel):
    """The schema a chat answer must follow (upstream's wrapper; a bare model class or JSON
    schema dict works as well)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    output_schema: Any

    @field_validator("output_schema", mode="before")
    @classmethod
    def _known_form(cls, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"module", "class"}:
            return _loaded_class(value["module"], value["class"])
        if value is None:
            raise ValueError("output_schema is required: a pydantic model class or a JSON schema")
        return value

    @field_serializer("output_schema")
    def _as_data(self, value: Any) -> Any:
        if isinstance(value, type) and issubclass(value, BaseModel):
            return {"module": value.__module__, "class": value.__qualname__}
        if _is_row_type(value):
            return {
                "names": list(value.get_field_names()),
                "types": [str(t) for t in value.get_field_types()],
            }
        return value


def _loaded_class(module: str, qualname: str) -> type:
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, type):
        raise ValueError(
            f"output schema class {module}.{qualname} is not loaded; import its module first"
        )
    return target


def _is_row_type(value: Any) -> bool:
    return type(value).__name__ == "RowTypeInfo"


def _make_row(fields: dict[str, Any]) -> Any:
    """A PyFlink ``Row`` with the fields' names, in the schema's order (PyFlink's class, found
    by ``rows``: the core never imports PyFlink itself)."""
    cls = rows.row_class()
    if cls is None:
        # Not a ValueError: that would re-ask the model about an answer that was fine.
        raise RuntimeError(
            "a RowTypeInfo output schema answers with PyFlink Rows: install the flink extra "
            "(apache-flink)"
        )
    return rows.build(cls, list(fields), list(fields.values()))


class StructuredOutput:
    """A resolved output schema: reads and validates answer text."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self._model: type[BaseModel] | None = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self._model = schema
        elif isinstance(schema, dict):
            self._model = create_model_from_schema(str(schema.get("title") or "Output"), schema)
        elif not _is_row_type(schema):
            raise TypeError(
                f"output_schema must be a pydantic model class, a JSON schema dict or a "
                f"RowTypeInfo, got {type(schema).__name__} {schema!r:.200}"
            )

    def json_schema(self) -> dict[str, Any]:
        if isinstance(self.schema, dict):
            return self.schema
        if self._model is not None:
            return self._model.model_json_schema()
        names = list(self.schema.get_field_names())
        return {"type": "object", "properties": {name: {} for name in names}, "required": names}

    def parse(self, text: str) -> Any:
        """The validated value in ``text``; ``ValueError`` saying what does not fit."""
        data = _json_in(text)
        if _is_row_type(self.schema):
            names = list(self.schema.get_field_names())
            missing = [name for name in names if not isinstance(data, dict) or name not in data]
            if missing:
                raise ValueError(f"the JSON lacks the fields {missing}")
            return _make_row({name: data[name] for name in names})
        assert self._model is not None
        try:
            validated = self._model.model_validate(data)
        except ValidationError as error:
            raise ValueError(f"the JSON does not fit the schema: {error}") from None
        return validated.model_dump() if isinstance(self.schema, dict) else validated


def resolve_output_schema(value: Any) -> StructuredOutput | None:
    """The structured output a request asks for (None when it asks for none)."""
    if value is None:
        return None
    if isinstance(value, OutputSchema):
        value = value.output_schema
    elif isinstance(value, dict) and "output_schema" in value:  # an OutputSchema as JSON
        value = OutputSchema.model_validate(value).output_schema
    return StructuredOutput(value)


def _json_in(text: str) -> Any:
    """The JSON value an answer holds: the whole text, a fenced block, or the outermost
    object or array within the text."""
    candidates = [text.strip()]
    stripped = candidates[0]
    if stripped.startswith("```"):
        inner = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        candidates.append(inner.rsplit("```", 1)[0].strip())
    for opening, closing in (("{", "}"), ("[", "]")):
        start, end = stripped.find(opening), stripped.rfind(closing)
        if 0 <= start < end:
            candidates.append(stripped[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    raise ValueError(f"the answer is not JSON: {text[:200]!r}")
