"""What may be a key: a hashable value that equals itself.

A key names an actor, and its journal bytes name the actor's records. A key that does not
equal itself (a float NaN, or a tuple holding one) would get a new actor at every input, while
all of them share one journal key, so such keys are refused, as are unhashable ones. Every host
checks keys with ``check_key``.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError, UnhashableKeyError

__all__ = ["check_key"]


def check_key(key: Any, where: str) -> None:
    """Raise ``InputError`` naming ``where`` (the input) if ``key`` cannot name an actor."""
    try:
        hash(key)
    except TypeError:
        raise UnhashableKeyError(
            f"{where} has key {key!r:.200} of type {type(key).__name__}, which cannot be a key "
            "because it is not hashable; use a str, int or tuple"
        ) from None
    if _unequal_to_itself(key):
        raise InputError(
            f"{where} has key {key!r:.200}, which does not equal itself (it is or holds a NaN), "
            "so it cannot name one actor; use a str, int or tuple of them"
        )


def _unequal_to_itself(value: Any) -> bool:
    if isinstance(value, tuple | frozenset):
        return any(_unequal_to_itself(item) for item in value)
    try:
        return bool(value != value)
    except Exception:  # a comparison that fails says nothing about NaN
        return False
