"""Plain scalars: the exact types that memory stores, the journal's codec encodes and digests
take as they are, whatever they hold."""

from __future__ import annotations

__all__ = ["SCALAR_TYPES"]

SCALAR_TYPES: frozenset[type] = frozenset({type(None), bool, int, float, str, bytes})
"""Exact types (not subclasses) of plain scalar values."""
