"""``python -m flink_agents_async`` is the ``flink-agents-async`` command."""

from .cli import main

raise SystemExit(main())
