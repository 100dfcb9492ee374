"""The Models view serves a version's model card from its MLflow artifacts (a real MLflow store under MLOPS_HOME;
the view's Airflow login dependency is satisfied in-process, as in test_models_view)."""

from __future__ import annotations

import json


def test_card_routes_serve_any_versions_card_and_404_otherwise(monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    from airflow_mlops_provider.core.card import CARD_DIR, CARD_TAG
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.ui.models_view import collect, create_app

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    hook = MlflowHook()
    client = hook.client
    run = client.create_run(client.create_experiment("cards"))
    folder = tmp_path / "out" / CARD_DIR
    folder.mkdir(parents=True)
    (folder / "model_card.json").write_text(json.dumps({"identity": {"name": "m", "version": "1"}}))
    (folder / "model_card.html").write_text("<!doctype html><h1>Model card: m v1</h1>")
    client.log_artifacts(run.info.run_id, str(folder), artifact_path=CARD_DIR)
    client.create_registered_model("m")
    carded = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                         tags={CARD_TAG: f"runs:/{run.info.run_id}/model_card/model_card.html",
                                               "mlops.decision": "rejected"})
    bare = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)

    app = create_app()
    for dependency in app.router.dependencies:  # Airflow's login check: covered by the stack test
        app.dependency_overrides[dependency.dependency] = lambda: None
    web = TestClient(app)
    page = web.get(f"/models/m/versions/{carded.version}/card")
    assert page.status_code == 200 and "Model card: m v1" in page.text
    assert web.get(f"/api/models/m/versions/{carded.version}/card").json()["identity"] == {"name": "m", "version": "1"}
    missing = web.get(f"/models/m/versions/{bare.version}/card")
    assert missing.status_code == 404 and "has no model card" in missing.json()["detail"]
    assert web.get("/models/m/versions/99/card").status_code == 404
    assert web.get("/models/m/versions/x/card").status_code == 404

    from airflow_mlops_provider.core.settings import mlops_home

    facts = collect(client, home=mlops_home(), tracking_uri=hook.tracking_uri)
    assert facts["models"][0]["cards"] == [{"version": str(carded.version), "verdict": "rejected",
                                             "card": f"runs:/{run.info.run_id}/model_card/model_card.html"}]
