"""What serves where: ``MLOPS_HOME/echo/<model>.json`` = ``{"live": version, "candidate": version}``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def state_path(model_name: str) -> Path:
    from airflow_mlops_provider.core.settings import mlops_home

    return mlops_home().root / "echo" / f"{model_name}.json"


def read_state(model_name: str) -> dict[str, Any]:
    path = state_path(model_name)
    return json.loads(path.read_text()) if path.is_file() else {"live": None, "candidate": None}


def write_state(model_name: str, **changes: Any) -> dict[str, Any]:
    state = {**read_state(model_name), **changes}
    path = state_path(model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, path)  # atomic: a reader sees the old state or the new one
    return state
