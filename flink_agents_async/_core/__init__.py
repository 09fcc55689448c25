"""The core: the actor system, its actors and runs, the runtime's lifecycle. Private: hosts
use it through ``flink_agents_async.host_api``."""
