"""Drift of a scored partition against the baseline stored with the model version that scored it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.links.drift import EvidentlyDriftReportLink
from airflow_mlops_provider.operators.mixins import MlflowHookMixin, ObjectStorageMixin
from airflow_mlops_provider.results import DriftCheckResult


class EvidentlyCheckDriftOperator(MlflowHookMixin, ObjectStorageMixin):
    """Per-feature drift verdicts with Evidently's default tests, a drift policy, and the report.

    Statistics come from :mod:`airflow_mlops_provider.core.drift` (the same tests and thresholds
    as Evidently's ``DataDriftPreset``, computed column by column in bounded memory against the
    stored baseline). The Evidently HTML report is rendered on a sample of at most
    ``report_sample_rows`` rows, saved under ``MLOPS_HOME/reports/drift`` and logged to MLflow
    in the ``<model>-monitoring`` experiment. Returns the verdicts; ``drifted`` says whether the
    policy fires.

    With ``predictions_path`` (the scored output partition), the model's primary output
    (binary ``score``, multiclass/regression ``prediction``) is also compared with its outputs on
    the training holdout, stored with the version at training time: prediction drift, reported
    beside feature drift for every task type.

    :param policy: ``{"drift_share": 0.5, "key_features": [...], "prediction_drift": false}``;
        ``prediction_drift: true`` lets drifted model outputs alone fire the policy.
    :param conn_id: the object store's Airflow connection for ``data_path`` and
        ``predictions_path`` (None: the scheme's default). (templated)

    Returns :class:`~airflow_mlops_provider.results.DriftCheckResult`.
    """

    template_fields: Sequence[str] = ("model_name", "model_version", "data_path", "predictions_path", "policy",
                                      "report_name", "mlflow_conn_id", "conn_id")
    template_fields_renderers = {"policy": "json"}
    operator_extra_links = (EvidentlyDriftReportLink(),)
    ui_color = "#ed0500"

    def __init__(self, *, model_name: str, model_version: str, data_path: str, predictions_path: str | None = None,
                 policy: dict | None = None,
                 report_name: str | None = None, report_sample_rows: int = 20_000, log_to_mlflow: bool = True,
                 **kwargs: Any) -> None:
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.model_name = model_name
        self.model_version = model_version
        self.data_path = data_path
        self.predictions_path = predictions_path
        self.policy = policy
        self.report_name = report_name
        self.report_sample_rows = report_sample_rows
        self.log_to_mlflow = log_to_mlflow

    def execute(self, context: Any) -> DriftCheckResult:
        with contextlib.ExitStack() as files:  # the partition stays open from the first read to the report
            return self._check(context, files)

    def _check(self, context: Any, files: contextlib.ExitStack) -> dict[str, Any]:
        from airflow_mlops_provider.core.drift import (
            DriftPolicy,
            apply_policy,
            check_key_features,
            column_drift,
            parquet_drift,
        )
        from airflow_mlops_provider.core.scoring import ScoringInputError

        self.storage.check(self.data_path, "data_path")
        if self.predictions_path not in (None, "", "None"):
            self.storage.check(self.predictions_path, "predictions_path")
        policy = DriftPolicy.from_dict(self.policy)
        baseline = self.hook.load_baseline(self.model_name, str(self.model_version))
        profile, sample = baseline.profile, baseline.sample
        features = list(profile["features"])
        pf = files.enter_context(self.storage.parquet(self.data_path))
        missing = [c for c in features if c not in pf.schema_arrow.names]
        if missing:
            raise ScoringInputError(f"{self.data_path!r} lacks baseline features {missing}", path=self.data_path)
        check_key_features(policy, profile)
        rows = pf.metadata.num_rows
        if rows == 0:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(f"{self.data_path!r} has 0 rows: no drift to check")
        _check_kinds(pf.schema_arrow, profile, features, self.data_path)
        # Column groups of bounded size: memory is bounded by the group, not by the partition.
        columns = parquet_drift(pf, profile, sample, features)
        outputs = self._read_outputs(baseline)  # the scored partition's primary output, read once
        result = apply_policy(columns, policy, self._prediction_drift(column_drift, baseline, outputs), rows=rows)
        summary_of_outputs = self._prediction_summary(outputs)
        for c in columns:
            self.log.info("%-20s %-14s %10.5f  threshold %.3f  %s", c.column, c.method,
                          c.statistic if c.statistic is not None else float("nan"), c.threshold,
                          "DRIFT" if c.drifted else (c.note or "ok"))
        report = self._report(context, pf, features, sample)
        EvidentlyDriftReportLink.persist(context, report, mlops_home().reports_dir)
        run_id = self._log_mlflow(context, result, report, summary_of_outputs) if self.log_to_mlflow else None
        summary = result.to_dict()
        drifted = [c.column for c in columns if c.drifted]
        self._lineage_state = {"registry_uri": self.hook.registry_uri, "report": str(report)}
        from airflow_mlops_provider.hooks.prometheus import push_task_metrics

        push_task_metrics(context, model=self.model_name, version=str(self.model_version), metrics={
            "drift_share": result.drift_share, "drifted_features": result.n_drifted,
            "drift_checked_features": len(columns), "drift_rows": rows, "drift_detected": int(bool(result.drifted)),
            **{f"prediction_{k}": v for k, v in summary_of_outputs.items()},
        }, descriptions={"drift_share": "share of features whose distribution drifted from the training baseline",
                         "drift_detected": "1 when the drift policy fired for this partition",
                         "prediction_mean": "mean of the model's primary output on this scored partition",
                         "prediction_p95": "95th percentile of the model's primary output on this scored partition"})
        (self.log.warning if result.drifted else self.log.info)(
            "Drift share %.0f%% (%d/%d) on %d rows: %s", result.drift_share * 100, result.n_drifted, len(columns),
            rows, result.too_few_rows or "; ".join(result.reasons) or "policy does not fire")
        return {
            "model_name": self.model_name, "model_version": str(self.model_version), "data_path": self.data_path,
            "drifted": result.drifted, "drift_share": result.drift_share, "n_drifted": result.n_drifted,
            "n_columns": len(columns), "drifted_features": drifted, "reasons": result.reasons,
            "not_tested": {c.column: c.note for c in columns if c.method == "none"},
            "report_path": str(report), "mlflow_run_id": run_id,
            "rows": rows, "too_few_rows": result.too_few_rows,
            "prediction_drift": summary["prediction"], "prediction_summary": summary_of_outputs,
            "columns": {k: {"method": v["method"], "statistic": v["statistic"], "drifted": v["drifted"]}
                        for k, v in summary["columns"].items()},
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the model version (its training baseline), the partition and the scored
        partition. Output: the drift report."""
        from airflow_mlops_provider.core.lineage import model_version_dataset, storage_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None)
        if not state:
            return operator_lineage()
        inputs = [model_version_dataset(state["registry_uri"], self.model_name, str(self.model_version)),
                  storage_dataset(str(self.data_path))]
        if self.predictions_path not in (None, "", "None"):
            inputs.append(storage_dataset(str(self.predictions_path)))
        return operator_lineage(inputs=inputs, outputs=[storage_dataset(state["report"])])

    def _read_outputs(self, baseline: Any) -> tuple[str, Any, list[str]] | None:
        """``(column, values, partition columns)`` of the model's primary output on the scored
        partition: the column its prediction baseline profiles, else ``score`` or ``prediction``.
        None without ``predictions_path`` or without such a column."""
        if self.predictions_path in (None, "", "None"):
            return None
        with self.storage.parquet(self.predictions_path) as scored:
            names = scored.schema_arrow.names
            profile = baseline.predictions
            column = profile["features"][0] if profile else next((c for c in ("score", "prediction") if c in names),
                                                                 None)
            if column is None or column not in names:
                return None
            values = scored.read(columns=[column]).column(0).to_pandas()
        return column, values, names

    @staticmethod
    def _prediction_summary(outputs: tuple[str, Any, list[str]] | None) -> dict[str, float]:
        """The distribution of the model's primary output on the scored partition.

        Numbers (binary ``score``, regression ``prediction``): mean, std and the 5/50/95th
        percentiles (binary adds the share scored >= 0.5). Class labels (multiclass
        ``prediction``): the most frequent class's share and how many classes were predicted.
        """
        if outputs is None:
            return {}
        import numpy as np

        column, values, names = outputs
        values = values.dropna()
        if not len(values):
            return {}
        # A multiclass output (class labels, with proba_<class> beside them) is summarised as classes.
        if any(n.startswith("proba_") for n in names) or not np.issubdtype(values.dtype, np.number):
            shares = values.astype(str).value_counts(normalize=True)
            return {"top_class_share": float(shares.iloc[0]), "classes_predicted": int(len(shares))}
        arr = values.to_numpy(dtype=float)
        p05, p50, p95 = np.percentile(arr, [5, 50, 95])
        out = {"mean": float(arr.mean()), "std": float(arr.std()), "p05": float(p05), "p50": float(p50),
               "p95": float(p95)}
        if column == "score":
            out["positive_share"] = float((arr >= 0.5).mean())
        return out

    def _prediction_drift(self, column_drift: Any, baseline: Any, outputs: tuple[str, Any, list[str]] | None) -> Any:
        """The model's primary output on this partition against its outputs on the training holdout."""
        if self.predictions_path in (None, "", "None"):
            return None
        profile, sample = baseline.predictions, baseline.predictions_sample
        if profile is None:
            self.log.warning("%s v%s was trained without a prediction baseline: prediction drift not checked",
                             self.model_name, self.model_version)
            return None
        column = profile["features"][0]
        if outputs is None:
            # Feature drift stands on its own: report the gap, do not lose the verdicts.
            self.log.warning("scored partition %s has no output column %r: prediction drift not checked",
                             self.predictions_path, column)
            return None
        drift = column_drift(column, profile["columns"][column], outputs[1],
                             sample[column] if column in sample.columns else None)
        self.log.info("prediction %-10s %-14s %10.5f  threshold %.3f  %s", drift.column, drift.method,
                      drift.statistic if drift.statistic is not None else float("nan"), drift.threshold,
                      "DRIFT" if drift.drifted else "ok")
        return drift

    def _report(self, context: Any, pf: Any, features: list[str], sample: Any) -> Path:
        from evidently import Report
        from evidently.presets import DataDriftPreset

        from airflow_mlops_provider.core.drift import report_columns
        from airflow_mlops_provider.core.files import atomic_path

        current = pf.read(columns=features).to_pandas() if pf.metadata.num_rows <= self.report_sample_rows \
            else _sample_rows(pf, features, self.report_sample_rows)
        columns, skipped = report_columns(current, sample, features)
        for reason in skipped.values():
            self.log.warning("drift report: %s; left out of the report (its verdict says so)", reason)
        name = self.report_name or f"{self.model_name}-v{self.model_version}-{context['ti'].run_id}"
        target = mlops_home().reports_dir / "drift" / f"{_safe(name)}.html"
        with atomic_path(target) as tmp:
            if columns:
                Report([DataDriftPreset()]).run(current[columns], sample[columns]).save_html(str(tmp))
            else:
                import html

                tmp.write_text("<!doctype html><title>Drift report</title><p>No column could be compared:</p><ul>"
                               + "".join(f"<li>{html.escape(r)}</li>" for r in skipped.values()) + "</ul>")
        return target

    def _log_mlflow(self, context: Any, result: Any, report: Path, outputs: dict[str, float] | None = None) -> str:
        client = self.hook.client
        experiment = self.hook.get_or_create_experiment(f"{self.model_name}-monitoring")
        ti = context["ti"]
        run = client.create_run(experiment, run_name=f"drift {ti.run_id}", tags={
            "mlops.model_name": self.model_name, "mlops.model_version": str(self.model_version),
            "mlops.data_path": str(self.data_path), "mlops.drifted": str(result.drifted),
            "mlops.report": report.name,
            "airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.task_id": ti.task_id})
        run_id = run.info.run_id
        from mlflow.entities import Metric, RunTag

        stamp = int(time.time() * 1000)
        metrics = {"drift_share": result.drift_share, "n_drifted": result.n_drifted, "rows": result.rows or 0}
        metrics |= {f"prediction.{k}": v for k, v in (outputs or {}).items()}
        tags = []
        if result.prediction is not None and result.prediction.statistic is not None:
            metrics[f"prediction_drift.{result.prediction.column}.{result.prediction.method}"] = \
                float(result.prediction.statistic)
            tags.append(RunTag("mlops.prediction_drifted", str(result.prediction.drifted)))
        if result.too_few_rows:
            tags.append(RunTag("mlops.too_few_rows", result.too_few_rows))
        metrics |= {f"drift.{c.column}.{c.method}": float(c.statistic) for c in result.columns
                    if c.statistic is not None}
        # One request for every figure (a server with auth checks a password per request).
        client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()], tags=tags)
        client.log_artifact(run_id, str(report), artifact_path="drift")
        client.set_terminated(run_id)
        return run_id


def _check_kinds(schema: Any, profile: dict[str, Any], features: list[str], path: str) -> None:
    """A feature profiled as numeric must be numeric here: a string column is refused by name."""
    import pyarrow as pa

    from airflow_mlops_provider.core.scoring import ScoringInputError

    for name in features:
        kind = profile["columns"][name].get("kind")
        actual = schema.field(name).type
        if kind == "numeric" and not (pa.types.is_integer(actual) or pa.types.is_floating(actual)
                                      or pa.types.is_boolean(actual) or pa.types.is_null(actual)
                                      or pa.types.is_decimal(actual)):
            raise ScoringInputError(f"{path!r}: column {name!r} has type {actual}, but the baseline holds numbers "
                                    "for it; drift cannot be computed on it", path=path, column=name)


def _sample_rows(pf: Any, features: list[str], n: int, seed: int = 0) -> Any:
    """A uniform random sample of ``n`` rows, read row group by row group."""
    import numpy as np
    import pandas as pd

    total = pf.metadata.num_rows
    rng = np.random.default_rng(seed)
    wanted = np.sort(rng.choice(total, size=n, replace=False))
    parts, offset = [], 0
    for g in range(pf.num_row_groups):
        size = pf.metadata.row_group(g).num_rows
        local = wanted[(wanted >= offset) & (wanted < offset + size)] - offset
        if len(local):
            parts.append(pf.read_row_group(g, columns=features).take(local).to_pandas())
        offset += size
    return pd.concat(parts, ignore_index=True)


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("._")[:150] or "drift"
