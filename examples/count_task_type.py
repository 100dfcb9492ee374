"""A fourth task type: counts (visits, claims, defects) judged by their Poisson deviance."""

from __future__ import annotations

from airflow_mlops_provider.core.task_types import RegressionTaskType, TaskTypeError, register_task_type


class CountTaskType(RegressionTaskType):
    """A regressor of whole numbers >= 0 that predicts a rate (> 0): one ``prediction`` column."""

    name = "count"
    metrics = {"poisson_deviance": "lower", "d2_poisson": "higher", "mae": "lower"}
    # d2 (deviance explained) has a chance level of 0; the deviance is judged relative to the champion.
    default_policy = {"metrics": [{"name": "d2_poisson", "direction": "higher", "floor": 0.0, "max_regression": 0.02},
                                  {"name": "poisson_deviance", "direction": "lower", "max_relative_regression": 0.05}],
                      "min_eval_rows": 100}
    default_decay_policy = {"metrics": [{"name": "poisson_deviance", "max_relative_degradation": 0.10}],
                            "min_rows": 200, "max_label_delay_days": 7}

    def check_target(self, values, column, source):
        super().check_target(values, column, source)  # numeric
        if (values < 0).any() or (values % 1 != 0).any():
            raise TaskTypeError(f"task_type 'count' needs whole numbers >= 0 in target column {column!r} of {source!r}")

    def compute_metrics(self, y_true, raw_output, classes=None):
        import numpy as np
        from sklearn import metrics

        y, rate = np.asarray(y_true, dtype=float), self.values(raw_output)
        if (rate <= 0).any():
            raise TaskTypeError("a count model must predict rates > 0 (e.g. a Poisson GLM or loss='poisson')")
        return {"poisson_deviance": float(metrics.mean_poisson_deviance(y, rate)),
                "d2_poisson": float(metrics.d2_tweedie_score(y, rate, power=1)),
                "mae": float(metrics.mean_absolute_error(y, rate))}


COUNT = register_task_type(CountTaskType())
