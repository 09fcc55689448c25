"""Configuration: ``ConfigOption``, ``Configuration`` and the options the runtime reads.

A configuration is a flat map of dotted keys (``short-term-memory.state-ttl.ms``) to values. Each
environment owns its own configuration; nothing is shared between environments. Values loaded from
YAML or set as strings are converted by the typed getters (``get_bool("false")`` is ``False``).
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import ConfigurationError
from .logging import library_logger

__all__ = [
    "KEYWORD_OPTIONS",
    "OPTIONS_WITHOUT_EFFECT",
    "AgentConfigOptions",
    "AgentExecutionOptions",
    "ConditionEvaluationFailureStrategy",
    "ConfigOption",
    "Configuration",
    "ErrorHandlingStrategy",
    "EventLogLevel",
    "JournalOptions",
    "LoggerType",
    "MemoryEventOptions",
    "ReadableConfiguration",
    "ShortTermMemoryOptions",
    "ShortTermMemoryTtlUpdate",
    "ShortTermMemoryTtlVisibility",
    "WritableConfiguration",
    "at_least",
    "keyword_settings",
    "load_agent_config_file",
    "report_options_without_effect",
]

logger = library_logger()

T = TypeVar("T")
# Covariant: an option of bool is read where an option of object is expected.
T_co = TypeVar("T_co", covariant=True)

_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


class ConfigOption(Generic[T_co]):
    """A typed configuration key with a default value."""

    def __init__(self, key: str, config_type: type[T_co], default: T_co | None = None) -> None:
        self._key = key
        self._type = config_type
        self._default = default

    def get_key(self) -> str:
        return self._key

    def get_type(self) -> type[T_co]:
        return self._type

    def get_default_value(self) -> T_co | None:
        return self._default

    @property
    def key(self) -> str:
        return self._key

    @property
    def default(self) -> T_co | None:
        return self._default

    def __repr__(self) -> str:
        return f"ConfigOption({self._key!r}, {self._type.__name__}, default={self._default!r})"


def _enum_member(value: Any, target: type[enum.Enum]) -> enum.Enum:
    """The member of ``target`` that ``value`` names: a member, or its value or name as text
    (any case), as upstream accepts both the enums and their strings."""
    if isinstance(value, target):
        return value
    text = str(value.value if isinstance(value, enum.Enum) else value).strip()
    for member in target:
        if text.lower() in (str(member.value).lower(), member.name.lower()):
            return member
    choices = ", ".join(str(member.value) for member in target)
    raise ValueError(f"expected one of {choices}")


def _convert(key: str, value: Any, target: type) -> Any:
    """Convert a stored value to ``target``, naming the key when that is impossible."""
    if value is None or target is object:
        return value
    try:
        if issubclass(target, enum.Enum):
            return _enum_member(value, target)
        if isinstance(value, enum.Enum) and target is str:
            return str(value.value)
        if target is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in _TRUE_WORDS:
                return True
            if word in _FALSE_WORDS:
                return False
            raise ValueError(f"expected one of {sorted(_TRUE_WORDS | _FALSE_WORDS)}")
        if target is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected a whole number")
            return int(value)
        if target is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if target is str:
            return value if isinstance(value, str) else str(value)
        convert: Callable[[Any], Any] = target
        return convert(value)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(
            f"Invalid value for {key}: {value} (configuration key {key!r} has value {value!r}, "
            f"which is not a valid {target.__name__}: {error})"
        ) from error


class ReadableConfiguration:
    """Typed read access to a flat configuration map."""

    _data: dict[str, Any]

    def get(self, option: ConfigOption[T]) -> T | None:
        """The value of ``option`` converted to its type, or its default (also for a key set
        to ``None``, as upstream reads it)."""
        return self._typed(option.get_key(), option.get_default_value(), option.get_type())

    def _typed(self, key: str, default: Any, target: type) -> Any:
        if self._data.get(key) is None:
            return default
        return _convert(key, self._data[key], target)

    def get_int(self, key: str, default: int | None = None) -> int | None:
        return self._typed(key, default, int)

    def get_float(self, key: str, default: float | None = None) -> float | None:
        return self._typed(key, default, float)

    def get_bool(self, key: str, default: bool | None = None) -> bool | None:
        return self._typed(key, default, bool)

    def get_str(self, key: str, default: str | None = None) -> str | None:
        return self._typed(key, default, str)

    def contains(self, key: str) -> bool:
        return key in self._data

    def to_dict(self) -> dict[str, Any]:
        """A copy of every key and its raw value."""
        return dict(self._data)


class WritableConfiguration:
    """Typed write access to a flat configuration map."""

    _data: dict[str, Any]

    def set(self, option: ConfigOption[T], value: T) -> None:
        self._data[option.get_key()] = value

    def set_str(self, key: str, value: str) -> None:
        self._data[key] = value

    def set_int(self, key: str, value: int) -> None:
        self._data[key] = value

    def set_float(self, key: str, value: float) -> None:
        self._data[key] = value

    def set_bool(self, key: str, value: bool) -> None:
        self._data[key] = value


class Configuration(ReadableConfiguration, WritableConfiguration):
    """A flat, typed configuration owned by one environment."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})

    def update(self, data: Mapping[str, Any]) -> None:
        self._data.update(data)

    def copy(self) -> Configuration:
        return Configuration(self._data)

    def __repr__(self) -> str:
        return f"Configuration({self._data!r})"


def at_least(config: ReadableConfiguration, option: ConfigOption[int], minimum: int) -> int:
    """The value of a numeric ``option``, refused with a ``ConfigurationError`` naming the key
    when it is below ``minimum``."""
    value = config.get(option)
    if value is None or value < minimum:
        raise ConfigurationError(
            f"configuration key {option.key!r} must be at least {minimum}, got {value}"
        )
    return value


def _flatten(section: Mapping[str, Any], prefix: str, into: dict[str, Any], source: Path) -> None:
    for name, value in section.items():
        if not isinstance(name, str):
            raise ConfigurationError(f"{source}: key {name!r} under 'agent:' is not a string")
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, Mapping):
            _flatten(value, key, into, source)
        else:
            into[key] = value


def load_agent_config_file(path: str | Path) -> dict[str, Any]:
    """Read the ``agent:`` section of a YAML file (and top-level ``agent.*`` keys) as flat
    dotted keys."""
    import yaml

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot read configuration file {source}: {error}") from error
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(
            f"configuration file {source} is not valid YAML: {error}"
        ) from error
    if not isinstance(document, Mapping):
        raise ConfigurationError(f"configuration file {source} must hold a mapping at the top")
    section = document.get("agent") or {}
    if not isinstance(section, Mapping):
        raise ConfigurationError(f"the 'agent:' section of {source} must be a mapping")
    flat: dict[str, Any] = {}
    # Flat keys too ("agent.max-retries: 5"), as Flink's legacy flink-conf.yaml writes them.
    for name, value in document.items():
        if isinstance(name, str) and name.startswith("agent."):
            _flatten({name[len("agent.") :]: value}, "", flat, source)
    _flatten(section, "", flat, source)
    return flat


class ErrorHandlingStrategy(enum.Enum):
    """What a failed run does (``error-handling-strategy``)."""

    RETRY = "retry"
    FAIL = "fail"
    IGNORE = "ignore"


class ShortTermMemoryTtlUpdate(enum.Enum):
    """What refreshes a short-term memory value's TTL."""

    ON_CREATE_AND_WRITE = "ON_CREATE_AND_WRITE"
    ON_READ_AND_WRITE = "ON_READ_AND_WRITE"


class ShortTermMemoryTtlVisibility(enum.Enum):
    """Whether an expired short-term memory value may still be read. Here an expired value is
    cleaned up when it is read, so both never return it."""

    NEVER_RETURN_EXPIRED = "NEVER_RETURN_EXPIRED"
    RETURN_EXPIRED_IF_NOT_CLEANED_UP = "RETURN_EXPIRED_IF_NOT_CLEANED_UP"


class LoggerType(enum.Enum):
    """Upstream's event logger types (accepted; this runtime logs through structlog)."""

    SLF4J = "slf4j"
    FILE = "file"


class ConditionEvaluationFailureStrategy(enum.Enum):
    """Upstream's handling of a failing trigger-condition expression (accepted; triggers are
    event types here)."""

    WARN_AND_SKIP = "WARN_AND_SKIP"
    FAIL = "FAIL"


class EventLogLevel(enum.Enum):
    """Upstream's event-log detail (accepted; this runtime has no event log)."""

    OFF = "OFF"
    STANDARD = "STANDARD"
    VERBOSE = "VERBOSE"


class ShortTermMemoryOptions:
    """Options of short-term memory (upstream's names)."""

    STATE_TTL_MS = ConfigOption("short-term-memory.state-ttl.ms", int, 0)
    """Milliseconds after which a short-term memory value expires; 0 keeps values forever."""

    STATE_TTL_UPDATE_TYPE = ConfigOption(
        "short-term-memory.state-ttl.update-type",
        ShortTermMemoryTtlUpdate,
        ShortTermMemoryTtlUpdate.ON_READ_AND_WRITE,
    )
    """What refreshes a value's TTL: ``ON_CREATE_AND_WRITE`` or ``ON_READ_AND_WRITE``."""

    STATE_TTL_VISIBILITY = ConfigOption(
        "short-term-memory.state-ttl.visibility",
        ShortTermMemoryTtlVisibility,
        ShortTermMemoryTtlVisibility.NEVER_RETURN_EXPIRED,
    )
    """Whether an expired value may be read: it never is here (see the enum)."""


class AgentExecutionOptions:
    """Options that control how the runtime executes agents."""

    NUM_ASYNC_THREADS = ConfigOption("num-async-threads", int, 64)
    """Threads for sync functions passed to ``durable_execute_async``."""

    ERROR_HANDLING_STRATEGY = ConfigOption(
        "error-handling-strategy", ErrorHandlingStrategy, ErrorHandlingStrategy.FAIL
    )
    """What a failed run does: ``fail`` (reported by ``execute()``), ``retry`` or ``ignore``."""

    MAX_RETRIES = ConfigOption("max-retries", int, 3)
    """With ``error-handling-strategy: retry``, how often a failed run is tried again."""

    MAILBOX_CAPACITY = ConfigOption("mailbox-capacity", int, 1000)
    """Inputs one key may hold waiting before a producer must wait for room."""

    MAX_EVENTS_PER_RUN = ConfigOption("max-events-per-run", int, 100_000)
    """Events one run may queue before it is failed as a probable event loop (an action that
    keeps triggering itself)."""

    ACTION_TIMEOUT = ConfigOption("action-timeout", float, 0.0)
    """Seconds one action may take before its run fails (0: no limit). An async action is
    cancelled when it is exceeded; a sync one blocks the loop, so its run fails once it
    returns."""

    RETRY_WAIT_INTERVAL = ConfigOption("retry-wait-interval", float, 1.0)
    """Seconds a chat model connection waits before its first retry (doubling after each),
    unless the connection sets ``retry_wait_interval`` itself or the server says how long."""

    CHAT_ASYNC = ConfigOption("chat.async", bool, True)
    """Call chat models through their async ``achat`` on the event loop; off: through their
    sync ``chat`` in the thread pool."""

    TOOL_CALL_ASYNC = ConfigOption("tool-call.async", bool, True)
    """Run the tool calls of one request concurrently; off: one after another."""

    RAG_ASYNC = ConfigOption("rag.async", bool, True)
    """Query vector stores without blocking the event loop (they always are, here)."""

    MAX_TOOL_CALL_ROUNDS = ConfigOption("chat.max-tool-call-rounds", int, 20)
    """How many times in a row a model may ask for tools for one chat request before the
    request fails (a model that never stops asking would otherwise loop forever)."""

    STRUCTURED_OUTPUT_RETRIES = ConfigOption("chat.structured-output.retries", int, 2)
    """How many times a final answer that does not fit its output schema is sent back to the
    model with what was wrong, before the request fails."""

    RUN_TIMEOUT = ConfigOption("run-timeout", float, 0.0)
    """Seconds one run may take, from its start to its last action, before it fails and its
    tasks are cancelled (0: no limit). A sync durable function in a thread cannot be
    interrupted: the run ends when it returns."""

    SHORT_TERM_MEMORY_STATE_TTL_MS = ShortTermMemoryOptions.STATE_TTL_MS
    """Upstream's name of ``ShortTermMemoryOptions.STATE_TTL_MS``."""

    SHORT_TERM_MEMORY_STATE_TTL_UPDATE_TYPE = ShortTermMemoryOptions.STATE_TTL_UPDATE_TYPE
    """Upstream's name of ``ShortTermMemoryOptions.STATE_TTL_UPDATE_TYPE``."""

    SHORT_TERM_MEMORY_STATE_TTL_VISIBILITY = ShortTermMemoryOptions.STATE_TTL_VISIBILITY
    """Upstream's name of ``ShortTermMemoryOptions.STATE_TTL_VISIBILITY``."""

    AGENT_RUN_BEGIN_EVENT = ConfigOption("agent-run.begin-event", bool, False)
    """Upstream sends an event when a run begins; accepted, no effect here."""


class MemoryEventOptions:
    """Upstream's memory observation events (accepted, no effect here)."""

    MEMORY_GENERATE_EVENT = ConfigOption("memory.generate-event", bool, None)
    SHORT_TERM_WRITE = ConfigOption("memory.generate-event.short-term-write", bool, None)
    SHORT_TERM_READ = ConfigOption("memory.generate-event.short-term-read", bool, None)
    SENSORY_WRITE = ConfigOption("memory.generate-event.sensory-write", bool, None)
    SENSORY_READ = ConfigOption("memory.generate-event.sensory-read", bool, None)
    LONG_TERM_UPDATE = ConfigOption("memory.generate-event.long-term-update", bool, None)
    LONG_TERM_GET = ConfigOption("memory.generate-event.long-term-get", bool, None)
    LONG_TERM_SEARCH = ConfigOption("memory.generate-event.long-term-search", bool, None)


class JournalOptions:
    """Options of the durable-execution journal."""

    DIR = ConfigOption("journal.dir", str, None)
    """Directory of the SQLite journal; unset keeps the journal in memory."""

    DURABILITY = ConfigOption("journal.durability", str, "batch")
    """``sync`` (acknowledge after fsync), ``batch`` (group commit) or ``none``."""

    ALLOW_PICKLE = ConfigOption("journal.allow-pickle", bool, False)
    """Pickle values the codec cannot carry. Off: reading a journal never runs code."""

    COMPACTION_INTERVAL = ConfigOption("journal.compaction.interval", int, 1000)
    """Commits between two compactions (folding committed runs into memory snapshots)."""

    MAX_RECORD_BYTES = ConfigOption("journal.max-record-bytes", int, None)
    """The most bytes one journal record may take (a durable result, a run's memory changes and
    outputs); a bigger one fails its call or run. Unset: what SQLite can hold (about 1 GB)."""

    ALLOW_LOST_WRITES = ConfigOption("journal.allow-lost-writes", bool, False)
    """Resume from a journal that lost committed writes (a missing or damaged ``-wal`` file, a
    copy of the main file alone); their runs then run again. Off: such a journal is refused."""

    DIVERGENCE = ConfigOption("durable.divergence", str, "warn")
    """A replayed run calling something else than recorded: ``warn`` and re-execute from that
    slot, or ``strict`` (raise ``NonDeterminismError``)."""


class AgentConfigOptions(AgentExecutionOptions, ShortTermMemoryOptions, JournalOptions):
    """Every option the runtime reads, and every member of upstream's ``AgentConfigOptions``
    under its key and default. Those that mean nothing on this runtime (an event logger, a
    Kafka or Fluss action-state store) are accepted and logged once as having no effect."""

    EVENT_LOGGER_TYPE = ConfigOption("eventLoggerType", LoggerType, LoggerType.SLF4J)
    CONDITION_EVALUATION_FAILURE_STRATEGY = ConfigOption(
        "action.trigger-condition.evaluate-failure-strategy",
        ConditionEvaluationFailureStrategy,
        ConditionEvaluationFailureStrategy.WARN_AND_SKIP,
    )
    BASE_LOG_DIR = ConfigOption("baseLogDir", str, None)
    PRETTY_PRINT = ConfigOption("prettyPrint", bool, False)
    ACTION_STATE_STORE_BACKEND = ConfigOption("actionStateStoreBackend", str, None)
    KAFKA_BOOTSTRAP_SERVERS = ConfigOption("kafkaBootstrapServers", str, "localhost:9092")
    KAFKA_ACTION_STATE_TOPIC = ConfigOption("kafkaActionStateTopic", str, None)
    KAFKA_ACTION_STATE_TOPIC_NUM_PARTITIONS = ConfigOption(
        "kafkaActionStateTopicNumPartitions", int, 64
    )
    KAFKA_ACTION_STATE_TOPIC_REPLICATION_FACTOR = ConfigOption(
        "kafkaActionStateTopicReplicationFactor", int, 1
    )
    FLUSS_BOOTSTRAP_SERVERS = ConfigOption("flussBootstrapServers", str, "localhost:9123")
    FLUSS_ACTION_STATE_DATABASE = ConfigOption("flussActionStateDatabase", str, "flink_agents")
    FLUSS_ACTION_STATE_TABLE = ConfigOption("flussActionStateTable", str, None)
    FLUSS_ACTION_STATE_TABLE_BUCKETS = ConfigOption("flussActionStateTableBuckets", int, 64)
    FLUSS_SECURITY_PROTOCOL = ConfigOption("flussSecurityProtocol", str, "PLAINTEXT")
    FLUSS_SASL_MECHANISM = ConfigOption("flussSaslMechanism", str, "PLAIN")
    FLUSS_SASL_JAAS_CONFIG = ConfigOption("flussSaslJaasConfig", str, None)
    FLUSS_SASL_USERNAME = ConfigOption("flussSaslUsername", str, None)
    FLUSS_SASL_PASSWORD = ConfigOption("flussSaslPassword", str, None)
    JOB_IDENTIFIER = ConfigOption("job-identifier", str, None)
    EVENT_LOG_LEVEL = ConfigOption("event-log.level", EventLogLevel, EventLogLevel.STANDARD)
    EVENT_LOG_TRACE_ENABLED = ConfigOption("event-log.trace.enabled", bool, False)
    EVENT_LOG_MAX_STRING_LENGTH = ConfigOption("event-log.standard.max-string-length", int, 2000)
    EVENT_LOG_MAX_ARRAY_ELEMENTS = ConfigOption("event-log.standard.max-array-elements", int, 20)
    EVENT_LOG_MAX_DEPTH = ConfigOption("event-log.standard.max-depth", int, 5)
    EVENT_LISTENERS = ConfigOption("event-listeners", list, None)


_NO_EVENT_LOG = "this runtime logs runs through structlog and has no event log"
_JOURNAL_IS_THE_STORE = "the journal is the action-state store here (set journal.dir)"

# Upstream keys accepted without effect on this runtime, and why.
OPTIONS_WITHOUT_EFFECT: dict[str, str] = {
    AgentExecutionOptions.AGENT_RUN_BEGIN_EVENT.key: "no run-begin event is sent",
    AgentConfigOptions.EVENT_LOGGER_TYPE.key: _NO_EVENT_LOG,
    AgentConfigOptions.BASE_LOG_DIR.key: _NO_EVENT_LOG,
    AgentConfigOptions.PRETTY_PRINT.key: _NO_EVENT_LOG,
    AgentConfigOptions.EVENT_LOG_LEVEL.key: _NO_EVENT_LOG,
    AgentConfigOptions.EVENT_LOG_TRACE_ENABLED.key: _NO_EVENT_LOG,
    AgentConfigOptions.EVENT_LOG_MAX_STRING_LENGTH.key: _NO_EVENT_LOG,
    AgentConfigOptions.EVENT_LOG_MAX_ARRAY_ELEMENTS.key: _NO_EVENT_LOG,
    AgentConfigOptions.EVENT_LOG_MAX_DEPTH.key: _NO_EVENT_LOG,
    AgentConfigOptions.EVENT_LISTENERS.key: "event listeners are not supported",
    AgentConfigOptions.CONDITION_EVALUATION_FAILURE_STRATEGY.key: (
        "triggers are event types here, never expressions that could fail"
    ),
    AgentConfigOptions.JOB_IDENTIFIER.key: "jobs are identified by their journal directory",
    **{
        option.key: _JOURNAL_IS_THE_STORE
        for option in (
            AgentConfigOptions.ACTION_STATE_STORE_BACKEND,
            AgentConfigOptions.KAFKA_BOOTSTRAP_SERVERS,
            AgentConfigOptions.KAFKA_ACTION_STATE_TOPIC,
            AgentConfigOptions.KAFKA_ACTION_STATE_TOPIC_NUM_PARTITIONS,
            AgentConfigOptions.KAFKA_ACTION_STATE_TOPIC_REPLICATION_FACTOR,
            AgentConfigOptions.FLUSS_BOOTSTRAP_SERVERS,
            AgentConfigOptions.FLUSS_ACTION_STATE_DATABASE,
            AgentConfigOptions.FLUSS_ACTION_STATE_TABLE,
            AgentConfigOptions.FLUSS_ACTION_STATE_TABLE_BUCKETS,
            AgentConfigOptions.FLUSS_SECURITY_PROTOCOL,
            AgentConfigOptions.FLUSS_SASL_MECHANISM,
            AgentConfigOptions.FLUSS_SASL_JAAS_CONFIG,
            AgentConfigOptions.FLUSS_SASL_USERNAME,
            AgentConfigOptions.FLUSS_SASL_PASSWORD,
        )
    },
    **{
        value.key: "memory observation events are not sent"
        for value in vars(MemoryEventOptions).values()
        if isinstance(value, ConfigOption)
    },
}

_reported_without_effect: set[str] = set()


def report_options_without_effect(config: ReadableConfiguration) -> list[str]:
    """Log (once per process and key) each key set in ``config`` that this runtime accepts
    from upstream but does not act on; returns the keys set."""
    keys = [key for key in OPTIONS_WITHOUT_EFFECT if config.contains(key)]
    for key in keys:
        if key not in _reported_without_effect:
            _reported_without_effect.add(key)
            logger.warning(
                "configuration key has no effect on this runtime",
                key=key,
                reason=OPTIONS_WITHOUT_EFFECT[key],
            )
    return keys


# Keyword arguments of get_execution_environment() and the configuration keys they set.
KEYWORD_OPTIONS: dict[str, str] = {
    "num_async_threads": AgentExecutionOptions.NUM_ASYNC_THREADS.key,
    "error_handling_strategy": AgentExecutionOptions.ERROR_HANDLING_STRATEGY.key,
    "max_retries": AgentExecutionOptions.MAX_RETRIES.key,
    "mailbox_capacity": AgentExecutionOptions.MAILBOX_CAPACITY.key,
    "max_events_per_run": AgentExecutionOptions.MAX_EVENTS_PER_RUN.key,
    "action_timeout": AgentExecutionOptions.ACTION_TIMEOUT.key,
    "run_timeout": AgentExecutionOptions.RUN_TIMEOUT.key,
    "journal_dir": JournalOptions.DIR.key,
    "durability": JournalOptions.DURABILITY.key,
    "divergence": JournalOptions.DIVERGENCE.key,
    "allow_pickle": JournalOptions.ALLOW_PICKLE.key,
}


def keyword_settings(
    kwargs: Mapping[str, Any], allowed: Iterable[str], where: str, besides: str
) -> dict[str, Any]:
    """The configuration set by keyword arguments of ``where`` (None means "not set", a path
    becomes a string). A keyword not in ``allowed`` raises ``TypeError`` listing the valid ones
    and ``besides`` (the call's other arguments)."""
    valid = sorted(allowed)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(
            f"{where} got unknown keyword argument(s) {unknown}; valid: {valid} and {besides}"
        )
    return {
        KEYWORD_OPTIONS[name]: os.fspath(value) if isinstance(value, os.PathLike) else value
        for name, value in kwargs.items()
        if value is not None
    }
