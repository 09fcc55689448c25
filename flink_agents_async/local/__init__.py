"""The local host: agents on the asyncio event loop of this process, as a batch
(``from_list`` / ``from_iterable`` then ``execute()``) or a long-lived service (``serve()``)."""
