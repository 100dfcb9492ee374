"""Verify: every request reads the state file and checks the deployed version is the candidate."""

from __future__ import annotations

import time
from typing import Any

from airflow_mlops_provider.operators.deploy import DeploymentVerifyOperator
from mlops_echo_target.state import read_state


class EchoVerifyOperator(DeploymentVerifyOperator):
    def result_head(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return {"model_version": deployment["model_version"]}

    def request_sender(self, deployment: dict[str, Any], rows: list, columns: list) -> Any:
        def send() -> float:
            started = time.perf_counter()
            if read_state(deployment["model_name"])["candidate"] != deployment["model_version"]:
                raise self.failure(f"v{deployment['model_version']} is not the echo candidate", reason="smoke")
            return (time.perf_counter() - started) * 1000

        return send
