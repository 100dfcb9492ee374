"""The echo target's one wait rule: the state file names the version where it was asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_mlops_provider.deploy import DeployProbe
from mlops_echo_target.state import read_state


@dataclass
class EchoProbe(DeployProbe):
    """Done when ``role`` (``live`` or ``candidate``) of ``model_name`` is ``version``."""

    model_name: str
    version: str | None
    role: str = "candidate"

    def read(self) -> dict[str, Any]:
        return read_state(self.model_name)

    def classify(self, status: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if status.get(self.role) == self.version:
            return "done", {}
        if status.get("failed") == self.version:
            return "failed", {"message": f"v{self.version} was marked failed"}
        return None

    @property
    def resource(self) -> str:
        return f"the echo {self.role} of {self.model_name!r}"
