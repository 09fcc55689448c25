"""A msgpack ``Packer`` per thread, for the journal's hot paths (codec values and records).

``msgpack.packb`` builds a Packer per call; reusing one is several times cheaper. A Packer is
not thread-safe, and values are packed on the loop and on store threads alike, so each thread
gets its own. (A failed pack needs no clean-up: msgpack drops the partial bytes itself.)
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

__all__ = ["ThreadPacker"]


class ThreadPacker:
    """Packs with a ``msgpack.Packer(**options)`` of the calling thread."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._local = threading.local()

    def pack(self, value: Any) -> bytes:
        packer = getattr(self._local, "packer", None)
        if packer is None:
            packer = self._local.packer = msgpack.Packer(**self._options)
        return packer.pack(value)
