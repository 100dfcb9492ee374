"""Deploy (as the candidate), promote and roll back by writing the state file, then wait on the probe."""

from typing import Any

from airflow_mlops_provider.operators.deploy import DeployTargetOperator, DeployTargetRollbackOperator
from mlops_echo_target.probe import EchoProbe
from mlops_echo_target.state import read_state, write_state


class EchoDeployOperator(DeployTargetOperator):
    template_fields = (*DeployTargetOperator.template_fields, "model_name", "model_version")

    def __init__(self, *, model_name: str, model_version: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name, self.model_version = model_name, model_version

    def execute(self, context: Any) -> dict[str, Any]:
        version = self.resolve_model_version(self.model_name, self.model_version)
        write_state(self.model_name, candidate=version)
        return self.wait(context, EchoProbe(self.model_name, version), {"model_version": version})

    def result(self, context: Any, details: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        return {"model_name": self.model_name, **details, "serving": status}


class EchoPromoteOperator(EchoDeployOperator):
    def execute(self, context: Any) -> dict[str, Any]:
        version = read_state(self.model_name)["candidate"]
        write_state(self.model_name, live=version, candidate=None)
        return self.wait(context, EchoProbe(self.model_name, version, "live"), {"model_version": version})


class EchoRollbackOperator(DeployTargetRollbackOperator):
    result = EchoDeployOperator.result

    def execute(self, context: Any) -> dict[str, Any]:
        version = self.champion_version()  # what @champion names now serves; nothing when unset
        write_state(self.model_name, live=version, candidate=None)
        return self.wait(context, EchoProbe(self.model_name, version, "live"), {"model_version": version})
