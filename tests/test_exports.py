"""Every name a module exports in ``__all__`` exists, and the package's public names carry
docstrings."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import flink_agents_async


def modules_with_all() -> list[str]:
    names = ["flink_agents_async"]
    for info in pkgutil.walk_packages(flink_agents_async.__path__, "flink_agents_async."):
        if not info.name.endswith(".__main__"):  # runs the CLI when imported
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", modules_with_all())
def test_every_exported_name_exists(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:  # an optional provider SDK: its module names it
        pytest.fail(f"{module_name} does not import: {error}")
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{module_name}.__all__ names what it does not define"


def test_the_public_classes_and_functions_have_docstrings() -> None:
    undocumented = [
        name
        for name in flink_agents_async.__all__
        if (inspect.isclass(obj := getattr(flink_agents_async, name)) or inspect.isfunction(obj))
        and not inspect.getdoc(obj)
    ]
    assert undocumented == []
