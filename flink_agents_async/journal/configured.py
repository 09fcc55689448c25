"""A ``Journal`` over a host's store, set up from the ``durable.*`` options: the one place
every host reads them."""

from __future__ import annotations

from ..config import JournalOptions, ReadableConfiguration
from .codec import Codec
from .journal import Journal
from .store import Durability, JournalStore

__all__ = ["journal_from_config"]


def journal_from_config(
    config: ReadableConfiguration,
    store: JournalStore,
    *,
    keep_inputs: bool,
    recording: bool = True,
) -> Journal:
    """The journal of a runtime over ``store``. ``keep_inputs``: keep committed inputs and
    their outputs (what makes a batch job resumable); ``recording=False`` for a private store
    nobody can resume from (see ``Journal``)."""
    return Journal(
        store,
        Codec(allow_pickle=bool(config.get(JournalOptions.ALLOW_PICKLE))),
        durability=getattr(store, "durability", Durability.NONE)
        if store.durable
        else Durability.NONE,
        divergence=str(config.get(JournalOptions.DIVERGENCE)),
        compaction_interval=config.get(JournalOptions.COMPACTION_INTERVAL) or 1000,
        keep_inputs=keep_inputs,
        recording=recording,
    )
