"""Where the embedded defaults live.

Everything a run creates on local disk sits under one folder, ``MLOPS_HOME``. Deleting that
folder resets the world. Production swaps each part through Airflow connections, never through
these paths. The folder is, first match wins:

1. the ``MLOPS_HOME`` environment variable;
2. Airflow's config ``[mlops] home`` (``AIRFLOW__MLOPS__HOME``, or the ``airflow.cfg`` that
   ``AIRFLOW_CONFIG`` / ``AIRFLOW_HOME`` name; read here without importing Airflow);
3. ``.mlops/`` at the repository root when the package runs from a source checkout of this
   project (a ``.git`` and a ``pyproject.toml`` naming ``airflow-mlops-provider`` beside the
   package, which is not inside ``site-packages``);
4. otherwise ``$AIRFLOW_HOME/mlops`` (``~/airflow/mlops`` without ``AIRFLOW_HOME``): the same
   folder for the scheduler, the workers, the triggerer and the dag-processor of one deployment,
   never the working directory and never inside a virtualenv.

The home in use is logged once per process (and again if it changes).
"""

from __future__ import annotations

import configparser
import functools
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "MLOPS_HOME"
CONFIG_SECTION, CONFIG_KEY = "mlops", "home"
PROJECT_NAME = "airflow-mlops-provider"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]

log = logging.getLogger(__name__)
_logged: set[tuple[str, str]] = set()


def airflow_home() -> Path:
    """Airflow's own rule: ``AIRFLOW_HOME``, else ``~/airflow``."""
    return Path(os.path.expanduser(os.environ.get("AIRFLOW_HOME") or "~/airflow"))


def _in_installed_location(path: Path) -> bool:
    parts = set(path.parts)
    if parts & {"site-packages", "dist-packages"}:
        return True
    # A package inside the running virtualenv is installed there, not checked out.
    venv = Path(sys.prefix).resolve()
    return venv != Path(sys.base_prefix).resolve() and path.is_relative_to(venv)


def _project_name(pyproject: Path) -> str | None:
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        import tomllib

        return tomllib.loads(text).get("project", {}).get("name")
    except ModuleNotFoundError:  # Python 3.10: no tomllib; the [project] name line is enough
        match = re.search(r'^\[project\][^\[]*?^name\s*=\s*"([^"]+)"', text, re.M | re.S)
        return match.group(1) if match else None
    except ValueError:  # not valid TOML: not our checkout
        return None


def source_checkout(package_dir: Path | None = None) -> Path | None:
    """The repository root when ``package_dir`` (default: this package) is in a source checkout of this project."""
    package_dir = package_dir or _PACKAGE_DIR
    root = package_dir.parent
    if _in_installed_location(package_dir):
        return None
    if not (root / ".git").exists():  # a directory, or a file in a git worktree
        return None
    return root if _project_name(root / "pyproject.toml") == PROJECT_NAME else None


def configured_value(key: str) -> str | None:
    """``[mlops] <key>`` from the environment (``AIRFLOW__MLOPS__<KEY>``) or the Airflow config file
    (the one ``AIRFLOW_CONFIG`` / ``AIRFLOW_HOME`` name), read without importing Airflow; None when unset."""
    value = os.environ.get(f"AIRFLOW__{CONFIG_SECTION.upper()}__{key.upper()}", "").strip()
    if value:
        return value
    cfg = Path(os.path.expanduser(os.environ.get("AIRFLOW_CONFIG") or str(airflow_home() / "airflow.cfg")))
    try:
        stamp = cfg.stat().st_mtime_ns
    except OSError:
        return None
    value = _section_from_file(str(cfg), stamp).get(key, "").strip()
    return os.path.expandvars(value) if value else None


def _configured_home() -> str | None:
    """``[mlops] home`` from the environment or the Airflow config file (no Airflow import)."""
    return configured_value(CONFIG_KEY)


@functools.lru_cache(maxsize=8)
def _section_from_file(cfg: str, stamp: int) -> dict[str, str]:
    """The ``[mlops]`` section of one airflow.cfg (cached per file and modification time: it is ~100 KB)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(cfg, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return {}
    return dict(parser.items(CONFIG_SECTION)) if parser.has_section(CONFIG_SECTION) else {}


def resolve_home() -> tuple[Path, str]:
    """``(folder, why)``: the ``MLOPS_HOME`` in use and which rule chose it."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw:
        return Path(raw).expanduser(), f"the {ENV_VAR} environment variable"
    configured = _configured_home()
    if configured:
        return Path(configured).expanduser(), f"Airflow config [{CONFIG_SECTION}] {CONFIG_KEY}"
    checkout = source_checkout()
    if checkout is not None:
        return checkout / ".mlops", f"the source checkout at {checkout}"
    return airflow_home() / "mlops", "the default under AIRFLOW_HOME"


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
    """The ``MLOPS_HOME`` in use, resolved on every call (so tests can isolate it); see the module doc."""
    root, why = resolve_home()
    root = root.resolve()
    if (str(root), why) not in _logged:
        _logged.add((str(root), why))
        log.info("MLOPS_HOME is %s (%s)", root, why)
    return MlopsHome(root)
