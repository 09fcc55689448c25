"""A msgpack ``Packer`` per thread, for the journal's hot paths (codec values and records).

``msgpack.packb`` builds a Packer per call; reusing one is several times cheaper. A Packer is
not thread-safe, and values are packed on the loop and on store threads alike, so each thread
gets its own. (A failed pack needs no clean-up: msgpack drops the partial bytes itself.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgpack

__all__ = ["ThreadPacker"]


class ThreadPacker(threading.local):
    """``pack(value)`` packs with a ``msgpack.Packer(**options)`` of the calling thread.

    A ``threading.local``: each thread runs ``__init__`` (with the same options) on its first
    use, so ``pack`` is the Packer's own method, with no Python call in between.
    """

    pack: Callable[[Any], bytes]

    def __init__(self, **options: Any) -> None:
        self.pack = msgpack.Packer(**options).pack
