"""Turn a check's verdict into an Asset event: ``drift detected`` and ``performance degraded``.

Each operator takes the check's result (an XCom), emits its one outlet Asset with the figures in
the event's extra only when the verdict fires, and skips otherwise (a skip schedules nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlops_provider.results import DegradationSignal, DriftSignal
from airflow_mlops_provider.version_compat import BaseOperator


def _outlet(operator: BaseOperator) -> Any:
    outlets = list(operator.outlets or [])
    if len(outlets) != 1:
        raise ValueError(f"Task {operator.task_id!r} emits exactly one Asset; it has outlets {outlets}")
    return outlets[0]


class SignalDriftDetectedOperator(BaseOperator):
    """Emit the outlet Asset (``drift detected``) with version, share and report when the drift
    policy fired; skip when it did not or when too few rows decided nothing.

    :param drift: :class:`~airflow_mlops_provider.results.DriftCheckResult` (the ``check_drift`` XCom). (templated)
    """

    template_fields: Sequence[str] = ("drift",)
    ui_color = "#ed0500"

    def __init__(self, *, drift: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.drift = drift

    def execute(self, context: Any) -> DriftSignal:
        from airflow.sdk.exceptions import AirflowSkipException

        drift = self.drift
        if drift.get("too_few_rows"):
            raise AirflowSkipException(f"drift not decided: {drift['too_few_rows']}")
        if not drift["drifted"]:
            raise AirflowSkipException(f"no drift: {drift['n_drifted']}/{drift['n_columns']} features drifted")
        extra: DriftSignal = {
            "model_name": drift["model_name"], "model_version": drift["model_version"],
            "drift_share": drift["drift_share"], "drifted_features": drift["drifted_features"],
            "prediction_drift": drift.get("prediction_drift"),
            "report": drift["report_path"], "data_path": drift["data_path"]}
        context["outlet_events"][_outlet(self)].extra = extra
        # The demo and `airflow dags test` users read this line on stdout.
        print(f"DRIFT DETECTED for {drift['model_name']} v{drift['model_version']}: {drift['reasons']}")
        return extra


class SignalPerformanceDegradedOperator(BaseOperator):
    """Emit the outlet Asset (``performance degraded``, with the figures) only when the decay policy
    fired for @champion.

    Once per check: a rerun for the same labels partition and version that was already signalled
    (an event of the same Asset, read through ``inlets``, with the same ``check_key``) skips, so it
    does not schedule a second retrain. Give the Asset as both ``outlets`` and ``inlets``.

    :param check: :class:`~airflow_mlops_provider.results.PerformanceCheckResult` (the
        ``check_performance`` XCom). (templated)
    :param history: how many earlier events of the Asset are read for the once-per-check rule.
    """

    template_fields: Sequence[str] = ("check",)
    ui_color = "#ed0500"

    def __init__(self, *, check: Any, history: int = 50, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.history = history

    def execute(self, context: Any) -> DegradationSignal:
        from airflow.sdk.exceptions import AirflowSkipException

        check = self.check
        if not check["degraded"]:
            versions = check["versions"]
            why = "; ".join(f"v{v}: {r['too_few_rows'] or 'within the policy'}" for v, r in versions.items())
            raise AirflowSkipException(f"no performance decay of @champion: {why or 'no labelled rows matched'}")
        asset = _outlet(self)
        version = check["champion_version"]
        verdict = check["versions"][version]
        counts = check["counts"]
        for event in context["inlet_events"][asset].ascending(False).limit(self.history):
            if (event.extra or {}).get("check_key") == verdict["check_key"]:
                raise AirflowSkipException(f"v{version}'s decay on {check['labels_path']} was already signalled "
                                           f"at {event.timestamp}: no second retrain")
        extra: DegradationSignal = {
            "model_name": check["model_name"], "model_version": version, "check_key": verdict["check_key"],
            "labels_day": check["labels_day"], "labels_path": check["labels_path"],
            "labelled_rows": verdict["rows"], "figures": verdict["figures"], "reasons": check["reasons"],
            "unmatched_labels": counts["unmatched"], "late_labels": counts["late"]}
        context["outlet_events"][asset].extra = extra
        print(f"PERFORMANCE DEGRADED for {check['model_name']} v{version}: {check['reasons']}")
        return extra
