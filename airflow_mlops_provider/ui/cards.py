"""Model cards in the Models view: the list of versions with a card, and the routes that serve a card.

- ``GET /mlops/models/{name}/versions/{version}/card`` — the card's self-contained HTML page,
  read from the version's MLflow artifacts (tag ``mlops.card``); any version, current or
  superseded, keeps its card.
- ``GET /mlops/api/models/{name}/versions/{version}/card`` — the card's JSON document.

Both sit behind the Models view's login and plugin-view permission (the app's dependencies).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from airflow_mlops_provider.core.card import CARD_TAG

#: At most this many versions are listed per model (newest first); older cards stay reachable by URL.
LISTED_VERSIONS = 50


def card_versions(client: Any, name: str) -> list[dict[str, Any]]:
    """``[{"version", "verdict", "card"}]`` for the versions of ``name`` that have a card, newest first."""
    versions = client.search_model_versions(f"name = '{name}'", max_results=LISTED_VERSIONS,
                                            order_by=["version_number DESC"])
    out = []
    for mv in versions:
        tags = dict(mv.tags or {})
        if CARD_TAG in tags:
            out.append({"version": str(mv.version), "verdict": tags.get("mlops.decision"), "card": tags[CARD_TAG]})
    return sorted(out, key=lambda v: -int(v["version"]))


def card_path(base: str, name: str, version: str) -> str:
    return f"{base}/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}/card"


def cards_section(model: dict[str, Any], base: str) -> str:
    """The "Model cards" list of one model on the page."""
    cards = model.get("cards") or []
    if not cards:
        return "<h3>Model cards</h3><p class='muted'>No model cards yet (the promotion gate writes one).</p>"
    items = "".join(
        f"<li data-card-version='{html.escape(c['version'])}'><a href='{html.escape(card_path(base, model['name'], c['version']))}'>"
        f"v{html.escape(c['version'])}</a> <span class='muted'>({html.escape(str(c.get('verdict')))})</span></li>"
        for c in cards)
    return f"<h3>Model cards</h3><ul class='cards'>{items}</ul>"


def _load(client: Any, name: str, version: str, which: str) -> str:
    """The card artifact (``json`` or ``html``) of a version; LookupError when it has none."""
    import mlflow

    from airflow_mlops_provider.core.card import CARD_HTML, CARD_JSON

    mv = client.get_model_version(name, version)
    tags = dict(mv.tags or {})
    if CARD_TAG not in tags or not mv.run_id:
        raise LookupError(f"{name} v{version} has no model card")
    path = CARD_JSON if which == "json" else CARD_HTML
    # Through the client's own tracking URI: the view's process may never have set a global one.
    local = client.download_artifacts(mv.run_id, path) if hasattr(client, "download_artifacts") else \
        mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=path)
    with open(local, encoding="utf-8") as fh:
        return fh.read()


def register_card_routes(app: Any, client_factory: Any) -> None:
    """Add the card routes to the Models view's FastAPI ``app``; ``client_factory()`` gives an MlflowClient."""
    import json

    from fastapi import HTTPException
    from fastapi.responses import HTMLResponse, JSONResponse

    def read(name: str, version: str, which: str) -> str:
        if not version.isdigit():
            raise HTTPException(status_code=404, detail="no such version")
        client = client_factory()
        try:
            return _load(client, name, version, which)
        except LookupError as err:
            raise HTTPException(status_code=404, detail=str(err)) from err
        except Exception as err:
            from mlflow.exceptions import MlflowException

            if isinstance(err, MlflowException) and "RESOURCE_DOES_NOT_EXIST" in str(getattr(err, "error_code", "")):
                raise HTTPException(status_code=404, detail=f"{name} v{version} does not exist") from err
            raise HTTPException(status_code=502, detail=f"cannot read the model card of {name} v{version}: "
                                f"{type(err).__name__}") from err

    @app.get("/models/{name}/versions/{version}/card", response_class=HTMLResponse)
    def card_page(name: str, version: str) -> HTMLResponse:
        return HTMLResponse(read(name, version, "html"))

    @app.get("/api/models/{name}/versions/{version}/card")
    def card_json(name: str, version: str) -> JSONResponse:
        return JSONResponse(json.loads(read(name, version, "json")))
