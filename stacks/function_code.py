"""Reads a module of `functions/` at synth, for what the stack and a function must agree on (a function's
typed models, for example). Only modules that import nothing from the project can be read this way."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"


def function_module(relative_path: str) -> ModuleType:
    """`relative_path` is relative to functions/, e.g. `ingest_telemetry/kinds.py`."""
    path = FUNCTIONS_DIR / relative_path
    name = "functions." + relative_path.removesuffix(".py").replace("/", ".")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"functions/{relative_path} cannot be read")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
