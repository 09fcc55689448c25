"""The Flink ``AgentsExecutionEnvironment``: DataStreams and Tables in, agent outputs out.

``AgentsExecutionEnvironment.get_execution_environment(env)`` with a PyFlink
``StreamExecutionEnvironment`` returns a ``FlinkExecutionEnvironment``. Its builders put one
``AgentProcessFunction`` (see ``bridge.function``) on the keyed input stream; ``execute()``
submits the job, from a worker thread when awaited.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Coroutine, Hashable
from pathlib import Path
from typing import Any

import anyio.to_thread
from py4j.protocol import Py4JJavaError
from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedStream, StreamExecutionEnvironment

from flink_agents_async.agent import Agent, AgentPlan
from flink_agents_async.config import (
    KEYWORD_OPTIONS,
    Configuration,
    keyword_settings,
    load_agent_config_file,
)
from flink_agents_async.environment import AgentBuilder, AgentsExecutionEnvironment
from flink_agents_async.errors import (
    ConfigurationError,
    ExecutionError,
    InputError,
)
from flink_agents_async.host_api import MustAwait, loop_is_running

from .function import AgentProcessFunction
from .settings import apply_defaults, check_importable

__all__ = ["FlinkAgentBuilder", "FlinkExecutionEnvironment", "FlinkJobError", "flink_conf_file"]

# Keyword arguments that mean nothing on Flink: the journal lives in keyed state there.
# (mailbox_capacity does: how many inputs of a key the event loop holds at a time.)
_LOCAL_ONLY = {"journal_dir", "durability"}


class FlinkJobError(ExecutionError):
    """Raised by ``FlinkExecutionEnvironment.execute()`` when the Flink job failed.

    The job failed as a whole, so this is an ``ExecutionError`` (the local host re-raises an
    action's own exception instead: it has the object, Flink only its Java text). ``failures``
    is empty: the message names the failed run (key, action and cause) when an action's error
    failed the job, and the original exception is ``__cause__``.
    """

    def __init__(self, job_name: str, reason: str) -> None:
        self.job_name = job_name
        super().__init__([], f"the Flink job {job_name!r} failed: {reason}")


# How an error of this package raised in a Flink worker shows in the Java exception text:
# "<class 'flink_agents_async.errors.X'>: message" in thread mode, a traceback's last line
# "flink_agents_async.errors.X: message" in process mode.
_WORKER_ERROR = re.compile(r"(?:<class ')?flink_agents_async\.errors\.(\w+)(?:'>)?: (.+)")


def _failure_reason(error: BaseException) -> str:
    """The message of the first error of this package in the Java text (a failed run's names
    its key, action and cause), else the text's first line."""
    text = str(error)
    found = _WORKER_ERROR.search(text)
    if found is not None:
        name, message = found.group(1), found.group(2).strip()
        return message if name == "ActionFailedError" else f"{name}: {message}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def flink_conf_file() -> Path | None:
    """``$FLINK_CONF_DIR/config.yaml``, else the legacy ``flink-conf.yaml`` there, or None."""
    directory = os.environ.get("FLINK_CONF_DIR")
    if not directory:
        return None
    for name in ("config.yaml", "flink-conf.yaml"):
        candidate = Path(directory) / name
        if candidate.is_file():
            return candidate
    return None


class FlinkAgentBuilder(AgentBuilder):
    """An agent applied to a keyed DataStream; its outputs as a DataStream or a Table."""

    def __init__(
        self, env: FlinkExecutionEnvironment, keyed: KeyedStream, key_selector: Any = None
    ) -> None:
        self._env = env
        self._keyed = keyed
        self._key_selector = key_selector  # the one that keyed the stream, when we keyed it
        self._plan: AgentPlan | None = None
        self._outputs: dict[tuple[str, bool], DataStream] = {}  # by (output type, with_key)

    def apply(self, agent: Agent) -> FlinkAgentBuilder:
        """Validate ``agent`` (raises naming the culprit) and check the workers can load it."""
        if self._plan is not None:
            raise RuntimeError("this builder already has an agent: apply() takes one agent")
        plan = AgentPlan.from_agent(agent, self._env.resources)
        check_importable(self._env.flink_env, plan, agent)
        self._plan = plan
        return self

    def to_datastream(self, output_type: Any = None, *, with_key: bool = False) -> DataStream:
        """The agent's outputs as a DataStream (``OutputEvent.output`` values, in commit order
        per key). ``output_type`` is their Flink type (default: pickled Python objects); with
        ``with_key=True`` each element is a ``(key, output)`` tuple instead."""
        if with_key and output_type is not None:
            raise TypeError(
                "to_datastream(with_key=True) emits (key, output) tuples as pickled objects; "
                "leave output_type unset (or map the tuples to your type downstream)"
            )
        if self._plan is None:
            raise RuntimeError("call apply(agent) on the builder before asking for its outputs")
        stream = self._outputs.get((repr(output_type), with_key))
        if stream is None:
            emit: Callable[[Hashable, Any], Any] | None = _with_key if with_key else None
            if output_type is not None and _is_row_type(output_type):
                emit = _RowConverter(output_type)
            function = AgentProcessFunction(
                self._plan, self._env.get_config().copy(), emit, self._key_selector
            )
            stream = self._keyed.process(
                function, output_type=output_type or Types.PICKLED_BYTE_ARRAY()
            ).name(f"agent {self._plan.agent_name}")
            self._outputs[(repr(output_type), with_key)] = stream
        return stream

    def to_table(self, schema: Any, output_type: Any) -> Any:
        """The agent's outputs as a Table: ``output_type`` is a ``Types.ROW_NAMED(...)`` (dict
        outputs are converted by field name), ``schema`` the Table schema."""
        if not _is_row_type(output_type):
            raise TypeError(
                "to_table() needs output_type=Types.ROW_NAMED([...], [...]) describing the "
                f"output rows, got {output_type!r}"
            )
        stream = self.to_datastream(output_type)
        return self._env.table_environment().from_data_stream(stream, schema)


def _with_key(key: Hashable, output: Any) -> tuple[Hashable, Any]:
    return key, output


def _is_row_type(output_type: Any) -> bool:
    return type(output_type).__name__ == "RowTypeInfo"


class _RowConverter:
    """Turns dict outputs into Rows of the given row type (Rows and tuples pass through)."""

    def __init__(self, row_type: Any) -> None:
        self.names = list(row_type.get_field_names())

    def __call__(self, key: Hashable, output: Any) -> Any:
        if isinstance(output, Row):
            return output
        if isinstance(output, dict):
            missing = [name for name in self.names if name not in output]
            if missing:
                raise InputError(
                    f"output {output!r:.200} of key {key!r} lacks the fields {missing} of the "
                    "output row type"
                )
            return Row(*(output[name] for name in self.names))
        if isinstance(output, tuple):
            return Row(*output)
        raise InputError(
            f"output {output!r:.200} of key {key!r} is a {type(output).__name__}; a row output "
            "type needs dict, tuple or Row outputs"
        )


class FlinkExecutionEnvironment(AgentsExecutionEnvironment):
    """Runs agents as a PyFlink job: one actor per key inside a keyed process function."""

    def __init__(
        self,
        env: StreamExecutionEnvironment,
        t_env: Any = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.flink_env = env
        self._t_env = t_env
        settings = keyword_settings(
            kwargs, set(KEYWORD_OPTIONS) - _LOCAL_ONLY, "get_execution_environment(env)",
            "config={...} (journal options mean nothing on Flink)",
        )  # fmt: skip
        conf_file = flink_conf_file()
        if conf_file is not None:
            self._config.update(load_agent_config_file(conf_file))
        if config:
            self._config.update(config)
        self._config.update(settings)
        self.applied_defaults = apply_defaults(env)
        self._builders: list[FlinkAgentBuilder] = []

    def table_environment(self) -> Any:
        if self._t_env is None:
            from pyflink.table import StreamTableEnvironment

            self._t_env = StreamTableEnvironment.create(self.flink_env)
        return self._t_env

    def from_datastream(self, input: Any, key_selector: Any = None) -> FlinkAgentBuilder:
        """Inputs from a DataStream: a ``KeyedStream`` is used as keyed; any other stream needs
        ``key_selector`` (a ``KeySelector`` or a function of the element).

        As Flink requires of every key selector, ``key_selector`` must be deterministic: the
        agent's function applies it again to each input (asking Flink for the current key costs
        a call into the JVM per record in ``thread`` mode), and fails the job if the key it
        gets for a key's first input differs from Flink's."""
        if not isinstance(input, DataStream):
            raise TypeError(
                f"from_datastream() takes a PyFlink DataStream, got {type(input).__name__}"
            )
        if key_selector is not None:
            keyed = input.key_by(key_selector)
        elif isinstance(input, KeyedStream):
            keyed = input
        else:
            raise InputError(
                "from_datastream() got a stream that is not keyed and no key_selector: every "
                "input needs a key (its actor). Pass key_selector=lambda x: ... or key the "
                "stream with .key_by(...) first"
            )
        builder = FlinkAgentBuilder(self, keyed, key_selector)
        self._builders.append(builder)
        return builder

    def from_table(self, input: Any, key_selector: Any = None) -> FlinkAgentBuilder:
        """Inputs from a Table: each row (a ``Row``) is one input; ``key_selector`` picks its
        key, e.g. ``lambda row: row.user_id``."""
        if key_selector is None:
            raise InputError(
                "from_table() needs a key_selector (e.g. key_selector=lambda row: row.id): a "
                "table is not keyed, and every input needs a key"
            )
        t_env = self._t_env or getattr(input, "_t_env", None)
        if t_env is None:
            raise TypeError(f"from_table() takes a PyFlink Table, got {type(input).__name__}")
        self._t_env = t_env
        return self.from_datastream(t_env.to_data_stream(input), key_selector)

    def get_config(self, path: str | Path | None = None) -> Configuration:
        """This environment's configuration: ``$FLINK_CONF_DIR/config.yaml`` (``agent:``),
        then the keyword arguments; with ``path``, that file's ``agent:`` section on top."""
        return super().get_config(path)

    def execute(self, job_name: str | None = None) -> Coroutine[Any, Any, Any] | Any:
        """Submit the job and wait for it. ``await env.execute()`` runs the blocking submission
        in a worker thread; called without a running event loop it simply blocks."""
        if not any(builder._outputs for builder in self._builders):
            raise RuntimeError(
                "nothing to execute: call from_datastream(...).apply(agent).to_datastream() (or "
                "to_table) first"
            )
        name = job_name or "flink-agents-async"
        if not loop_is_running():
            return self._run_job(name)
        return MustAwait(anyio.to_thread.run_sync(self._run_job, name), "env.execute()")

    def _run_job(self, name: str) -> Any:
        try:
            return self.flink_env.execute(name)
        except Py4JJavaError as error:  # the job failed (bad arguments raise before it starts)
            raise FlinkJobError(name, _failure_reason(error)) from error


def create(env: Any, t_env: Any = None, **kwargs: Any) -> FlinkExecutionEnvironment:
    if not isinstance(env, StreamExecutionEnvironment):
        raise ConfigurationError(
            "get_execution_environment(env) takes a pyflink.datastream.StreamExecutionEnvironment"
            f", got {type(env).__name__}"
        )
    return FlinkExecutionEnvironment(env, t_env, **kwargs)
