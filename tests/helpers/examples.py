"""Loading an example script of ``examples/`` as a module, as the tests that exercise it need."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "delegation.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("delegation_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module
