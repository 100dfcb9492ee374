"""Where the embedded defaults live.

Everything a laptop run creates sits under one folder, ``MLOPS_HOME`` (default ``.mlops/`` at
the repository root, or the current directory when the package is installed elsewhere).
Deleting that folder resets the world. Production swaps each part through Airflow
connections, never through these paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MLOPS_HOME"


def _default_home() -> Path:
    # A source checkout (pyproject.toml beside the package) keeps its state at the repo root;
    # an installed package falls back to the working directory.
    repo_root = Path(__file__).resolve().parents[2]
    if (repo_root / "pyproject.toml").is_file() and (repo_root / "airflow_mlops_provider").is_dir():
        return repo_root / ".mlops"
    return Path.cwd() / ".mlops"


@dataclass(frozen=True)
class MlopsHome:
    """The folder layout under ``MLOPS_HOME``; paths only, nothing is created on access."""

    root: Path

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def dvc_repo(self) -> Path:
        return self.root / "data-repo"

    @property
    def dvc_remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger" / "decisions.jsonl"

    def ensure(self) -> MlopsHome:
        """Create the top-level folders (idempotent) and return self."""
        for path in (self.root, self.mlflow_dir, self.mlflow_artifacts, self.data_dir,
                     self.outputs_dir, self.reports_dir, self.ledger_path.parent):
            path.mkdir(parents=True, exist_ok=True)
        return self


def mlops_home() -> MlopsHome:
    """Read ``MLOPS_HOME`` from the environment on every call, so tests can isolate it."""
    raw = os.environ.get(ENV_VAR)
    root = Path(raw).expanduser() if raw else _default_home()
    return MlopsHome(root.resolve())
