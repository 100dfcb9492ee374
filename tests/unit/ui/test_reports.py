"""Reports over http: the links' URLs, the plugin's report routes confined to their folders, and
the login redirect for a browser without a login (the app in-process; Airflow's own login check
is real, only the permission check is satisfied where a test needs a logged-in user)."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import urlencode

import pytest

from airflow_mlops_provider.links import base
from airflow_mlops_provider.links.drift import EvidentlyDriftReportLink
from airflow_mlops_provider.links.validation import GreatExpectationsDataDocsLink


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x.html", "a/../../x", "a//b", "a\\b", "./a", "a/."])
def test_unsafe_relative_paths_are_refused(bad):
    assert base.safe_relative(bad) is None


def test_link_persists_the_relative_path_and_builds_the_plugin_url(tmp_path, monkeypatch):
    reports = tmp_path / "reports"
    page = reports / "data_docs" / "validations" / "suite a" / "run" / "p.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    pushed = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value))
    relative = GreatExpectationsDataDocsLink.persist({"ti": ti}, page, reports)
    assert pushed == {"data_docs_page": "validations/suite a/run/p.html"} and relative == pushed["data_docs_page"]
    with pytest.raises(ValueError, match="is not under"):
        EvidentlyDriftReportLink.persist({"ti": ti}, page, reports)  # a data docs page is not a drift report

    monkeypatch.setattr(base, "_read_xcom", lambda link, key, ti_key: pushed.get(key))
    # Root-relative: the UI's origin at the time it is opened, not the worker's idea of it.
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://127.0.0.1:8080/")
    url = GreatExpectationsDataDocsLink().get_link(None, ti_key=None)
    assert url == "/mlops/reports/data_docs/validations/suite%20a/run/p.html"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://example.com/airflow/")  # behind a proxy, on a path
    assert GreatExpectationsDataDocsLink().get_link(None, ti_key=None).startswith("/airflow/mlops/reports/")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "")
    assert GreatExpectationsDataDocsLink().get_link(None, ti_key=None).startswith("/mlops/reports/data_docs/")
    pushed["data_docs_page"] = "../../airflow/airflow.cfg"  # never a URL outside the folder
    assert GreatExpectationsDataDocsLink().get_link(None, ti_key=None) == ""
    assert EvidentlyDriftReportLink().get_link(None, ti_key=None) == ""  # nothing stored: no link


@pytest.fixture
def app(tmp_path, monkeypatch):
    from airflow.api_fastapi import app as api_app

    from airflow_mlops_provider.ui.models_view import create_app

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    reports = tmp_path / "home" / "reports"
    (reports / "drift").mkdir(parents=True)
    (reports / "drift" / "fraud-v1-day.html").write_text("<html>drift</html>")
    (reports / "data_docs" / "validations" / "s").mkdir(parents=True)
    (reports / "data_docs" / "validations" / "s" / "p.html").write_text("<html>docs</html>")
    (tmp_path / "home" / "ledger.jsonl").write_text("secret")
    (tmp_path / "outside.html").write_text("outside")
    api_app.create_auth_manager()  # what the api-server does at start (the simple auth manager)
    try:
        yield create_app()
    finally:
        api_app._AuthManagerState.instance = None


def _logged_in(app):
    from airflow.api_fastapi.core_api.security import get_user

    app.dependency_overrides[get_user] = lambda: SimpleNamespace(get_id=lambda: "admin", get_name=lambda: "admin")
    for dependency in app.router.dependencies:
        app.dependency_overrides[dependency.dependency] = lambda: None
    return app


def test_report_routes_serve_their_folders_and_nothing_else(app):
    from fastapi.testclient import TestClient

    client = TestClient(_logged_in(app))
    assert client.get("/reports/drift/fraud-v1-day.html").text == "<html>drift</html>"
    assert client.get("/reports/data_docs/validations/s/p.html").text == "<html>docs</html>"
    for path in ("/reports/drift/..%2Fledger.jsonl", "/reports/data_docs/..%2F..%2Fledger.jsonl",
                 "/reports/data_docs/%2E%2E/%2E%2E/ledger.jsonl", "/reports/data_docs/..%2F..%2F..%2Foutside.html",
                 "/reports/data_docs/validations/s/missing.html", "/reports/data_docs/", "/reports/drift/x.txt"):
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.status_code, answer.text)


def test_a_browser_without_login_is_sent_to_the_login_page_and_api_clients_get_401(app):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    server = FastAPI()  # the api-server mounts the plugin's app at /mlops
    server.mount("/mlops", app)
    client = TestClient(server, base_url="http://127.0.0.1:8080")
    for path in ("/mlops/models", "/mlops/reports/drift/fraud-v1-day.html"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 307, (path, answer.text)
        assert answer.headers["location"] == "/auth/login?" + urlencode({"next": f"http://127.0.0.1:8080{path}"})
    # A stale or forged cookie is the same as none for a browser.
    stale = client.get("/mlops/models", cookies={"_token": "not-a-jwt"}, follow_redirects=False)
    assert stale.status_code == 307
    # Scripts keep a plain answer: the JSON API, and any request carrying a bearer token.
    assert client.get("/mlops/api/models", follow_redirects=False).status_code == 401
    assert client.get("/mlops/models", headers={"Authorization": "Bearer nope"}, follow_redirects=False).status_code == 403
