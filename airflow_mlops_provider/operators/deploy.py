"""The shared seam of every deploy target (KServe, SageMaker, the local MLflow scoring server).

- :class:`DeployTargetOperator`: the wait every deploy/promote/rollback step ends with. Already
  there → return; else run the target's probe in a loop, or defer to the one trigger that runs
  it (:class:`~airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger`);
  ``execute_complete`` validates the event and returns the same shape as the synchronous path.
  It also resolves model versions (``3`` or ``@alias``) through :class:`MlflowHook`.
- :class:`DeployTargetRollbackOperator`: a rollback that asks the registry, when it runs, which
  version ``@champion`` names.
- :class:`DeploymentVerifyOperator`: smoke test plus bake (:func:`core.verify.bake`) on the first
  holdout rows of the challenger's run; a target only says how to send one request.
- :class:`DeploymentRecordRollbackOperator`: the ledger record and version tag of a deployment
  lane that failed (ours or the platform's rollback).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any, NoReturn

from airflow.configuration import conf

from airflow_mlops_provider.core.lineage import LineageDataset
from airflow_mlops_provider.core.verify import VERIFY_LIMITS, lane_check_limits
from airflow_mlops_provider.deploy.base import DONE, FAILED, DeployProbe
from airflow_mlops_provider.exceptions import DeploymentError, MlopsProviderError
from airflow_mlops_provider.hooks.mlflow import MlflowHook
from airflow_mlops_provider.triggers.base import DeployTargetWaitTrigger
from airflow_mlops_provider.version_compat import BaseOperator


def config_field(config: str, key: str) -> str:
    """The Jinja reference to ``key`` of a target's config (``config`` is e.g. ``"params.kserve"``)."""
    return "{{ " + config + "." + key + " }}"


def truthy(value: Any) -> bool:
    """A flag as a template renders it (``"True"``, ``"false"``, ``"1"``...) or as given."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def optional_config_field(config: str, key: str) -> str:
    """Like :func:`config_field` for a key a run's config may lack (one given in full by an older
    trigger: Airflow replaces a dict Param whole and renders with StrictUndefined); it renders
    ``None`` then, and the check takes its default."""
    return "{{ " + config + ".get('" + key + "') }}"


class DeployTargetOperator(BaseOperator):
    """Base of a deploy target's operators: MLflow version resolution and the wait.

    The wait runs the target's probe (:class:`~airflow_mlops_provider.deploy.base.DeployProbe`,
    its one done/failed rule): here in a loop, or in the triggerer
    (:class:`~airflow_mlops_provider.triggers.base.DeployTargetWaitTrigger`) when deferrable. A
    target supplies :meth:`result` (the XCom, built from the details and the last status) and
    may specialise :meth:`raise_failed` / :meth:`raise_timeout` (by default the probe's errors).

    :param timeout: seconds to wait for the target to settle.
    :param poll_interval: seconds between two status reads.
    :param wait_for_completion: False: return after one read (``ready: False`` when not there).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param mlflow_conn_id: the MLflow connection that resolves versions and aliases.
    """

    template_fields: Sequence[str] = ("timeout", "poll_interval", "mlflow_conn_id")
    failure: type[MlopsProviderError] = DeploymentError

    def __init__(self, *, timeout: float = 900, poll_interval: float = 10, wait_for_completion: bool = True,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.mlflow_conn_id = mlflow_conn_id

    # -- what a target supplies -----------------------------------------------------------------
    @property
    def resource(self) -> str:
        """The deployed resource, as error messages name it."""
        return self.task_id

    def error_context(self) -> dict[str, Any]:
        """Structured context every error of this operator carries."""
        return {}

    def result(self, context: Any, details: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def raise_failed(self, probe: DeployProbe, status: dict[str, Any], payload: dict[str, Any],
                     details: dict[str, Any]) -> NoReturn:
        """The probe said ``failed``: raise its error."""
        raise probe.failure(status, payload, details)

    def raise_timeout(self, probe: DeployProbe, status: dict[str, Any], details: dict[str, Any]) -> NoReturn:
        raise probe.timeout_error(status, float(self.timeout), details)

    # -- MLflow ---------------------------------------------------------------------------------
    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def resolve_model_version(self, model_name: str, version: str | int | None) -> str:
        """The version number ``version`` (a number or ``@alias``) names; errors name the model and it."""
        return str(self.mlflow_hook.resolve_version(model_name, version).version)

    def alias_version(self, model_name: str | None, alias: str) -> str | None:
        """The version ``alias`` names now; None when no model is given or the alias is unset."""
        if not model_name:
            return None
        mv = self.mlflow_hook.get_version_by_alias(model_name, alias, required=False)
        if mv is None:
            self.log.warning("%s has no @%s", model_name, alias)
            return None
        return str(mv.version)

    # -- the wait -------------------------------------------------------------------------------
    def wait(self, context: Any, probe: DeployProbe, details: dict[str, Any]) -> dict[str, Any]:
        """Return :meth:`result` once ``probe`` says done; poll or defer until then, up to ``timeout``."""
        self.timeout, self.poll_interval = float(self.timeout), float(self.poll_interval)  # may be templated
        status = probe.read()
        outcome = probe.classify(status)
        if outcome is None and self.wait_for_completion and self.deferrable:
            classpath, kwargs = probe.serialize()
            self.defer(trigger=DeployTargetWaitTrigger(
                probe_classpath=classpath, probe_kwargs=kwargs, poll_interval=self.poll_interval,
                deadline=time.time() + self.timeout, details=details),
                method_name="execute_complete", timeout=timedelta(seconds=self.timeout + 60))
        deadline = time.monotonic() + self.timeout
        while outcome is None:
            if not self.wait_for_completion:
                return self._finished({**self.result(context, details, status), "ready": False})
            if time.monotonic() >= deadline:
                self.raise_timeout(probe, status, details)
            self.log.info("%s is not there yet; next check in %gs", self.resource, self.poll_interval)
            time.sleep(self.poll_interval)
            status = probe.read()
            outcome = probe.classify(status)
        return self._settled(context, probe, outcome, status, details)

    def _settled(self, context: Any, probe: DeployProbe, outcome: tuple[str, dict[str, Any]],
                 status: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
        kind, payload = outcome
        if kind == DONE:
            return self._finished(self.result(context, details, status))
        if kind == FAILED:
            self.raise_failed(probe, status, payload, details)
        raise self.failure(f"{self.resource}: the probe {type(probe).__name__} classified a status as {kind!r}; "
                           f"expected {DONE!r} or {FAILED!r}", **self.error_context(), reason="api")

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: validate the event, then the same result as the sync path."""
        from airflow_mlops_provider.triggers.base import EVENT_KINDS

        kind = event.get("status") if isinstance(event, dict) else None
        probe_spec = event.get("probe") if isinstance(event, dict) else None
        if kind not in EVENT_KINDS or not isinstance(probe_spec, dict):
            raise self.failure(f"{self.resource}: the trigger sent no usable event ({str(event)[:200]}); "
                               f"expected a dict with a probe and a status in {list(EVENT_KINDS)}",
                               **self.error_context(), reason="api")
        assert isinstance(event, dict)
        details, status = event.get("details") or {}, event.get("state") or {}
        if kind == "error":
            raise self.failure(f"cannot watch {self.resource}: {event.get('message')}", **self.error_context(),
                               reason="api")
        probe = DeployProbe.load(probe_spec.get("classpath"), probe_spec.get("kwargs") or {})
        if kind == "timeout":
            self.raise_timeout(probe, status, details)
        payload = {k: v for k, v in event.items() if k not in ("status", "probe", "details", "state")}
        return self._settled(context, probe, (kind, payload), status, details)

    # -- lineage --------------------------------------------------------------------------------
    def lineage_endpoint(self, result: dict[str, Any]) -> LineageDataset | None:
        """The serving endpoint a result names, as an OpenLineage dataset (a target supplies it)."""
        return None

    def _finished(self, result: dict[str, Any]) -> dict[str, Any]:
        """Record what the task ended with, for :meth:`get_openlineage_facets_on_complete`."""
        from airflow_mlops_provider.hooks.lineage import safely

        model = getattr(self, "model_name", None)
        self._lineage_state = {
            "result": result,
            "registry_uri": safely(lambda: self.mlflow_hook.registry_uri) if model else None}
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the MLflow model version now served (when the step knows it). Output: the
        endpoint (:meth:`lineage_endpoint`: ``sagemaker://<region>``, ``kserve://<namespace>``,
        ``http://host:port``)."""
        from airflow_mlops_provider.core.lineage import model_version_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None)
        if not state:
            return operator_lineage()
        result, uri = state["result"], state["registry_uri"]
        model, version = getattr(self, "model_name", None), result.get("model_version")
        inputs = [model_version_dataset(uri, model, version)] if uri and model and version else []
        return operator_lineage(inputs=inputs, outputs=[self.lineage_endpoint(result)])


class DeployTargetRollbackOperator(DeployTargetOperator):
    """Base of a rollback: serving goes back to what ``alias`` names when the rollback runs.

    :param model_name: the registered model; None: the target's own record decides.
    :param alias: the alias whose version must serve (default ``champion``).
    :param after_task_id: the lane's deploy task: the rollback skips unless it ran (succeeded
        or failed). With ``trigger_rule="one_failed"`` a failure *before* the lane (validation,
        training, the decision) also reaches the rollback as ``upstream_failed``; nothing was
        deployed then, so nothing may be rolled back. The pipeline builders set it.
    """

    template_fields: Sequence[str] = (*DeployTargetOperator.template_fields, "model_name", "alias")

    def __init__(self, *, model_name: str | None = None, alias: str = "champion",
                 after_task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.after_task_id = after_task_id

    def pre_execute(self, context: Any) -> None:
        after = getattr(self, "after_task_id", None)
        if not after:
            return
        from airflow.sdk.exceptions import AirflowSkipException

        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[after])
        state = states.get(ti.run_id, {}).get(after)
        if state not in ("success", "failed"):
            raise AirflowSkipException(f"{after} did not run ({state}): nothing was deployed, "
                                       "nothing to roll back")

    def champion_version(self) -> str | None:
        """The version ``alias`` names now (None: unset, or no ``model_name``)."""
        return self.alias_version(self.model_name, self.alias)


# The load policy's and the quality canary's limits (core.load.LOAD_LIMITS, core.canary.CANARY_LIMITS):
# arguments of the verify step, templated, their defaults from the one definition.
_RELEASE_LIMITS: dict[str, dict[str, Any]] = {k: v for k, v in lane_check_limits().items() if k not in VERIFY_LIMITS}


class DeploymentVerifyOperator(BaseOperator):
    """Smoke test, bake, load test and quality canary of a candidate, before traffic moves to it.

    1. **smoke and bake**: the first ``smoke_rows`` holdout rows of the challenger's run
       (the model signature's input columns), ``bake_requests`` sequential requests, judged on
       ``max_error_rate`` and the p95 ``max_latency_ms``;
    2. **load test** (``load_concurrency`` > 0): the load policy
       (:data:`~airflow_mlops_provider.core.load.LOAD_LIMITS`) run by
       :func:`~airflow_mlops_provider.core.load.run_load` against the candidate only;
    3. **quality canary** (``canary_rows`` > 0 and a ``@champion`` other than the challenger):
       the same ``canary_rows`` rows to candidate and champion, their answers compared
       (:func:`~airflow_mlops_provider.core.canary.compare_predictions`) and judged by
       :data:`~airflow_mlops_provider.core.canary.CANARY_LIMITS`.

    The load test and the canary send the first rows of the challenger's holdout, or, when
    ``payload_uri`` names a scored partition (Parquet, or CSV by suffix), its last rows.
    Their figures go to the ledger (events ``load_test`` and
    ``quality_canary``, with ``verdict`` and the broken limits), to Prometheus and to XCom (key
    ``release_checks``) before a broken limit fails the task, naming the limit and the measured
    figure; the lane's rollback then runs as after any failed verification.

    A target subclass supplies :meth:`request_sender` (one request to the candidate → its latency
    in ms, raising ``failure`` when the answer is wrong), :meth:`result_head` (what names the
    deployment in the result) and, for the quality canary, :meth:`prediction_sender` (the
    candidate's and the champion's answers to rows; by default the champion's come from its
    registered model, loaded in the worker).

    :param deployment: the lane's deploy XCom.
    :param challenger: the registered challenger (``{"name", "version", "run_id"}``).
    Returns ``{**result_head, "requests", "errors", "error_rate", "p95_latency_ms", "rows", "load",
    "canary"}`` (``load`` / ``canary``: their figures, None when off).
    """

    template_fields: Sequence[str] = ("deployment", "challenger", "smoke_rows", "bake_requests", "max_error_rate",
                                      "max_latency_ms", *_RELEASE_LIMITS, "request_timeout", "mlflow_conn_id")
    template_fields_renderers = {"deployment": "json", "challenger": "json"}
    failure: type[MlopsProviderError] = DeploymentError
    ui_color = "#c3e6cb"

    def __init__(self, *, deployment: dict[str, Any] | str, challenger: dict[str, Any] | str, smoke_rows: int = 5,
                 bake_requests: int = 5, max_error_rate: float = 0.0, max_latency_ms: float | None = 2000,
                 request_timeout: float = 30, mlflow_conn_id: str = MlflowHook.default_conn_name,
                 **kwargs: Any) -> None:
        policy = {key: kwargs.pop(key, rule["default"]) for key, rule in _RELEASE_LIMITS.items()}
        super().__init__(**kwargs)
        self.deployment = deployment
        self.challenger = challenger
        self.smoke_rows = smoke_rows
        self.bake_requests = bake_requests
        self.max_error_rate = max_error_rate
        self.max_latency_ms = max_latency_ms
        for key, value in policy.items():
            setattr(self, key, value)
        self.request_timeout = request_timeout
        self.mlflow_conn_id = mlflow_conn_id

    @classmethod
    def from_config(cls, config: str, *, task_id: str = "verify", **kwargs: Any) -> DeploymentVerifyOperator:
        """The lane's verify step, every limit read from the target's config (``params.<target>``)."""
        fields = {key: config_field(config, key) for key in VERIFY_LIMITS}
        fields.update({key: optional_config_field(config, key) for key in _RELEASE_LIMITS})
        return cls(task_id=task_id, **fields, **kwargs)

    def request_sender(self, deployment: dict[str, Any], rows: list[list[Any]],
                       columns: list[str]) -> Callable[[], float]:
        raise NotImplementedError

    def result_head(self, deployment: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def prediction_sender(self, deployment: dict[str, Any], rows: list[list[Any]], columns: list[str], *,
                          role: str, champion: str) -> Callable[[], list[Any]]:
        """One call → the predictions of ``role`` (``candidate`` or ``champion``, v``champion``) for ``rows``.

        A target that can address the champion's endpoint while the candidate holds its share
        answers both roles; this default answers the champion from its registered model, loaded
        in the worker (the artifact the platform serves), and has no candidate answer.
        """
        if role != "champion":
            raise NotImplementedError(f"{type(self).__name__} cannot send rows to the candidate for the quality "
                                      "canary: it does not implement prediction_sender")
        hook = MlflowHook(mlflow_conn_id=self.mlflow_conn_id)
        name = str(self.challenger["name"])

        def predict() -> list[Any]:
            import pandas as pd

            model = hook.load_pyfunc(f"models:/{name}/{champion}")
            answer = model.predict(pd.DataFrame(rows, columns=columns))
            return list(answer.tolist() if hasattr(answer, "tolist") else answer)

        return predict

    def target(self, deployment: dict[str, Any]) -> str:
        """How messages name the deployment under test."""
        return str(next(iter(self.result_head(deployment).values()), self.task_id))

    def _checked(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        from airflow_mlops_provider.core.canary import canary_policy
        from airflow_mlops_provider.core.load import load_policy
        from airflow_mlops_provider.core.verify import bake_limits

        for name in ("deployment", "challenger"):
            if not isinstance(getattr(self, name), dict):
                raise self.failure(f"{self.task_id}: {name} must be a dict (an XCom of the lane), got "
                                   f"{getattr(self, name)!r}", field=name, reason="invalid")
        missing = [k for k in ("name", "version", "run_id") if not self.challenger.get(k)]
        if missing:
            raise self.failure(f"{self.task_id}: challenger lacks {missing}", field="challenger", reason="invalid")
        try:
            limits = bake_limits(smoke_rows=self.smoke_rows, bake_requests=self.bake_requests,
                                 max_error_rate=self.max_error_rate, max_latency_ms=self.max_latency_ms)
            limits.update(load_policy(**{k: getattr(self, k) for k in _RELEASE_LIMITS if k.startswith("load_")}))
            limits.update(canary_policy(**{k: getattr(self, k) for k in _RELEASE_LIMITS if k.startswith("canary_")}))
        except ValueError as err:
            raise self.failure(f"{self.task_id}: {err}", field=str(err).split(" ", 1)[0], reason="invalid") from err
        return self.deployment, self.challenger, limits

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_mlops_provider.core.verify import bake
        from airflow_mlops_provider.hooks.mlflow_serving import smoke_frame

        deployment, challenger, limits = self._checked()
        mlflow = MlflowHook(mlflow_conn_id=self.mlflow_conn_id)
        name, version = str(challenger["name"]), str(challenger["version"])
        rows, columns = smoke_frame(mlflow, challenger["run_id"], name, version, limits["smoke_rows"])
        send = self.request_sender(deployment, rows, columns)
        target = self.target(deployment)
        outcome = bake(send, limits["bake_requests"], max_error_rate=limits["max_error_rate"],
                       max_latency_ms=limits["max_latency_ms"], failure=self.failure, target=target,
                       **self.result_head(deployment))
        self.log.info("Verified %s: %s", target, outcome)
        from airflow_mlops_provider.hooks.prometheus import push_task_metrics

        push_task_metrics(context, model=name, version=version, metrics={
            "bake_p95_latency_ms": outcome.get("p95_latency_ms"), "bake_error_rate": outcome.get("error_rate"),
            "bake_requests": outcome.get("requests")})
        checks: dict[str, Any] = {"load": None, "canary": None}
        if limits["load_concurrency"] > 0:
            checks["load"] = self._load_test(context, deployment, mlflow, limits, target)
        if limits["canary_rows"] > 0:
            checks["canary"] = self._quality_canary(context, deployment, mlflow, limits, target)
        return {**self.result_head(deployment), **outcome, "rows": len(rows), **checks}

    # -- the load test and the quality canary -----------------------------------------------------
    def _record(self, context: Any, event: str, figures: dict[str, Any], broken: list[dict[str, Any]],
                policy: dict[str, Any], target: str) -> dict[str, Any]:
        """The check's ledger record (like every gate decision), also pushed to XCom."""
        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.settings import mlops_home

        ti = context.get("ti") if isinstance(context, dict) else None
        record = {"event": event, "model": str(self.challenger["name"]),
                  "challenger_version": str(self.challenger["version"]), "target": target,
                  "verdict": "failed" if broken else "passed", "figures": figures, "policy": policy,
                  "broken_limits": broken,
                  **{key: value if isinstance(value := getattr(ti, key, None), str) else None
                     for key in ("dag_id", "run_id")}, "task_id": self.task_id}
        ledger.append(mlops_home().ledger_path, record)
        if ti is not None:
            ti.xcom_push(key=event, value=record)
        return record

    def _raise_broken(self, what: str, broken: list[dict[str, Any]], target: str, **context: Any) -> None:
        message = f"{what} of {target}: " + "; ".join(b["message"] for b in broken)
        raise self.failure(message, reason="smoke", broken_limits=[b["limit"] for b in broken],
                           **self.result_head(self.deployment), **context)

    def _payload_source(self) -> str:
        uri = str(getattr(self, "payload_uri", "") or "").strip()
        return uri if uri and uri != "None" else "holdout"

    def _payload(self, mlflow: MlflowHook, n: int) -> tuple[list[list[Any]], list[str]]:
        """(rows, columns) of the load test and the canary: the last ``n`` rows of ``payload_uri`` (a scored
        partition), else the first ``n`` of the challenger's holdout; the signature's input columns only."""
        from airflow_mlops_provider.hooks.mlflow_serving import input_columns, smoke_frame

        name, version = str(self.challenger["name"]), str(self.challenger["version"])
        uri = self._payload_source()
        if uri == "holdout":
            return smoke_frame(mlflow, self.challenger["run_id"], name, version, n)
        import json

        from airflow_mlops_provider.hooks.storage import ObjectStorageHook

        columns = input_columns(mlflow, name, version)
        storage = ObjectStorageHook()
        storage.check(uri, "payload_uri")
        try:
            frame = storage.read_frame(uri, "csv" if uri.lower().endswith(".csv") else "parquet")
        except (FileNotFoundError, ValueError, OSError) as err:
            raise self.failure(f"{self.task_id}: payload_uri {uri!r} cannot be read: {err}", field="payload_uri",
                               reason="invalid") from err
        missing = [c for c in columns if c not in frame.columns]
        if missing or frame.empty:
            why = f"lacks the input columns {missing} of {name!r} v{version}" if missing else "has no rows"
            raise self.failure(f"{self.task_id}: payload_uri {uri!r} {why}", field="payload_uri", reason="invalid")
        rows = json.loads(frame[columns].tail(int(n)).to_json(orient="split", index=False, date_format="iso"))["data"]
        return rows, columns

    def _load_test(self, context: Any, deployment: dict[str, Any], mlflow: MlflowHook, limits: dict[str, Any],
                   target: str) -> dict[str, Any]:
        from airflow_mlops_provider.core.load import LOAD_LIMITS, judge_load, run_load
        from airflow_mlops_provider.hooks.prometheus import push_task_metrics

        challenger = self.challenger
        rows, columns = self._payload(mlflow, limits["load_rows"])
        send = self.request_sender(deployment, rows, columns)
        policy = {k: limits[k] for k in LOAD_LIMITS}
        figures = run_load(send, concurrency=policy["load_concurrency"], requests=policy["load_requests"],
                           duration_s=policy["load_duration_s"])
        figures["rows_per_request"], figures["payload"] = len(rows), self._payload_source()
        broken = judge_load(figures, policy)
        self.log.info("Load test of %s: %s", target, figures)
        push_task_metrics(context, model=str(challenger["name"]), version=str(challenger["version"]), metrics={
            "load_p50_latency_ms": figures["p50_ms"], "load_p95_latency_ms": figures["p95_ms"],
            "load_p99_latency_ms": figures["p99_ms"], "load_throughput_rps": figures["throughput_rps"],
            "load_error_rate": figures["error_rate"], "load_requests": figures["requests"],
            "load_passed": 0 if broken else 1},
            descriptions={"load_throughput_rps": "completed requests per second in the lane's load test"})
        self._record(context, "load_test", figures, broken, policy, target)
        if broken:
            self._raise_broken(f"load test ({figures['requests']} requests, {figures['concurrency']} concurrent, "
                               f"{figures['elapsed_s']:g}s)", broken, target, figures=figures)
        return figures

    def _quality_canary(self, context: Any, deployment: dict[str, Any], mlflow: MlflowHook,
                        limits: dict[str, Any], target: str) -> dict[str, Any] | None:
        from airflow_mlops_provider.core.canary import CANARY_LIMITS, compare_predictions, judge_canary
        from airflow_mlops_provider.hooks.prometheus import push_task_metrics

        challenger = self.challenger
        name, version = str(challenger["name"]), str(challenger["version"])
        champion_mv = mlflow.get_version_by_alias(name, "champion", required=False)
        champion = None if champion_mv is None else str(champion_mv.version)
        if champion is None or champion == version:
            self.log.info("Quality canary skipped: %s has %s", name,
                          "no @champion" if champion is None else f"v{version} as @champion already")
            return None
        rows, columns = self._payload(mlflow, limits["canary_rows"])
        candidate_answers = self.prediction_sender(deployment, rows, columns, role="candidate", champion=champion)()
        champion_answers = self.prediction_sender(deployment, rows, columns, role="champion", champion=champion)()
        policy = {k: limits[k] for k in CANARY_LIMITS}
        try:
            figures = compare_predictions(candidate_answers, champion_answers, threshold=policy["canary_threshold"])
        except ValueError as err:
            raise self.failure(f"quality canary of {target}: {err}", reason="smoke",
                               **self.result_head(deployment)) from err
        figures["champion_version"], figures["payload"] = champion, self._payload_source()
        broken = judge_canary(figures, policy)
        self.log.info("Quality canary of %s (v%s against @champion v%s): %s", target, version, champion, figures)
        push_task_metrics(context, model=name, version=version, metrics={
            "canary_agreement": figures["agreement"], "canary_psi": figures["psi"], "canary_ks": figures["ks"],
            "canary_mean_abs_diff": figures["mean_abs_diff"], "canary_passed": 0 if broken else 1},
            descriptions={"canary_agreement": "share of canary rows where candidate and champion agree"})
        self._record(context, "quality_canary", figures, broken, policy, target)
        if broken:
            self._raise_broken(f"quality canary (v{version} against @champion v{champion}, {figures['rows']} rows)",
                               broken, target, figures=figures)
        return figures


class DeploymentRecordRollbackOperator(BaseOperator):
    """Any failed step of a deployment lane is a rollback (ours or the platform's): record it.

    Appends ``{"event": "rolled_back", ...}`` to the ledger and tags the challenger version
    ``mlops.deployment=rolled_back``; skips when no lane step failed. Runs with
    ``trigger_rule="all_done"`` (the default here).

    :param decision: the champion/challenger decision (``model``, ``challenger_version``,
        ``champion_version``).
    :param target: the deploy target's name (recorded).
    :param lane_task_ids: the lane steps whose failure means a rollback.
    :param rollback_task_ids: the rollback task(s); the first that succeeded is recorded with its XCom.
    :param approval_task_id: the approval gate, whose ``answer`` XCom is recorded (None: none).
    Returns the record.
    """

    template_fields: Sequence[str] = ("decision", "target", "lane_task_ids", "rollback_task_ids", "approval_task_id",
                                      "mlflow_conn_id")
    ui_color = "#f5c6cb"

    def __init__(self, *, decision: dict[str, Any] | str, target: str, lane_task_ids: Sequence[str],
                 rollback_task_ids: str | Sequence[str], approval_task_id: str | None = None,
                 mlflow_conn_id: str = MlflowHook.default_conn_name, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.decision = decision
        self.target = target
        self.lane_task_ids = lane_task_ids
        self.rollback_task_ids = rollback_task_ids
        self.approval_task_id = approval_task_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.settings import mlops_home
        from airflow_mlops_provider.core.verify import rollback_record

        if self.decision in (None, "", "None"):
            raise AirflowSkipException("no decision was taken (a step before it failed): nothing was deployed")
        if not isinstance(self.decision, dict):
            raise DeploymentError(f"{self.task_id}: decision must be the decide task's dict, got {self.decision!r}",
                                  field="decision", reason="invalid")
        rollbacks = ([self.rollback_task_ids] if isinstance(self.rollback_task_ids, str)
                     else list(self.rollback_task_ids))
        lane = list(self.lane_task_ids)
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=[*lane, *rollbacks])
        states = states.get(ti.run_id, {})
        rollback = next((t for t in rollbacks if states.get(t) == "success"), None)
        record = rollback_record(
            self.decision, target=self.target, states=states, lane_task_ids=lane, rollback_task_id=rollback,
            rollback=ti.xcom_pull(task_ids=rollback) if rollback else None,
            approval=ti.xcom_pull(task_ids=self.approval_task_id, key="answer") if self.approval_task_id else None,
            dag_id=ti.dag_id, run_id=ti.run_id, checks=[
                check for task in lane if states.get(task) == "failed" for key in ("load_test", "quality_canary")
                if isinstance(check := ti.xcom_pull(task_ids=task, key=key), dict)])
        if record is None:
            raise AirflowSkipException("no deployment step failed: nothing was rolled back")
        ledger.append(mlops_home().ledger_path, record)
        MlflowHook(mlflow_conn_id=self.mlflow_conn_id).client.set_model_version_tag(
            record["model"], record["challenger_version"], "mlops.deployment", "rolled_back")
        self.log.info("ROLLED BACK %s v%s on %s: failed %s", record["model"], record["challenger_version"],
                      self.target, record["failed_tasks"])
        from airflow_mlops_provider.hooks.prometheus import ledger_count, push_task_metrics

        push_task_metrics(context, model=record["model"], version=str(record["challenger_version"]), metrics={
            "rollbacks": ledger_count(mlops_home().ledger_path, record["model"], "rolled_back")},
            descriptions={"rollbacks": "rollbacks recorded in the audit ledger for this model"})
        return record
