"""Working PyFlink defaults for the chosen execution mode, and the checks that an agent can be
shipped to the Python workers.

The bridge only fills in options the user left unset (in the environment's configuration, or
with ``env.set_buffer_timeout``), and says what it chose in a log line:

* both modes: ``python.executable`` and ``python.client.executable`` = this interpreter (PyFlink
  would otherwise start whatever ``python`` is on PATH, usually without PyFlink or this package)
  and ``python.pythonpath`` = this interpreter's import path minus the standard library, so the
  workers import the agent's modules exactly as the client did;
* ``process`` mode (PyFlink's default): the state caches (``python.state.cache-size``,
  ``python.map-state.read-cache-size`` / ``write-cache-size``) are raised to 100,000 entries, as a
  key uses four states and the default 1,000 entries thrash with a few hundred keys; bundles are
  closed after 10 ms (``python.fn-execution.bundle.time``) so that timers and outputs are not held
  back for a second;
* ``thread`` mode: nothing more (records and timers are not bundled there);
* both modes: a 10 ms network buffer timeout instead of Flink's 100 ms, so that outputs leave
  soon after their run commits.
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from flink_agents_async.agent import AgentPlan
from flink_agents_async.errors import ConfigurationError
from flink_agents_async.logging import library_logger

__all__ = ["apply_defaults", "check_importable", "execution_mode", "worker_paths"]

logger = library_logger("flink_agents_async.bridge")

_PROCESS_DEFAULTS = {
    "python.state.cache-size": "100000",
    "python.map-state.read-cache-size": "100000",
    "python.map-state.write-cache-size": "100000",
    "python.fn-execution.bundle.time": "10",
}
_BUFFER_TIMEOUT_MS = 10
_FLINK_DEFAULT_BUFFER_TIMEOUT_MS = 100


def environment_config(env: Any) -> Any:
    """The Java ``Configuration`` that PyFlink reads its ``python.*`` options from."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    return jvm.org.apache.flink.python.util.PythonConfigUtil.getEnvironmentConfig(
        env._j_stream_execution_environment
    )


def execution_mode(env: Any) -> str:
    return str(environment_config(env).getString("python.execution-mode", "process")).lower()


def worker_paths() -> list[str]:
    """This interpreter's import path without the standard library (the workers run the same
    interpreter, which has its own)."""
    stdlib = {Path(sys.base_prefix).resolve(), Path(sys.base_exec_prefix).resolve()}
    paths: list[str] = []
    for entry in sys.path:
        path = Path(entry or os.getcwd()).resolve()
        if not path.is_dir() or str(path) in paths:
            continue
        inside_stdlib = any(root in path.parents or root == path for root in stdlib)
        if inside_stdlib and "site-packages" not in path.parts:
            continue
        paths.append(str(path))
    return paths


def apply_defaults(env: Any) -> dict[str, str]:
    """Set the working defaults the user did not set; returns what was set."""
    config = environment_config(env)
    mode = execution_mode(env)
    chosen: dict[str, str] = {
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.pythonpath": os.pathsep.join(worker_paths()),
    }
    if mode == "process":
        chosen.update(_PROCESS_DEFAULTS)
    applied = {}
    for key, value in chosen.items():
        if config.getString(key, None) is None:
            config.setString(key, value)
            applied[key] = value
    if (
        config.getString("execution.buffer-timeout", None) is None
        and env.get_buffer_timeout() == _FLINK_DEFAULT_BUFFER_TIMEOUT_MS
    ):
        env.set_buffer_timeout(_BUFFER_TIMEOUT_MS)
        applied["execution.buffer-timeout"] = f"{_BUFFER_TIMEOUT_MS} ms"
    if applied:
        logger.debug("applied PyFlink defaults for the bridge", mode=mode, options=applied)
    return applied


def _importable_roots(env: Any) -> list[Path]:
    config = environment_config(env)
    roots = [str(config.getString("python.pythonpath", "") or "")]
    roots.append(str(config.getString("python.files", "") or "").replace(",", os.pathsep))
    entries = [entry for group in roots for entry in group.split(os.pathsep) if entry]
    executable = config.getString("python.executable", None)
    if executable is None or Path(executable).resolve() == Path(sys.executable).resolve():
        entries.extend(site.getsitepackages())
    resolved = []
    for entry in entries:
        path = Path(entry).resolve()
        resolved.append(path.parent if path.is_file() else path)
    return resolved


def _modules_of(plan: AgentPlan, agent: Any) -> Iterable[ModuleType]:
    names = {type(agent).__module__}
    names.update(getattr(spec.func, "__module__", None) or "" for spec in plan.actions)
    for name in sorted(names):
        module = sys.modules.get(name)
        if module is not None and name != "__main__":
            yield module


def _import_root(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    if not file:
        return None  # built in or a namespace: nothing to find on a path
    path = Path(file).resolve()
    depth = module.__name__.count(".") + (1 if path.stem == "__init__" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return root


def check_importable(env: Any, plan: AgentPlan, agent: Any) -> None:
    """Raise if a module the agent's code lives in cannot be imported by the Python workers
    (classes and functions from importable modules are pickled by reference, so the workers
    import them; those of ``__main__`` travel by value)."""
    roots = _importable_roots(env)
    for module in _modules_of(plan, agent):
        root = _import_root(module)
        if root is None or any(root == path for path in roots):
            continue
        raise ConfigurationError(
            f"agent {plan.agent_name!r} uses module {module.__name__!r} ({module.__file__}), "
            f"which the Flink Python workers cannot import: {root} is not on their path "
            f"(python.pythonpath / python.files). Add it with env.add_python_file({str(root)!r}) "
            "or put it on python.pythonpath"
        )
