"""MLflow registry operators: register, alias, read by alias, decide and promote by aliases.

Aliases, not stages (MLflow 3): ``challenger`` is the candidate, ``champion`` serves,
``previous`` is the former champion kept for rollback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from airflow_mlops_provider.core.settings import mlops_home
from airflow_mlops_provider.hooks.lineage import safely
from airflow_mlops_provider.operators.mixins import MlflowHookMixin
from airflow_mlops_provider.results import DecisionResult, ModelVersionResult, PromotionResult, SummaryResult
from airflow_mlops_provider.version_compat import BaseOperator

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous"


def version_dict(mv: Any) -> dict[str, Any]:
    return {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id, "source": mv.source,
            "aliases": list(getattr(mv, "aliases", []) or []), "tags": dict(mv.tags or {})}


class _MlflowRegistryOperator(MlflowHookMixin):
    ui_color = "#43b1f0"

    def __init__(self, **kwargs: Any) -> None:
        # Each key of the returned dict is also its own XCom, so `op.output["key"]` works.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)


class MlflowRegisterModelOperator(_MlflowRegistryOperator):
    """Register a run's model as a new version (once per run: reruns reuse it) and alias it.

    Lineage tags of the run (``mlops.*``) are copied onto the version, together with the
    location of the drift baseline.
    """

    template_fields: Sequence[str] = ("name", "run_id", "model_uri", "alias", "tags", "mlflow_conn_id")

    def __init__(self, *, name: str, run_id: str, model_uri: str | None = None, alias: str | None = CHALLENGER,
                 tags: dict[str, str] | None = None, ready_timeout: float = 300, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.run_id = run_id
        self.model_uri = model_uri
        self.alias = alias
        self.tags = tags
        self.ready_timeout = ready_timeout

    def execute(self, context: Any) -> ModelVersionResult:
        from mlflow.exceptions import MlflowException

        # MLflow's SQL registry store resolves a ``models:/<id>`` source through the process-global
        # tracking URI, not the client's: without this a fresh worker process looks in ./mlflow.db.
        self.hook.activate()
        client = self.hook.client
        try:
            client.get_registered_model(self.name)
        except MlflowException:
            try:
                client.create_registered_model(self.name, description="Managed by airflow-mlops-provider")
            except MlflowException:
                client.get_registered_model(self.name)  # created concurrently: fine
        existing = client.search_model_versions(f"name = '{self.name}' and run_id = '{self.run_id}'")
        source = None
        if existing:
            mv = max(existing, key=lambda v: int(v.version))
            self.log.info("Run %s is already registered as %s v%s; reusing it", self.run_id, self.name, mv.version)
        else:
            run = client.get_run(self.run_id)
            source = self.model_uri or self.hook.logged_model_uri(self.run_id)
            lineage = {k: v for k, v in run.data.tags.items() if k.startswith(("mlops.", "airflow."))}
            lineage["mlops.baseline_uri"] = f"runs:/{self.run_id}/baseline"
            # A tracking server checks that a ``models:/<model_id>`` source names its LoggedModel.
            model_id = source.removeprefix("models:/") if source.startswith("models:/m-") else None
            mv = client.create_model_version(self.name, source, run_id=self.run_id,
                                             tags={**lineage, **(self.tags or {})}, model_id=model_id)
            self.log.info("Registered %s as version %s", source, mv.version)
        mv = self.hook.wait_version_ready(self.name, mv.version, timeout=self.ready_timeout)
        if self.alias:
            client.set_registered_model_alias(self.name, self.alias, mv.version)
        registered = version_dict(client.get_model_version(self.name, mv.version))
        self._lineage_state = {
            "tracking_uri": self.hook.tracking_uri, "registry_uri": self.hook.registry_uri,
            "model_uri": source or self.model_uri or safely(lambda: self.hook.logged_model_uri(self.run_id),
                                                            registered["source"]),
            "version": registered["version"], "source": registered["source"]}
        return registered

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the model the run logged. Output: the registered version (``models/<name>/versions/<n>``)."""
        from airflow_mlops_provider.core.lineage import logged_model_dataset, model_version_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None)
        if not state:
            return operator_lineage()
        return operator_lineage(
            inputs=[logged_model_dataset(state["tracking_uri"], state["model_uri"], self.run_id)],
            outputs=[model_version_dataset(state["registry_uri"], self.name, state["version"], self.run_id,
                                           source=state["source"], alias=self.alias)])


class MlflowSetModelAliasOperator(_MlflowRegistryOperator):
    """Point ``alias`` at ``version`` (or delete it when ``version`` is None)."""

    template_fields: Sequence[str] = ("name", "alias", "version", "mlflow_conn_id")

    def __init__(self, *, name: str, alias: str, version: str | int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.alias = alias
        self.version = version

    def execute(self, context: Any) -> dict[str, Any]:
        if self.version in (None, "", "None"):
            self.hook.client.delete_registered_model_alias(self.name, self.alias)
            return {"name": self.name, "alias": self.alias, "version": None}
        self.hook.client.set_registered_model_alias(self.name, self.alias, str(self.version))
        self._lineage_state = {"registry_uri": self.hook.registry_uri, "version": str(self.version)}
        return {"name": self.name, "alias": self.alias, "version": str(self.version)}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the version. Output: the alias (``models/<name>/aliases/<alias>``) naming it."""
        from airflow_mlops_provider.core.lineage import alias_dataset, model_version_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None)
        if not state:
            return operator_lineage()
        uri, version = state["registry_uri"], state["version"]
        return operator_lineage(inputs=[model_version_dataset(uri, self.name, version)],
                                outputs=[alias_dataset(uri, self.name, self.alias, version)])


class MlflowGetModelVersionOperator(_MlflowRegistryOperator):
    """Read the version an alias names; fails naming the alias when it is unset."""

    template_fields: Sequence[str] = ("name", "alias", "mlflow_conn_id")

    def __init__(self, *, name: str, alias: str = CHAMPION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.alias = alias

    def execute(self, context: Any) -> ModelVersionResult:
        return version_dict(self.hook.get_version_by_alias(self.name, self.alias))


class MlflowCompareChallengerOperator(_MlflowRegistryOperator):
    """Judge the challenger against the champion with a :class:`PromotionPolicy`.

    The champion is re-scored on the challenger's holdout so both are judged on the same rows.
    The decision (inputs, numbers, verdict, reasons) is appended to the audit ledger and written
    as tags on the challenger version. A rejection is a normal outcome: the task succeeds and
    returns ``verdict == "rejected"``; the promote task then skips.

    :param explain: feature attributions of challenger and champion on the same holdout sample
        (:mod:`airflow_mlops_provider.core.explain`), logged as ``explanations.json`` on the challenger's
        run and returned under ``explanations``. ``None`` (default): on when the ``explain`` extra
        (shap) is installed, and an explainer failure is logged, not fatal; ``True``: required;
        ``False``: off.
    :param explain_rows: the seeded holdout sample the attributions are computed on (bounds the cost).
    """

    template_fields: Sequence[str] = ("name", "challenger", "challenger_metrics", "policy", "target",
                                      "slices", "model_card", "mlflow_conn_id")
    template_fields_renderers = {"policy": "json", "challenger": "json", "slices": "json", "model_card": "json"}

    def __init__(self, *, name: str, challenger: dict[str, Any], policy: dict[str, Any], target: str,
                 challenger_metrics: dict[str, Any] | None = None, champion_alias: str = CHAMPION,
                 sensitive_features: Sequence[str] = (), explain: bool | None = None,
                 explain_rows: int = 500, slices: Sequence[dict[str, Any]] = (),
                 model_card: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.explain = explain
        self.explain_rows = explain_rows
        self.challenger = challenger
        self.challenger_metrics = challenger_metrics
        self.policy = policy
        self.target = target
        self.champion_alias = champion_alias
        self.sensitive_features = list(sensitive_features or ())
        self.slices = list(slices or ())
        self.model_card = model_card

    def execute(self, context: Any) -> DecisionResult:
        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.policy import PromotionPolicy
        from airflow_mlops_provider.core.task_types import task_type_of_tags, task_type_of_version
        from airflow_mlops_provider.core.tasks import TaskTypeError, classes_from_tags, complete_policy

        self.hook.activate()
        version = str(self.challenger["version"])
        run_id = self.challenger["run_id"]
        tags = self.challenger.get("tags") or self.hook.client.get_model_version(self.name, version).tags or {}
        # The type is the version's own (tag mlops.task_type); a version without it is refused.
        task_type = task_type_of_tags(tags, f"model {self.name!r} version {version}").name
        policy = PromotionPolicy.from_dict(complete_policy(task_type, self.policy))
        holdout = self.hook.load_holdout(run_id)
        raw_outputs: dict[str, Any] = {}

        def predict(model_version: str) -> Any:
            """The version's raw pyfunc output on the holdout, predicted once (metrics, groups, bootstrap, card)."""
            if model_version not in raw_outputs:
                from airflow_mlops_provider.core.tasks import model_features

                uri = f"models:/{self.name}/{model_version}"
                model = self.hook.load_pyfunc(uri)
                features = model_features(model)
                missing = [c for c in [*features, self.target] if c not in holdout.columns]
                if missing:
                    raise KeyError(f"{uri} needs columns {missing} that the holdout lacks")
                raw_outputs[model_version] = model.predict(holdout[features])
            return raw_outputs[model_version]

        def score(model_version: str, model_tags: dict[str, str]) -> dict[str, float]:
            from airflow_mlops_provider.core.tasks import compute_metrics

            return compute_metrics(task_type, holdout[self.target], predict(model_version),
                                   classes_from_tags(model_tags))

        fairness: dict[str, Any] = {}

        def with_groups(metrics: dict[str, float], model_version: str, model_tags: dict[str, str],
                        side: str) -> dict[str, float]:
            """Add the group (bias) metrics on the same holdout rows when sensitive attributes are named."""
            if not self.sensitive_features:
                return metrics
            from airflow_mlops_provider.core.fairness import FairnessError, group_metrics

            missing = [c for c in self.sensitive_features if c not in holdout.columns]
            if missing:
                raise FairnessError(f"{self.name}: sensitive column(s) {missing} are not in challenger v{version}'s "
                                    f"holdout (columns: {sorted(holdout.columns)[:30]})")
            result = group_metrics(task_type, holdout[self.target], predict(model_version),
                                   holdout[self.sensitive_features], classes_from_tags(model_tags))
            fairness[side] = {"version": model_version, **result}
            return {**metrics, **result["metrics"]}

        challenger_metrics = with_groups(dict(self.challenger_metrics or score(version, tags)), version, tags,
                                         "challenger")
        champion = self.hook.get_version_by_alias(self.name, self.champion_alias, required=False)
        champion_metrics = None
        if champion is not None and str(champion.version) == version:
            champion = None  # re-deciding an already promoted version: judge on floors only
        if champion is not None:
            champion_type = task_type_of_version(self.name, champion).name
            if champion_type != task_type:
                raise TaskTypeError(f"{self.name}: the challenger v{version} is a {task_type} model but the champion "
                                    f"v{champion.version} is a {champion_type} model; they cannot be compared")
            try:
                champion_metrics = with_groups(score(str(champion.version), champion.tags or {}),
                                               str(champion.version), champion.tags or {}, "champion")
            except TaskTypeError as err:
                raise TaskTypeError(f"{self.name}: the champion v{champion.version} cannot be scored on challenger "
                                    f"v{version}'s holdout: {err}. If the data changed (e.g. a new class), retire "
                                    f"the champion (delete or move @{self.champion_alias}) and rerun") from err
        evidence = self._evidence(task_type, policy, holdout, {
            "challenger": predict(version),
            "champion": predict(str(champion.version)) if champion is not None else None},
            {"challenger": classes_from_tags(tags),
             "champion": classes_from_tags(champion.tags or {}) if champion is not None else None})
        decision = policy.decide(challenger_metrics, champion_metrics, eval_rows=len(holdout), evidence=evidence)
        ti = context["ti"]
        record = {
            "event": "decision", "model": self.name, "challenger_version": version,
            "champion_version": str(champion.version) if champion is not None else None,
            "verdict": decision.verdict, "reasons": decision.reasons, "checks": decision.checks,
            "challenger_metrics": challenger_metrics, "champion_metrics": champion_metrics,
            "eval_rows": len(holdout), "policy": policy.to_dict(), "task_type": task_type,
            "data_version": self.challenger.get("tags", {}).get("mlops.data.id"),
            "dag_id": ti.dag_id, "run_id": ti.run_id, "try_number": ti.try_number,
        }
        if fairness:
            record["fairness"] = {"sensitive_features": self.sensitive_features, **fairness}
        gains = (evidence.get("bootstrap") or {}).get("gains")
        if gains:
            record["gains"] = gains  # the paired-bootstrap intervals the significance rule read
        ledger.append(mlops_home().ledger_path, record)
        client = self.hook.client
        client.set_model_version_tag(self.name, version, "mlops.decision", decision.verdict)
        client.set_model_version_tag(self.name, version, "mlops.decision.reasons", json.dumps(decision.reasons))
        client.set_model_version_tag(self.name, version, "mlops.decision.against",
                                     record["champion_version"] or "none")
        if "challenger" in fairness:
            # For auditors: the group metrics travel with the model version and its run.
            from mlflow.entities import Metric

            mine = fairness["challenger"]
            client.set_model_version_tag(self.name, version, "mlops.fairness", json.dumps(
                {"sensitive_features": self.sensitive_features, "metrics": mine["metrics"],
                 "groups": mine["groups"], "sizes": mine["sizes"]})[:5000])
            stamp = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(f"fairness.{k}", float(v), stamp, 0)
                                              for k, v in mine["metrics"].items()])
        explanations = self._explanations(holdout, task_type, version, run_id, tags, champion)
        if explanations is not None:
            evidence["explanations"] = explanations  # shown in the card; not judged by the policy
        card = self._publish_card(record, evidence, tags, holdout, fairness)
        log = self.log.info if decision.promote else self.log.warning
        log("Decision for %s v%s against champion %s: %s — %s", self.name, version,
            record["champion_version"], decision.verdict.upper(), "; ".join(decision.reasons))
        result: DecisionResult = {"task_type": task_type, **{k: record[k] for k in (  # type: ignore[typeddict-item]
            "model", "challenger_version", "champion_version", "verdict", "reasons", "checks",
            "challenger_metrics", "champion_metrics", "eval_rows")}, "card": card}
        if explanations is not None:
            result["explanations"] = explanations
        return result

    def _explanations(self, holdout: Any, task_type: str, version: str, run_id: str, tags: dict[str, str],
                      champion: Any) -> dict[str, Any] | None:
        """Attributions of challenger (and champion) on one holdout sample, logged on the challenger's run."""
        from airflow_mlops_provider.core.explain import shap_available, version_explanations
        from airflow_mlops_provider.core.tasks import classes_from_tags

        if self.explain is False or (self.explain is None and not shap_available()):
            return None

        def load(v: str) -> Any:
            return self.hook.load_pyfunc(f"models:/{self.name}/{v}")

        try:
            found = version_explanations(
                load(version), holdout, task_type, classes_from_tags(tags), version=version, rows=self.explain_rows,
                champion=None if champion is None else (load(str(champion.version)), str(champion.version),
                                                        classes_from_tags(champion.tags or {})))
        except Exception as err:
            if self.explain:
                raise
            self.log.warning("No explanations for %s v%s: %s", self.name, version, err)
            return None
        self.hook.client.log_dict(run_id, found, "explanations.json")
        return found


    def _evidence(self, task_type: str, policy: Any, holdout: Any, raw_by_side: dict[str, Any],
                  classes: dict[str, Any]) -> dict[str, Any]:
        """Bootstrap intervals and paired gains, slices and plots on the holdout (``core.card.gate_evidence``).

        The dict is the gate's evidence: the policy judges it and the model card shows it; other
        evidence (``explanations``) is added under its own key."""
        from airflow_mlops_provider.core.card import gate_evidence
        from airflow_mlops_provider.core.task_types import get_task_type

        task = get_task_type(task_type)
        slice_metrics = [r.name for r in policy.slices.metrics] if policy.slices is not None else \
            [r.name for r in policy.metrics if r.name in task.metrics]
        return gate_evidence(task, holdout, self.target, raw_by_side, classes, bootstrap_spec=policy.bootstrap,
                             slices=self.slices, slice_metrics=slice_metrics,
                             sensitive_features=self.sensitive_features,
                             directions={**task.metrics, **task.group_metrics})

    def _publish_card(self, record: dict[str, Any], evidence: dict[str, Any], tags: dict[str, str],
                      holdout: Any, fairness: dict[str, Any]) -> dict[str, str]:
        """Write the model card (JSON + HTML) as artifacts of the challenger's run; tag and describe the version."""
        import tempfile
        from pathlib import Path

        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.core.card import (
            CARD_DIR,
            CARD_HTML,
            CARD_JSON,
            CARD_TAG,
            build_card,
            label_balance,
            render_html,
        )
        from airflow_mlops_provider.core.task_types import get_task_type

        client = self.hook.client
        version, run_id = record["challenger_version"], self.challenger["run_id"]
        params = client.get_run(run_id).data.params
        task = get_task_type(record["task_type"])
        identity = {"name": self.name, "version": version, "task_type": record["task_type"],
                    "flavor": tags.get("mlops.flavor"), "run_id": run_id, "source": self.challenger.get("source"),
                    "classes": tags.get("mlops.classes"), "owner": None, "intended_use": None,
                    "out_of_scope_uses": [], "limitations": [], **(self.model_card or {})}
        training = {key.removeprefix("mlops."): value for key, value in sorted(tags.items())
                    if key.startswith(("mlops.data.", "mlops.validation.")) or key == "mlops.code_version"}
        training.update({"train_rows": params.get("train_rows"), "holdout_rows": len(holdout),
                         "features": params.get("features"),
                         "label_balance": label_balance(holdout[self.target], task.has_classes)})
        history = [r for r in ledger.read(mlops_home().ledger_path) if r.get("model") == self.name]
        card = build_card(identity=identity, training_data=training, decision=record,
                          metrics={"challenger": record["challenger_metrics"],
                                   "champion": record["champion_metrics"]},
                          evidence=evidence, fairness={"sensitive_features": self.sensitive_features, **fairness}
                          if fairness else None, history=history, policy=record["policy"],
                          champion_version=record["champion_version"], eval_rows=record["eval_rows"])
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / CARD_DIR
            folder.mkdir()
            (folder / "model_card.json").write_text(json.dumps(card, indent=1), encoding="utf-8")
            (folder / "model_card.html").write_text(render_html(card), encoding="utf-8")
            # One call for both files: the card is replaced whole on a rerun, never half-written.
            client.log_artifacts(run_id, str(folder), artifact_path=CARD_DIR)
        uris = {"json": f"runs:/{run_id}/{CARD_JSON}", "html": f"runs:/{run_id}/{CARD_HTML}"}
        client.set_model_version_tag(self.name, version, CARD_TAG, uris["html"])
        client.update_model_version(self.name, version, description=(
            f"Model card: {uris['html']} (JSON: {uris['json']}); in the Models view: "
            f"/mlops/models/{self.name}/versions/{version}/card. Gate: {record['verdict']} — "
            + "; ".join(record["reasons"]))[:5000])
        self.log.info("Model card of %s v%s: %s", self.name, version, uris["html"])
        return uris


class MlflowPromoteModelOperator(_MlflowRegistryOperator):
    """Move ``champion`` to the challenger and keep the former champion as ``previous``.

    Skips (and so skips what follows, e.g. deployment) when the decision rejected the
    challenger. Promotion is a compare-and-set under a lock: if the champion moved since the
    decision was taken, the challenger was judged against a stale champion and is not
    promoted; the ledger records it. Give this task a 1-slot pool to serialise promotions
    across hosts; the file lock under MLOPS_HOME serialises them on one host.

    :param on_superseded: ``skip`` (default) — a superseded promotion skips, nothing else
        happened; ``fail`` — raise :class:`PromotionSuperseded`, for DAGs where the challenger
        already serves traffic and a failure here must trigger the rollback.
    :param event: the ledger event of a move (``promoted``; a rollback of the champion records
        ``champion_rolled_back``, see :mod:`airflow_mlops_provider.core.history`).
    :param ledger_fields: more fields for the ledger record (who asked, why, the deploy target).
    """

    template_fields: Sequence[str] = ("name", "decision", "on_superseded", "ledger_fields", "mlflow_conn_id")
    template_fields_renderers = {"decision": "json"}

    def __init__(self, *, name: str, decision: dict[str, Any], on_superseded: str = "skip",
                 event: str = "promoted", ledger_fields: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.decision = decision
        self.on_superseded = on_superseded
        self.event = event
        self.ledger_fields = ledger_fields

    def execute(self, context: Any) -> PromotionResult:
        result = self._promote(context)
        # After the lock is released: a slow metrics gateway never holds up other promotions.
        from airflow_mlops_provider.hooks.prometheus import ledger_count, push_task_metrics

        version = result["champion"]
        push_task_metrics(context, model=self.name, version=version, metrics={
            "promotions": ledger_count(mlops_home().ledger_path, self.name, "promoted"),
            "champion_version": float(version) if version.isdigit() else None},
            descriptions={"promotions": "promotions recorded in the audit ledger for this model"})
        return result

    def _promote(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops_provider.core import ledger
        from airflow_mlops_provider.exceptions import PromotionSuperseded

        if self.on_superseded not in ("skip", "fail"):
            raise ValueError(f"on_superseded must be 'skip' or 'fail', not {self.on_superseded!r}")
        if self.decision.get("verdict") != "promote":
            raise AirflowSkipException(
                f"challenger v{self.decision.get('challenger_version')} was rejected: "
                + "; ".join(self.decision.get("reasons", [])))
        home = mlops_home()
        version = str(self.decision["challenger_version"])
        expected = self.decision.get("champion_version")
        ti = context["ti"]
        client = self.hook.client
        with ledger.file_lock(home.root / "locks" / f"promote-{self.name}.lock"):
            current = self.hook.get_version_by_alias(self.name, CHAMPION, required=False)
            current_v = str(current.version) if current is not None else None
            # task_id names the lane (``local.promote``): the history of what a deploy target served.
            base = {"model": self.name, "challenger_version": version, "dag_id": ti.dag_id,
                    "run_id": ti.run_id, "task_id": ti.task_id, **dict(self.ledger_fields or {})}
            if current_v == version:
                previous = self._previous()
                promoted = [r for r in ledger.read(home.ledger_path)
                            if r.get("event") == self.event and r.get("model") == self.name
                            and str(r.get("challenger_version")) == version]
                if not promoted:
                    # An earlier try moved the alias, then died (kill -9) before writing the ledger:
                    # the audit trail must still say who promoted what.
                    ledger.append(home.ledger_path, {**base, "event": self.event, "previous_champion": previous,
                                                     "recovered": True})
                    self.log.warning("%s v%s was made champion by an interrupted try; ledger entry recovered",
                                     self.name, version)
                    return self._promoted(version, previous, changed=True)
                self.log.info("%s v%s is already the champion", self.name, version)
                return self._promoted(version, previous, changed=False)
            if current_v != expected:
                ledger.append(home.ledger_path, {**base, "event": "promotion_superseded",
                                                 "expected_champion": expected, "actual_champion": current_v,
                                                 "reasons": ["champion moved while the decision was taken"]})
                message = (f"champion of {self.name} is now v{current_v}, not v{expected} the decision was taken "
                           f"against; not promoting v{version} on a stale comparison")
                if self.on_superseded == "fail":
                    raise PromotionSuperseded(message, model=self.name, challenger_version=version,
                                              expected_champion=expected, actual_champion=current_v)
                raise AirflowSkipException(message)
            if current_v is not None:
                client.set_registered_model_alias(self.name, PREVIOUS, current_v)
            client.set_registered_model_alias(self.name, CHAMPION, version)
            if self.event == "promoted":  # a rollback leaves a waiting challenger where it is
                try:
                    client.delete_registered_model_alias(self.name, CHALLENGER)
                except Exception:  # noqa: BLE001 - the alias may already be gone
                    pass
            ledger.append(home.ledger_path, {**base, "event": self.event, "previous_champion": current_v})
        self.log.info("Promoted %s v%s to champion (previous: %s)", self.name, version, current_v)
        return self._promoted(version, current_v, changed=True)

    def _previous(self) -> str | None:
        prev = self.hook.get_version_by_alias(self.name, PREVIOUS, required=False)
        return str(prev.version) if prev is not None else None

    def _promoted(self, version: str, previous: str | None, *, changed: bool) -> dict[str, Any]:
        self._lineage_state = {"registry_uri": self.hook.registry_uri, "version": version, "previous": previous}
        return {"name": self.name, "champion": version, "previous": previous, "changed": changed}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the promoted version (and the former champion). Output: ``@champion`` naming it
        (``models/<name>/aliases/champion``, its ``version`` facet the version), and ``@previous``."""
        from airflow_mlops_provider.core.lineage import alias_dataset, model_version_dataset
        from airflow_mlops_provider.hooks.lineage import operator_lineage

        state = getattr(self, "_lineage_state", None)
        if not state:  # rejected or superseded: nothing was promoted
            return operator_lineage()
        uri, version, previous = state["registry_uri"], state["version"], state["previous"]
        inputs = [model_version_dataset(uri, self.name, version)]
        outputs = [alias_dataset(uri, self.name, CHAMPION, version)]
        if previous and previous != version:
            inputs.append(model_version_dataset(uri, self.name, previous))
            outputs.append(alias_dataset(uri, self.name, PREVIOUS, previous))
        return operator_lineage(inputs=inputs, outputs=outputs)


class MlflowSummarizeDecisionOperator(BaseOperator):
    """One readable line per retraining run: what was decided, against which champion, and why.

    Runs with ``none_failed`` (the default here): it is a leaf of the DAG, so a run in which a
    step failed — validation, training, or a deployment that was rolled back (whose line comes
    from ``record_rollback``) — keeps ending *failed* for the scheduler, the UI and alerting.

    :param decision: the ``decide`` task's result.
    :param promote_task_ids: the promotion tasks of the pipeline. The verdict is ``promote`` when
        one of them moved ``@champion``; ``unchanged`` when it already was the champion or the
        promotion was superseded; ``rejected`` as decided.

    Returns :class:`~airflow_mlops_provider.results.SummaryResult`.
    """

    template_fields: Sequence[str] = ("decision",)
    template_fields_renderers = {"decision": "json"}
    ui_color = "#43b1f0"

    def __init__(self, *, decision: dict[str, Any], promote_task_ids: Sequence[str], **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.decision = decision
        self.promote_task_ids = promote_task_ids

    def execute(self, context: Any) -> SummaryResult:
        decision = self.decision
        pulled = context["ti"].xcom_pull(task_ids=list(self.promote_task_ids)) or []
        promoted = next((p for p in (pulled if isinstance(pulled, list) else [pulled]) if p), None)
        if decision["verdict"] != "promote":
            verdict = decision["verdict"]
        else:
            verdict = "promote" if promoted is not None and promoted.get("changed") else "unchanged"
        line = (f"{decision['model']} v{decision['challenger_version']}: {verdict.upper()} "
                f"(against champion {decision['champion_version']}) — {'; '.join(decision['reasons'])}")
        self.log.info("%s", line)
        print(line)  # the demo and `airflow dags test` users read it on stdout
        print(f"ledger: {mlops_home().ledger_path}")
        return {"verdict": verdict, "promotion": promoted}
