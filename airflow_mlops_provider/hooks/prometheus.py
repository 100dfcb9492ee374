"""Model metrics for Prometheus: tasks push what they measured to a Pushgateway.

Tasks are short-lived processes, so Prometheus cannot scrape them; each task that measures
something (rows scored, drift share, bake latency ...) pushes gauges to a Prometheus
Pushgateway, which Prometheus scrapes. The gateway comes from the Airflow connection
``pushgateway_default`` (type ``pushgateway``: host ``http://pushgateway:9091``, optional
login/password for basic auth).

Monitoring never fails a task: without the connection nothing is pushed (one debug line);
with the gateway down or refusing, the task logs **one** warning per process and goes on.

Every series carries the labels ``model``, ``version``, ``dag_id``, ``task_id`` and ``run_id``.
The grouping key is (job ``mlops``, model, dag_id, task_id): each push replaces that task's
previous series, so the gateway holds the latest run per task, not one series per run forever.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from airflow_mlops_provider.version_compat import BaseHook

log = logging.getLogger(__name__)

#: Prefix of every metric name the provider pushes.
PREFIX = "mlops_"
JOB = "mlops"
_warned: set[str] = set()


class PushgatewayHook(BaseHook):
    """Push gauges to a Prometheus Pushgateway named by an Airflow connection.

    :param pushgateway_conn_id: connection of type ``pushgateway``; absent: pushing is disabled.
    :param timeout: seconds per push (a slow gateway must not hold up a task).
    """

    conn_name_attr = "pushgateway_conn_id"
    default_conn_name = "pushgateway_default"
    conn_type = "pushgateway"
    hook_name = "Prometheus Pushgateway"

    def __init__(self, pushgateway_conn_id: str = default_conn_name, timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pushgateway_conn_id = pushgateway_conn_id
        self.timeout = timeout

    @cached_property
    def gateway(self) -> dict[str, Any] | None:
        """``{"url", "login", "password"}``, or None when the connection does not exist."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.pushgateway_conn_id)
        except AirflowNotFoundException:
            return None
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            return None
        if "://" not in host:
            host = f"{conn.schema or 'http'}://{host}"
        if conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        return {"url": host, "login": conn.login, "password": conn.password}

    def push(self, metrics: Mapping[str, float | int | None], *, labels: Mapping[str, str],
             grouping: Mapping[str, str], descriptions: Mapping[str, str] | None = None) -> bool:
        """Push ``metrics`` (name -> value; None values are left out) as gauges; True when pushed."""
        gateway = self.gateway
        values = {k: float(v) for k, v in metrics.items() if v is not None}
        if gateway is None or not values:
            log.debug("Prometheus metrics not pushed: no connection %r", self.pushgateway_conn_id)
            return False
        try:
            from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
            from prometheus_client.exposition import basic_auth_handler, default_handler

            registry = CollectorRegistry()
            names = sorted(labels)
            for name, value in values.items():
                gauge = Gauge(f"{PREFIX}{name}", (descriptions or {}).get(name, name.replace("_", " ")),
                              labelnames=names, registry=registry)
                gauge.labels(**{k: str(labels[k]) for k in names}).set(value)
            login, password = gateway["login"], gateway["password"]

            def handler(url: str, method: str, timeout: Any, headers: Any, data: Any) -> Any:
                if login:
                    return basic_auth_handler(url, method, timeout, headers, data, login, password or "")
                return default_handler(url, method, timeout, headers, data)

            # pushadd: replaces only the metric names pushed here, in this task's group.
            pushadd_to_gateway(gateway["url"], job=JOB, registry=registry, grouping_key=dict(grouping),
                               timeout=self.timeout, handler=handler)
            return True
        except Exception as err:  # noqa: BLE001 - monitoring down never fails the task
            key = f"{self.pushgateway_conn_id}:{gateway['url']}"
            if key not in _warned:
                _warned.add(key)
                log.warning("Prometheus Pushgateway %s (connection %r) is unavailable; metrics are not pushed "
                            "(the task goes on; this is logged once): %s: %s", gateway["url"],
                            self.pushgateway_conn_id, type(err).__name__, str(err)[:200])
            return False


def push_task_metrics(context: Any, *, model: str, version: str | None, metrics: Mapping[str, float | int | None],
                      descriptions: Mapping[str, str] | None = None,
                      conn_id: str = PushgatewayHook.default_conn_name) -> bool:
    """Push ``metrics`` of the running task with its model, version and DAG labels (never raises)."""
    try:
        ti = context["ti"]
        labels = {"model": model, "version": str(version or ""), "dag_id": ti.dag_id, "task_id": ti.task_id,
                  "run_id": ti.run_id}
        grouping = {"model": model, "dag_id": ti.dag_id, "task_id": ti.task_id}
        map_index = getattr(ti, "map_index", -1)
        if map_index is not None and map_index >= 0:  # each shard of a mapped task keeps its own series
            labels["map_index"] = grouping["map_index"] = str(map_index)
        return PushgatewayHook(pushgateway_conn_id=conn_id).push(metrics, labels=labels, grouping=grouping,
                                                                 descriptions=descriptions)
    except Exception:
        log.warning("Prometheus metrics of this task could not be prepared", exc_info=True)
        return False


def ledger_count(ledger_path: Any, model: str, event: str) -> int:
    """How many ``event`` records the audit ledger holds for ``model`` (promotions, rollbacks).

    Pushed as a gauge: a short-lived task cannot keep a counter, the ledger is the count.
    """
    from airflow_mlops_provider.core import ledger

    return sum(1 for r in ledger.read(ledger_path) if r.get("model") == model and r.get("event") == event)
