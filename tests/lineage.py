"""Read the OpenLineage events Airflow wrote and check the provider's lineage chain.

For end-to-end tests that run DAGs with the OpenLineage file transport::

    AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "file", "log_file_path": "<dir>/events.jsonl", "append": true}'
    AIRFLOW__OPENLINEAGE__NAMESPACE=mlops
    AIRFLOW__OPENLINEAGE__EXECUTION_TIMEOUT=60   # the listener forks per event; 10 s is tight on 2 cores

then ``chain = assert_chain(read_events("<dir>/events.jsonl"), "fraud-detector")``.

The chain (docs/lineage.md): training data (``mlops_dvc`` facet) → ``train`` → the run's logged
model → ``register_challenger`` → ``models/<name>/versions/<n>`` → ``score`` (batch) → scored
file(s) → [``commit``: shards merged] → the scored partition; or → a deploy step → an endpoint.
Datasets are matched by (namespace, name), so each hop is the same dataset on both sides.

``airflow dags test`` runs every task in one process, where Airflow's hook lineage collector is
never reset: a TaskFlow step that reports nothing of its own after ``commit`` repeats
``commit``'s datasets. Only COMPLETE events are read, and a merge step is recognised by its
inputs, so such repeats change nothing here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCORING_OPERATORS = ("MlflowBatchScoreOperator",)


# -- reading --------------------------------------------------------------------------------------
def _decode_all(text: str) -> list[dict[str, Any]]:
    """Every JSON object in ``text``: one per line (``append: true``) or pretty-printed, back to back."""
    decoder, events, i = json.JSONDecoder(), [], 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        obj, i = decoder.raw_decode(text, i)
        events.append(obj)
    return events


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """OpenLineage run events written by the file transport, oldest first.

    ``path`` is the transport's ``log_file_path``: with ``append: true`` one file of one event
    per line; with ``append: false`` one ``<log_file_path>-<timestamp>.json`` file per event (both
    are read). A directory is read file by file (``*.json``, ``*.jsonl``).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
    else:
        files = [path] if path.is_file() else []
        files += sorted(path.parent.glob(f"{path.name}-*.json")) if path.parent.is_dir() else []
    events = [event for f in files for event in _decode_all(f.read_text())]
    events = [e for e in events if isinstance(e, dict) and "eventType" in e and "job" in e]
    return sorted(events, key=lambda e: e.get("eventTime", ""))


# -- the chain ------------------------------------------------------------------------------------
def _key(dataset: dict[str, Any]) -> tuple[str, str]:
    return dataset["namespace"], dataset["name"]


def _facets(dataset: dict[str, Any]) -> dict[str, Any]:
    return dataset.get("facets") or {}


def _is_model(dataset: dict[str, Any]) -> bool:
    return (_facets(dataset).get("datasetType") or {}).get("datasetType") == "MODEL"


def _is_endpoint(dataset: dict[str, Any]) -> bool:
    return _is_model(dataset) and (_facets(dataset).get("datasetType") or {}).get("subType") == "ENDPOINT"


def _is_logged_model(dataset: dict[str, Any]) -> bool:
    return _is_model(dataset) and dataset["name"].startswith(("logged_models/", "runs/"))


def _operator(event: dict[str, Any]) -> str | None:
    task = ((event.get("run") or {}).get("facets") or {}).get("airflow", {}).get("task") or {}
    return task.get("operator_class")


def _step(event: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"job": event["job"]["name"], "run_id": (event.get("run") or {}).get("runId"),
            "operator": _operator(event), "inputs": event.get("inputs") or [],
            "outputs": event.get("outputs") or [], **extra}


def lineage_chain(events: Iterable[dict[str, Any]], model_name: str,
                  scoring_operators: Iterable[str] = SCORING_OPERATORS) -> dict[str, Any]:
    """The provider's lineage for ``model_name``, read from COMPLETE events.

    Returns ``{"training": [...], "registrations": [...], "model_versions": [...],
    "scoring": [...], "scored_partitions": [...], "deployments": [...], "promotions": [...]}``;
    each step is ``{"job", "run_id", "operator", "inputs", "outputs", ...}`` with the datasets
    of its hop (``data``/``data_version``/``model`` for training, ``model``/``version`` for a
    registration, ``model_version`` for scoring, ``model_version``/``endpoint`` for a deployment).
    Nothing is asserted here; see :func:`assert_chain`.
    """
    complete = [e for e in events if e.get("eventType") == "COMPLETE"]
    version_name = re.compile(rf"^models/{re.escape(model_name)}/versions/(\d+)$")
    alias_name = re.compile(rf"^models/{re.escape(model_name)}/aliases/([^/]+)$")
    scoring_operators = set(scoring_operators)

    training = []
    for event in complete:
        models = [d for d in event.get("outputs") or [] if _is_logged_model(d)]
        if not models:
            continue
        data = [d for d in event.get("inputs") or [] if not _is_model(d)]
        versioned = [d for d in data if "mlops_dvc" in _facets(d)]
        training.append(_step(event, data=(versioned or data or [None])[0],
                              data_version=_facets(versioned[0]).get("mlops_dvc") if versioned else None,
                              model=models[0]))
    trained = {_key(t["model"]) for t in training}

    registrations = []
    for event in complete:
        sources = [d for d in event.get("inputs") or [] if _key(d) in trained]
        versions = [d for d in event.get("outputs") or [] if version_name.match(d["name"])]
        if sources and versions:
            registrations.append(_step(event, model=sources[0], version=versions[0]))
    registered = {_key(r["version"]): r["version"] for r in registrations}

    scoring, deployments, promotions = [], [], []
    for event in complete:
        inputs, outputs = event.get("inputs") or [], event.get("outputs") or []
        used = [d for d in inputs if _key(d) in registered]
        if not used:
            continue
        aliases = [d for d in outputs if alias_name.match(d["name"])]
        endpoints = [d for d in outputs if _is_endpoint(d)]
        files = [d for d in outputs if not _is_model(d)]
        operator = _operator(event)
        if aliases:
            promotions.append(_step(event, model_version=used[0], aliases=aliases))
        elif endpoints:
            deployments.append(_step(event, model_version=used[0], endpoint=endpoints[0]))
        elif files and (operator in scoring_operators if operator else True):
            scoring.append(_step(event, model_version=used[0]))

    # Scored files, then through merge steps (every input a scored file: the batch pipeline's commit).
    scored = {_key(d): d for s in scoring for d in s["outputs"] if not _is_model(d)}
    merged: set[tuple[str, str]] = set()
    changed = True
    while changed:
        changed = False
        for event in complete:
            inputs, outputs = event.get("inputs") or [], event.get("outputs") or []
            if inputs and outputs and all(_key(d) in scored for d in inputs) and not _is_model(outputs[0]):
                for d in outputs:
                    if _key(d) not in scored:
                        scored[_key(d)] = d
                        changed = True
                merged.update(_key(d) for d in inputs if _key(d) not in {_key(o) for o in outputs})
    partitions = [d for key, d in scored.items() if key not in merged]

    return {"training": training, "registrations": registrations, "model_versions": list(registered.values()),
            "scoring": scoring, "scored_partitions": partitions, "deployments": deployments,
            "promotions": promotions}


def _describe(events: Iterable[dict[str, Any]]) -> str:
    lines = []
    for e in events:
        if e.get("eventType") != "COMPLETE":
            continue
        ins = ", ".join(f"{d['namespace']}|{d['name']}" for d in e.get("inputs") or [])
        outs = ", ".join(f"{d['namespace']}|{d['name']}" for d in e.get("outputs") or [])
        lines.append(f"  {e['job']['name']}: [{ins}] -> [{outs}]")
    return "\n".join(lines) or "  (no COMPLETE events)"


def assert_chain(events: Iterable[dict[str, Any]], model_name: str, *, scoring: bool = True,
                 deployment: bool = False, scoring_operators: Iterable[str] = SCORING_OPERATORS) -> dict[str, Any]:
    """Assert training data (with its DVC version) → model version → scored partition [/ endpoint].

    - a training task read a dataset with the ``mlops_dvc`` facet (and a ``version``) and wrote a
      logged model;
    - a registration read that logged model and wrote ``models/<model_name>/versions/<n>``;
    - with ``scoring``: a scoring task read one of those versions and an input partition, and its
      output (directly, or merged by a step such as ``commit``) is a scored partition;
    - with ``deployment``: a deploy step read one of those versions and wrote an endpoint.

    Returns :func:`lineage_chain`'s dict; the message of a failure lists every COMPLETE event.
    """
    events = list(events)
    chain = lineage_chain(events, model_name, scoring_operators)
    where = f"\nCOMPLETE events:\n{_describe(events)}"
    assert chain["training"], f"no training task wrote a logged MLflow model{where}"
    with_dvc = [t for t in chain["training"] if t["data_version"]]
    assert with_dvc, f"no training task read data with an mlops_dvc facet: {chain['training']}{where}"
    for t in with_dvc:
        assert t["data_version"].get("md5") and t["data_version"].get("commit"), t["data_version"]
        assert (_facets(t["data"]).get("version") or {}).get("datasetVersion") == t["data_version"]["md5"], t["data"]
    assert chain["registrations"], (f"no task registered a trained model as models/{model_name}/versions/<n>"
                                    f"{where}")
    if scoring:
        assert chain["scoring"], f"no scoring task read a registered version of {model_name}{where}"
        for s in chain["scoring"]:
            partitions = [d for d in s["inputs"] if not _is_model(d)]
            assert partitions, f"{s['job']} read no input partition: {s['inputs']}"
        assert chain["scored_partitions"], f"the scoring tasks' outputs lead to no scored partition{where}"
    if deployment:
        assert chain["deployments"], f"no deploy step read a registered version of {model_name}{where}"
    return chain
