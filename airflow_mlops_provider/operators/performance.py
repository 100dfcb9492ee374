"""Performance decay from late labels: each model version judged on the rows it scored."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_mlops_provider.operators.mixins import MlflowHookMixin, ObjectStorageMixin
from airflow_mlops_provider.results import PerformanceCheckResult


class MlflowCheckPerformanceDecayOperator(MlflowHookMixin, ObjectStorageMixin):
    """Join a day's labels to the scored partitions, evaluate every version that scored them, apply a decay policy.

    Labels (``labels_path``: Parquet with the id columns and the target) are matched by key to
    the scored partitions of the ``lookback_days`` before ``labels_day`` (``scores_path`` with
    ``{date}``). Each labelled row keeps the model version recorded on it when it was scored, so
    each version is evaluated on the rows **it** scored, with the same per-task-type metric code
    as the training holdout, and compared with that version's holdout metrics (its training run)
    under ``policy`` (:class:`~airflow_mlops_provider.core.decay.DecayPolicy`).

    Null, duplicated, conflicting, unmatched, ambiguous and late labels are counted and logged,
    never silently dropped; scored days with partial label coverage are listed. The policy fires
    (``degraded``) only for the version ``@champion`` names now: an older version's decay is
    reported but retraining would not replace it.

    History: one run per (labels partition, version) in MLflow's ``<model>-monitoring``
    experiment (a rerun replaces its own run), one ``performance_checked`` ledger record per
    (labels partition, version) (a rerun with the same figures adds nothing), and Prometheus
    gauges. Returns :class:`~airflow_mlops_provider.results.PerformanceCheckResult`.

    Each version is judged as the task type its own tag ``mlops.task_type`` names (a version
    without it is refused, by name), with ``policy`` read for that type (None: the type's
    default decay policy). ``model_task_type``, when given, is the type the DAG expects: a
    judged version of another type is refused rather than judged by the wrong yardstick.
    """

    template_fields: Sequence[str] = ("model_name", "labels_path", "labels_day", "scores_path", "lookback_days",
                                      "policy", "mlflow_conn_id", "conn_id")
    template_fields_renderers = {"policy": "json"}
    ui_color = "#f0a30a"

    def __init__(self, *, model_name: str, target: str, key_columns: Sequence[str], model_task_type: str | None = None,
                 labels_path: str, labels_day: str = "{{ ds }}", scores_path: str | None = None,
                 lookback_days: int | str = 14, policy: dict | None = None, log_to_mlflow: bool = True,
                 **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.model_name = model_name
        self.model_task_type = model_task_type
        self.target = target
        self.key_columns = list(key_columns)
        self.labels_path = labels_path
        self.labels_day = labels_day
        self.scores_path = scores_path
        self.lookback_days = lookback_days
        self.policy = policy
        self.log_to_mlflow = log_to_mlflow

    def _scored_partitions(self, day: date, lookback: int) -> list[tuple[date, str]]:
        from airflow_mlops_provider.core.decay import DEFAULT_SCORES_PATH
        from airflow_mlops_provider.core.settings import mlops_home

        template = self.scores_path or DEFAULT_SCORES_PATH
        if "{date}" not in template:
            raise ValueError(f"scores_path {template!r} must contain {{date}} (the scoring day, YYYY-MM-DD)")
        found = []
        for back in range(lookback + 1):
            scored_day = day - timedelta(days=back)
            path = template.replace("{home}", str(mlops_home().root)).replace("{date}", scored_day.isoformat())
            self.storage.check(path, "scores_path")
            if self.storage.status(path) is not None:
                found.append((scored_day, path))
        return sorted(found)

    def execute(self, context: Any) -> PerformanceCheckResult:
        from airflow_mlops_provider.core.decay import (
            DecayPolicy,
            count_late,
            evaluate_versions,
            join_labels,
            judge,
            read_labels,
        )
        from airflow_mlops_provider.core.task_types import get_task_type, task_type_of_version
        from airflow_mlops_provider.core.tasks import TaskTypeError, classes_from_tags

        expected = get_task_type(self.model_task_type) if self.model_task_type not in (None, "", "None") else None
        data = self.policy if self.policy not in ("", "None") else None
        if expected is not None:
            DecayPolicy.from_dict(expected, data)  # a bad policy fails before anything is read
        lookback = int(self.lookback_days)
        if not 0 <= lookback <= 366:
            raise ValueError(f"lookback_days must be between 0 and 366, got {lookback}")
        try:
            day = date.fromisoformat(str(self.labels_day)[:10])
        except ValueError as err:
            raise ValueError(f"labels_day {self.labels_day!r} is not a YYYY-MM-DD date") from err
        self.storage.check(self.labels_path, "labels_path")
        # Every path is checked against the allowed roots before anything is read.
        partitions = self._scored_partitions(day, lookback)
        self._lineage_inputs = [p for _, p in partitions]
        with tempfile.TemporaryDirectory(prefix="mlops-labels-") as tmp:
            workdir = Path(tmp)
            labels = read_labels(str(self.storage.local_copy(self.labels_path, workdir)), self.key_columns,
                                 self.target)
            scored = []
            for i, (scored_day, path) in enumerate(partitions):
                # One folder per partition: Hive-style paths share a file name (date=.../part-0.parquet).
                (workdir / str(i)).mkdir()
                scored.append((scored_day, str(self.storage.local_copy(path, workdir / str(i)))))
            # The outputs of every registered task type are read; each version's type is known below.
            joined, counts = join_labels(labels, scored, self.key_columns, self.target, labels_day=day,
                                         max_label_delay_days=None)
        # Each version that scored labelled rows, read once: its task type, classes and training run.
        model_versions = {v: self.hook.client.get_model_version(self.model_name, v)
                          for v in sorted({str(v) for v in joined["model_version"]})} if len(joined) else {}
        types = {v: task_type_of_version(self.model_name, mv) for v, mv in model_versions.items()}
        for v, task in types.items():
            if expected is not None and task.name != expected.name:
                raise TaskTypeError(f"model {self.model_name!r} version {v} is a {task.name} model, but this check "
                                    f"expects {expected.name} models (model_task_type)")
        policies = {v: DecayPolicy.from_dict(task, data) for v, task in types.items()}
        counts.late = count_late(joined, day, {v: p.max_label_delay_days for v, p in policies.items()})
        self.log.info("labels %s: %d rows; %d matched to scored rows of %d partition(s) (%s .. %s)",
                      self.labels_path, counts.label_rows, counts.matched, len(scored),
                      (day - timedelta(days=lookback)).isoformat(), day.isoformat())
        lost = {k: getattr(counts, k) for k in ("null_keys", "null_labels", "duplicated", "conflicting", "unmatched", "ambiguous",
                                                "late") if getattr(counts, k)}
        if lost:
            self.log.warning("labels not used as-is: %s%s", ", ".join(f"{k}={v}" for k, v in lost.items()),
                             f" (unmatched keys e.g. {counts.unmatched_examples})" if counts.unmatched else "")
        if counts.partial_days:
            self.log.info("scored days only partly labelled by this partition: %s",
                          {d: counts.coverage[d] for d in counts.partial_days})

        champion = self.hook.get_version_by_alias(self.model_name, "champion", required=False)
        champion_version = str(champion.version) if champion is not None else None
        versions = {}
        evaluated = evaluate_versions(types, joined, self.target,
                                      {v: classes_from_tags(mv.tags) for v, mv in model_versions.items()})
        for version, result in evaluated.items():
            holdout = self._holdout_metrics(model_versions[version])
            verdict = judge(policies[version], version, result["rows"], result["metrics"], holdout)
            verdict_dict = verdict.to_dict()
            verdict_dict["champion"] = version == champion_version
            versions[version] = verdict_dict
            (self.log.warning if verdict.degraded else self.log.info)(
                "v%s%s on %d labelled rows: %s", version, " (@champion)" if verdict_dict["champion"] else "",
                verdict.rows, verdict.too_few_rows or "; ".join(verdict.reasons) or
                ", ".join(f"{k} {f['live']:.4f} vs holdout {f['holdout']:.4f}" for k, f in verdict.figures.items()))
        if not evaluated:
            self.log.warning("no labelled row matched a scored row: nothing to evaluate")
        degraded = [v for v, r in versions.items() if r["degraded"]]
        firing = [v for v in degraded if v == champion_version]
        for v in set(degraded) - set(firing):
            self.log.warning("v%s degraded but is not @champion (v%s) any more: no retrain for it", v,
                             champion_version)
        # The figures of the champion's type and policy (else of the most-labelled version's).
        shown = champion_version if champion_version in types else \
            max(evaluated, key=lambda v: evaluated[v]["rows"], default=None)
        task_type = types[shown].name if shown is not None else (expected.name if expected else None)
        if shown is not None:
            policy = policies[shown]
        else:
            policy = DecayPolicy.from_dict(expected, data) if expected is not None else None
        result = {
            "model_name": self.model_name, "task_type": task_type, "labels_path": str(self.labels_path),
            "labels_day": day.isoformat(), "scored_days": [d.isoformat() for d, _ in scored],
            "counts": counts.to_dict(), "versions": versions, "champion_version": champion_version,
            "degraded": bool(firing), "degraded_versions": degraded,
            "reasons": [r for v in firing for r in versions[v]["reasons"] if "degraded by" in r],
            "policy": policy.to_dict() if policy is not None else data,
            "policies": {v: p.to_dict() for v, p in policies.items()},
        }
        # One check per DAG, labels partition and labels day (a fixed, overwritten path is still one per day).
        check = {"dag_id": context["ti"].dag_id, "labels_path": str(self.labels_path), "labels_day": day.isoformat()}
        self._record(context, result, check)
        self._push(context, result)
        return result

    def _holdout_metrics(self, mv: Any) -> dict[str, float]:
        """The version's holdout metrics: the metrics of the run it was registered from."""
        if not mv.run_id:
            return {}
        return {k: float(v) for k, v in self.hook.client.get_run(mv.run_id).data.metrics.items()}

    @staticmethod
    def _check_key(model: str, check: dict[str, str], version: str) -> str:
        raw = json.dumps({"model": model, **check, "version": version}, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    def _record(self, context: Any, result: dict[str, Any], check: dict[str, str]) -> None:
        """Ledger (once per same figures) and MLflow (one run per check, replaced on rerun)."""
        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.settings import mlops_home

        home = mlops_home()
        ti = context["ti"]
        for version, verdict in result["versions"].items():
            key = verdict["check_key"] = self._check_key(self.model_name, check, version)
            record = {"event": "performance_checked", "model": self.model_name, "version": version,
                      "check_key": key, "labels_path": result["labels_path"], "labels_day": result["labels_day"],
                      "rows": verdict["rows"], "metrics": verdict["metrics"], "holdout": verdict["holdout"],
                      "figures": verdict["figures"], "degraded": verdict["degraded"], "champion": verdict["champion"],
                      "reasons": verdict["reasons"], "too_few_rows": verdict["too_few_rows"],
                      "label_counts": {k: v for k, v in result["counts"].items()
                                       if k not in ("coverage", "unmatched_examples")},
                      "policy": result["policies"].get(version, result["policy"])}
            with ledger.file_lock(home.root / "locks" / f"ledger-{self.model_name}.lock"):
                same = [r for r in ledger.read(home.ledger_path) if r.get("check_key") == key]
                if same and _comparable(same[-1]) == _comparable(record):
                    self.log.info("ledger already holds this check of v%s (a rerun): not appended", version)
                else:
                    ledger.append(home.ledger_path, {**record, "airflow_run_id": ti.run_id})
            if self.log_to_mlflow:
                verdict["mlflow_run_id"] = self._log_mlflow(context, result, version, verdict, key)

    def _log_mlflow(self, context: Any, result: dict[str, Any], version: str, verdict: dict[str, Any],
                    key: str) -> str:
        from mlflow.entities import Metric, RunTag

        client = self.hook.client
        experiment = self.hook.get_or_create_experiment(f"{self.model_name}-monitoring")
        for old in client.search_runs([experiment], filter_string=f"tags.`mlops.check_key` = '{key}'",
                                      max_results=100):
            client.delete_run(old.info.run_id)  # a rerun replaces its run: one run per check
        ti = context["ti"]
        run = client.create_run(experiment, run_name=f"performance {result['labels_day']} v{version}", tags={
            "mlops.check": "performance", "mlops.check_key": key, "mlops.model_name": self.model_name,
            "mlops.model_version": version, "mlops.labels_path": result["labels_path"],
            "mlops.labels_day": result["labels_day"], "mlops.degraded": str(verdict["degraded"]),
            "mlops.champion": str(verdict["champion"]), "mlops.decay_metrics": ",".join(verdict["figures"]),
            "airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.task_id": ti.task_id})
        # The labels day is the time axis: the history charts by day, reruns log the same points.
        stamp = int(datetime.combine(date.fromisoformat(result["labels_day"]), datetime.min.time(),
                                     tzinfo=timezone.utc).timestamp() * 1000)
        metrics = {f"perf.{k}": v for k, v in verdict["metrics"].items()}
        metrics |= {f"holdout.{k}": v for k, v in verdict["holdout"].items()}
        metrics |= {f"decay.{k}": f["degradation"] for k, f in verdict["figures"].items()}
        metrics["labelled_rows"] = verdict["rows"]
        metrics |= {f"labels.{k}": v for k, v in result["counts"].items() if isinstance(v, int)}
        tags = [RunTag("mlops.reasons", "; ".join(verdict["reasons"])[:4000])]
        if verdict["too_few_rows"]:
            tags.append(RunTag("mlops.too_few_rows", verdict["too_few_rows"]))
        client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
                         tags=tags)
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    def _push(self, context: Any, result: dict[str, Any]) -> None:
        from airflow_mlops_provider.hooks.prometheus import push_task_metrics

        versions = result["versions"]
        # One series per task (the gateway's grouping key): the champion's, else the most-labelled version.
        shown = result["champion_version"] if result["champion_version"] in versions else \
            max(versions, key=lambda v: versions[v]["rows"], default=None)
        counts = result["counts"]
        metrics: dict[str, float | int | None] = {
            f"labels_{k}": counts[k] for k in ("label_rows", "matched", "null_keys", "null_labels", "duplicated",
                                               "conflicting", "unmatched", "ambiguous", "late")}
        if shown is not None:
            verdict = versions[shown]
            metrics["performance_labelled_rows"] = verdict["rows"]
            metrics["performance_degraded"] = int(verdict["degraded"])
            metrics |= {f"performance_{k}": v for k, v in verdict["metrics"].items()}
            metrics |= {f"performance_degradation_{k}": f["degradation"] for k, f in verdict["figures"].items()}
        push_task_metrics(context, model=self.model_name, version=shown, metrics=metrics, descriptions={
            "performance_degraded": "1 when the decay policy fired for this version on this labels partition",
            "labels_unmatched": "labels whose key matched no scored row in the lookback window"})

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the labels partition and the scored partitions it was joined to."""
        from airflow_mlops_provider.core.lineage import storage_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        paths = [str(self.labels_path), *getattr(self, "_lineage_inputs", [])]
        return operator_lineage(inputs=[storage_dataset(p) for p in paths])


def _comparable(record: dict[str, Any]) -> str:
    skip = {"recorded_at", "airflow_run_id"}
    return json.dumps({k: v for k, v in record.items() if k not in skip}, sort_keys=True, default=str)
