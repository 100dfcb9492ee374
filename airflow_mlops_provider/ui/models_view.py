"""The Models view: registry, aliases, decisions and drift history, served by Airflow's api-server.

A read-only FastAPI app (``/mlops``) that an Airflow 3 plugin mounts (``plugins/mlops_models.py``)
and links from the UI's navigation. Every route requires an Airflow login (the api-server's JWT
cookie or a bearer token) and the auth manager's permission to view plugins.

- ``GET /mlops/models`` — the page: per registered model, who holds ``champion`` /
  ``challenger`` / ``previous`` with their holdout metrics side by side, the ledger's decisions,
  promotions and rollbacks with reasons, a drift-history chart per model version (share of
  drifted features per scored partition) and links to the Evidently reports, the GE data docs,
  the MLflow runs and the serving endpoint, and a performance-history chart per model version
  (its metric on late labels per labels day against its holdout; red where the decay policy fired).
- ``GET /mlops/api/models`` — the same facts as JSON.
- ``GET /mlops/models/<name>/versions/<n>/card`` (and ``/mlops/api/...`` for its JSON) — the
  model card of any version, from its MLflow artifacts (:mod:`airflow_mlops_provider.ui.cards`).
- ``GET /mlops/reports/drift/<file>.html`` and ``/mlops/reports/data_docs/<path>`` — the reports
  under ``MLOPS_HOME/reports`` (only there; nothing is listed or written).

MLflow is read through :class:`~airflow_mlops_provider.hooks.mlflow.MlflowHook` (connection
``mlflow_default``, else the MLflow store under ``MLOPS_HOME``); MLflow UI links go to
``MLOPS_MLFLOW_UI_URL`` (``make ui`` sets it), else to the connection's http(s) host.
"""

from __future__ import annotations

import html
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

ALIASES = ("champion", "challenger", "previous")
LEDGER_EVENTS = ("decision", "promoted", "promotion_superseded", "rolled_back", "champion_rolled_back",
                 "external_change")
_REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.html$")


# -- facts ------------------------------------------------------------------------------------------
def mlflow_ui_url(tracking_uri: str | None) -> str | None:
    """Where MLflow's UI lives: ``MLOPS_MLFLOW_UI_URL``, else an http(s) tracking server."""
    configured = os.environ.get("MLOPS_MLFLOW_UI_URL")
    if configured:
        return configured.rstrip("/")
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        from airflow_mlops_provider.core.lineage import without_credentials

        # A link for a browser: no user, password or token in it.
        return without_credentials(tracking_uri).rstrip("/")
    return None


def _ms_to_iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _version_facts(client: Any, name: str, version: str) -> dict[str, Any]:
    mv = client.get_model_version(name, version)
    metrics: dict[str, float] = {}
    run_id = mv.run_id
    experiment_id = None
    if run_id:
        run = client.get_run(run_id)
        metrics = {k: float(v) for k, v in sorted(run.data.metrics.items())}
        experiment_id = run.info.experiment_id
    tags = dict(mv.tags or {})
    return {"version": str(mv.version), "run_id": run_id, "experiment_id": experiment_id, "metrics": metrics,
            "created": _ms_to_iso(mv.creation_timestamp), "decision": tags.get("mlops.decision"),
            "task_type": tags.get("mlops.task_type"), "data_version": tags.get("mlops.data.id")}


def _drift_history(client: Any, name: str, reports_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Per model version, the drift checks of its scored partitions, oldest first."""
    experiment = client.get_experiment_by_name(f"{name}-monitoring")
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], filter_string="", max_results=1000,
                              order_by=["attributes.start_time ASC"])
    history: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        tags = run.data.tags
        if "drift_share" not in run.data.metrics:
            continue
        version = tags.get("mlops.model_version", "?")
        report_name = tags.get("mlops.report", "")
        airflow_run = tags.get("airflow.run_id", "")
        local = reports_dir / "drift" / report_name if _REPORT_NAME.match(report_name) else None
        history.setdefault(str(version), []).append({
            "run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "airflow_run_id": airflow_run, "data_path": tags.get("mlops.data_path"),
            "partition": _partition_label(tags.get("mlops.data_path"), airflow_run),
            "drift_share": float(run.data.metrics["drift_share"]),
            "n_drifted": int(run.data.metrics.get("n_drifted", 0)), "rows": int(run.data.metrics.get("rows", 0)),
            "drifted": tags.get("mlops.drifted") == "True", "too_few_rows": tags.get("mlops.too_few_rows"),
            "when": _ms_to_iso(run.info.start_time),
            # The report file is on this host only when the scoring worker shares MLOPS_HOME with it;
            # otherwise the MLflow run holds it as an artifact (drift/<name>).
            "report": local.name if local is not None and local.is_file() else None,
        })
    return history


def _performance_history(client: Any, name: str) -> dict[str, list[dict[str, Any]]]:
    """Per model version, its checks on late labels (the decay policy's metrics), oldest labels day first."""
    experiment = client.get_experiment_by_name(f"{name}-monitoring")
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`mlops.check` = 'performance'",
                              max_results=1000)
    history: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        watched = [m for m in (tags.get("mlops.decay_metrics") or "").split(",") if f"perf.{m}" in metrics]
        if not watched:
            continue
        metric = watched[0]
        history.setdefault(str(tags.get("mlops.model_version", "?")), []).append({
            "run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "labels_day": tags.get("mlops.labels_day", "?"), "metric": metric,
            "live": float(metrics[f"perf.{metric}"]), "holdout": metrics.get(f"holdout.{metric}"),
            "degradation": metrics.get(f"decay.{metric}"), "rows": int(metrics.get("labelled_rows", 0)),
            "unmatched": int(metrics.get("labels.unmatched", 0)), "late": int(metrics.get("labels.late", 0)),
            "degraded": tags.get("mlops.degraded") == "True", "too_few_rows": tags.get("mlops.too_few_rows"),
            "reasons": tags.get("mlops.reasons", ""),
        })
    for version, points in history.items():
        points.sort(key=lambda p: p["labels_day"])
        # One axis per chart: the metric the latest check watched (a policy may change over time).
        history[version] = [p for p in points if p["metric"] == points[-1]["metric"]]
    return history


def gate_evidence(events: list[dict[str, Any]], *, limit: int = 5) -> list[dict[str, Any]]:
    """The promotion gate's figures, newest decision first: challenger and champion scored on the
    SAME holdout (the challenger's), as the ledger recorded them when the gate decided."""
    out = []
    for record in reversed(events):
        if record.get("event") != "decision":
            continue
        challenger = record.get("challenger_metrics") or {}
        champion = record.get("champion_metrics") or {}
        out.append({
            "challenger_version": str(record.get("challenger_version")),
            "champion_version": str(record["champion_version"]) if record.get("champion_version") else None,
            "verdict": record.get("verdict"), "reasons": list(record.get("reasons") or []),
            "holdout": {"of_version": str(record.get("challenger_version")), "rows": record.get("eval_rows"),
                        "data_version": record.get("data_version")},
            "metrics": sorted(set(challenger) | set(champion)),
            "challenger_metrics": challenger, "champion_metrics": champion,
            "recorded_at": record.get("recorded_at"), "dag_id": record.get("dag_id"), "run_id": record.get("run_id"),
        })
        if len(out) >= limit:
            break
    return out


RELEASE_CHECK_EVENTS = ("load_test", "quality_canary")


def release_checks(records: list[dict[str, Any]], model: str, *, limit: int = 10) -> list[dict[str, Any]]:
    """The deployment lanes' load tests and quality canaries of ``model``, newest first, as the
    ledger recorded them: verdict, figures, broken limits (``{"limit", "measured", "message"}``)."""
    out = []
    for r in reversed(records):
        if r.get("model") != model or r.get("event") not in RELEASE_CHECK_EVENTS:
            continue
        out.append({"event": r["event"], "version": str(r.get("challenger_version")), "target": r.get("target"),
                    "verdict": r.get("verdict"), "figures": dict(r.get("figures") or {}),
                    "broken_limits": list(r.get("broken_limits") or []), "recorded_at": r.get("recorded_at"),
                    "dag_id": r.get("dag_id"), "run_id": r.get("run_id")})
        if len(out) >= limit:
            break
    return out


# (figure, column heading) shown per check kind
_CHECK_FIGURES = {
    "load_test": (("requests", "requests"), ("concurrency", "concurrent"), ("throughput_rps", "requests/s"),
                  ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"), ("error_rate", "error rate")),
    "quality_canary": (("rows", "rows"), ("champion_version", "champion"), ("agreement", "class agreement"),
                       ("psi", "PSI"), ("ks", "KS"), ("mean_abs_diff", "mean abs diff")),
}


def release_checks_html(checks: list[dict[str, Any]]) -> str:
    """The "Load tests and quality canaries" section of a model (:func:`release_checks`)."""
    out = ["<h3>Load tests and quality canaries (newest first)</h3>"]
    if not checks:
        out.append("<p class='muted'>No deployment lane has load-tested or canary-judged this model yet.</p>")
        return "".join(out)
    for event, figures in _CHECK_FIGURES.items():
        rows = [c for c in checks if c["event"] == event]
        if not rows:
            continue
        head = "".join(f"<th>{_e(title)}</th>" for _, title in figures)
        out.append(f"<table class='release-checks' data-check='{_e(event)}'><tr><th>when</th><th>version</th>"
                   f"<th>target</th><th>verdict</th>{head}<th>errors by kind</th><th>broken limits</th></tr>"
                   if event == "load_test" else
                   f"<table class='release-checks' data-check='{_e(event)}'><tr><th>when</th><th>version</th>"
                   f"<th>target</th><th>verdict</th>{head}<th>broken limits</th></tr>")
        for c in rows:
            cells = "".join(f"<td class='num'>{_fmt(c['figures'].get(key))}</td>" for key, _ in figures)
            kinds = ""
            if event == "load_test":
                by_kind = c["figures"].get("errors_by_kind") or {}
                kinds = f"<td>{_e(', '.join(f'{k}: {n}' for k, n in sorted(by_kind.items())) or '-')}</td>"
            broken = "; ".join(str(b.get("message")) for b in c["broken_limits"]) or "-"
            verdict = "reject" if c["verdict"] == "failed" else "promote"
            out.append(f"<tr><td>{_e((c.get('recorded_at') or '')[:19].replace('T', ' '))}</td>"
                       f"<td>v{_e(c['version'])}</td><td>{_e(c['target'])}</td>"
                       f"<td class='{_verdict_class(verdict)}'>{_e(c['verdict'])}</td>{cells}{kinds}"
                       f"<td>{_e(broken)}</td></tr>")
        out.append("</table>")
    return "".join(out)


def _partition_label(data_path: str | None, airflow_run: str) -> str:
    if data_path:
        return Path(data_path.rstrip("/")).name.split(".")[0] or data_path
    return airflow_run or "?"


def _serving(name: str, unreachable: dict[str, str]) -> list[dict[str, Any]]:
    """What serves ``name`` on every registered deploy target (their ``serving()``), and
    ``{"target", "available": False, "reason"}`` for a target that cannot say now (no connection,
    no answer): asked once per page (``unreachable``), never failing the page."""
    from airflow_mlops_provider.deploy.base import serving_everywhere

    try:
        return serving_everywhere(name, unreachable=unreachable)
    except Exception as err:  # noqa: BLE001 - the registry itself unreadable only hides the section
        return [{"target": "*", "available": False, "reason": f"{type(err).__name__}: {err}"[:500]}]


def collect(client: Any, *, home: Any, tracking_uri: str | None, model: str | None = None) -> dict[str, Any]:
    """Everything the page shows, as JSON-safe data."""
    from airflow_mlops_provider.core import ledger
    from airflow_mlops_provider.ui.cards import card_versions
    from airflow_mlops_provider.ui.history_view import history_facts

    records = ledger.read(home.ledger_path) if home.ledger_path.exists() else []
    unreachable: dict[str, str] = {}  # deploy target -> why it cannot say what it serves
    models = []
    for registered in sorted(client.search_registered_models(max_results=1000), key=lambda m: m.name):
        if model and registered.name != model:
            continue
        aliases = {str(k): str(v) for k, v in (registered.aliases or {}).items()}
        holders = {alias: _version_facts(client, registered.name, aliases[alias])
                   for alias in ALIASES if alias in aliases}
        events = [r for r in records if r.get("model") == registered.name and r.get("event") in LEDGER_EVENTS]
        models.append({
            "gate": gate_evidence(events),
            "release_checks": release_checks(records, registered.name),
            "name": registered.name, "aliases": aliases, "holders": holders,
            "metric_names": sorted({m for h in holders.values() for m in h["metrics"]}),
            "ledger": list(reversed(events))[:100],
            "drift": _drift_history(client, registered.name, home.reports_dir),
            "performance": _performance_history(client, registered.name),
            "serving": _serving(registered.name, unreachable),
            "history": history_facts(records, registered.name),
            "cards": card_versions(client, registered.name),
        })
    docs_index = home.reports_dir / "data_docs" / "index.html"
    return {"models": models, "mlflow_ui": mlflow_ui_url(tracking_uri), "data_docs": docs_index.is_file(),
            "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


# -- page -------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)


def _bar_chart(bars: list[dict[str, Any]], *, css: str, title: str, ticks: list[tuple[float, str]],
               reference: tuple[float, str, str] | None = None, width: int = 560, height: int = 160,
               pad_l: int = 36) -> str:
    """An inline SVG bar chart. Each bar: ``fraction`` of the height (0..1), ``fired`` (red),
    ``attrs`` (data-* attributes), ``tooltip`` and ``label``; ``reference``: (fraction, css class,
    tooltip) of a dashed line."""
    pad_b, pad_t = 34, 10
    inner_w, inner_h = width - pad_l - 8, height - pad_b - pad_t
    n = max(len(bars), 1)
    bar = max(min(inner_w / n * 0.7, 48), 4)
    parts = [f'<svg class="{css}-chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{title}</title>']
    for tick, text in ticks:
        y = pad_t + inner_h * (1 - tick)
        parts.append(f'<line x1="{pad_l}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text class="tick" x="{pad_l - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" '
                     f'fill="currentColor">{text}</text>')
    if reference is not None:
        fraction, cls, tip = reference
        y = pad_t + inner_h * (1 - min(max(fraction, 0.0), 1.0))
        parts.append(f'<line class="{cls}" x1="{pad_l}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c00" '
                     f'stroke-dasharray="4 3"><title>{tip}</title></line>')
    for i, b in enumerate(bars):
        x = pad_l + inner_w / n * i + (inner_w / n - bar) / 2
        h = max(inner_h * min(max(b["fraction"], 0.0), 1.0), 1)
        attrs = " ".join(f'{k}="{v}"' for k, v in b["attrs"].items())
        parts.append(f'<rect class="{css}-bar" {attrs} x="{x:.1f}" y="{pad_t + inner_h - h:.1f}" width="{bar:.1f}" '
                     f'height="{h:.1f}" fill="{"#d9534f" if b["fired"] else "#5b8def"}"><title>{b["tooltip"]}</title>'
                     f'</rect><text x="{x + bar / 2:.1f}" y="{height - pad_b + 14}" font-size="10" '
                     f'text-anchor="middle" fill="currentColor">{b["label"]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def drift_chart(points: list[dict[str, Any]], *, threshold: float | None = None, width: int = 560,
                height: int = 160) -> str:
    """An inline SVG bar chart: share of drifted features per scored partition (red: drift fired)."""
    bars = []
    for point in points:
        share = min(max(point["drift_share"], 0.0), 1.0)
        label = _e(point["partition"])
        bars.append({"fraction": share, "fired": bool(point.get("drifted")), "label": label[-10:],
                     "attrs": {"data-partition": label, "data-share": f"{share:.4f}"},
                     "tooltip": f"{label}: {share:.0%} of features drifted"
                                f"{' (drift fired)' if point.get('drifted') else ''}"})
    reference = (threshold, "threshold", f"policy threshold {threshold:.0%}") if threshold is not None else None
    return _bar_chart(bars, css="drift", title="share of drifted features per scored partition",
                      ticks=[(t, f"{t:.0%}") for t in (0, 0.5, 1)], reference=reference, width=width, height=height)


def nice_ticks(high: float, *, target: int = 4) -> list[float]:
    """Axis ticks from 0 to a round top at or above ``high``, in 1/2/2.5/5 x 10^k steps
    (0.833 -> 0, 0.25, 0.5, 0.75, 1; 25000 -> 0, 1e4, 2e4, 3e4)."""
    import math

    if not high > 0 or not math.isfinite(high):
        return [0.0, 0.5, 1.0]
    raw = high / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    count = math.ceil(high / step - 1e-9)
    return [round(i * step, 12) for i in range(count + 1)]


def performance_chart(points: list[dict[str, Any]], *, width: int = 560, height: int = 160) -> str:
    """An inline SVG bar chart: the watched metric on late labels per labels day, the holdout's value
    as a dashed line (red bars: the decay policy fired)."""
    values = [p["live"] for p in points] + [p["holdout"] for p in points if p.get("holdout") is not None]
    ticks = nice_ticks(max(values, default=1.0))
    top = ticks[-1]
    metric = _e(points[0]["metric"]) if points else "metric"
    bars = []
    for point in points:
        label = _e(point["labels_day"])
        bars.append({"fraction": point["live"] / top, "fired": bool(point.get("degraded")), "label": label[-5:],
                     "attrs": {"data-day": label, "data-value": f"{point['live']:.4f}"},
                     "tooltip": f"{label}: {metric} {point['live']:.4g} on {point['rows']} labelled rows"
                                f"{' (decay fired)' if point.get('degraded') else ''}"})
    holdout = next((p["holdout"] for p in reversed(points) if p.get("holdout") is not None), None)
    reference = (holdout / top, "holdout", f"holdout {metric} {holdout:.4g}") if holdout is not None else None
    return _bar_chart(bars, css="performance", title=f"{metric} on late labels per labels day, against the holdout",
                      ticks=[(t / top, f"{t:g}") for t in ticks], reference=reference, width=width,
                      height=height, pad_l=44)


_STYLE = """
:root{color-scheme:light;--fg:#1a202c;--muted:#4a5568;--bg:#ffffff;--line:#e2e8f0;--head:#f7fafc;
--link:#2b6cb0;--ok:#1a7f37;--bad:#c53030;--grid:#e2e8f0}
:root.dark{color-scheme:dark;--fg:#e2e8f0;--muted:#a0aec0;--bg:#111111;--line:#2d3748;--head:#1a202c;
--link:#90cdf4;--ok:#68d391;--bad:#fc8181;--grid:#2d3748}
@media (prefers-color-scheme:dark){:root:not(.light){color-scheme:dark;--fg:#e2e8f0;--muted:#a0aec0;
--bg:#111111;--line:#2d3748;--head:#1a202c;--link:#90cdf4;--ok:#68d391;--bad:#fc8181;--grid:#2d3748}}
body{font-family:Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 20px;color:var(--fg);
background:var(--bg);font-size:14px;line-height:1.45}
a{color:var(--link);text-decoration:none} a:hover{text-decoration:underline}
h1{font-size:20px;font-weight:600} h2{font-size:17px;font-weight:600;margin-top:28px;
border-bottom:1px solid var(--line);padding-bottom:4px} h3{font-size:14px;font-weight:600;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
td,th{border:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--head);font-weight:600} td.num{font-variant-numeric:tabular-nums;text-align:right}
caption{caption-side:top;text-align:left;color:var(--muted);padding:2px 0 4px}
.promote,.promoted,.better{color:var(--ok);font-weight:600}
.reject,.rejected,.rolled_back,.worse{color:var(--bad);font-weight:600}
.muted{color:var(--muted)} .links a{margin-right:12px} line.grid{stroke:var(--grid)}
"""

_THEME_SCRIPT = """<script>
(function(){  // follow the Airflow UI's light/dark choice (next-themes keeps it in localStorage "theme")
  function apply(){var t=null;try{t=localStorage.getItem("theme")}catch(e){}
    var c=document.documentElement.classList;c.remove("light","dark");if(t==="light"||t==="dark")c.add(t);}
  apply();window.addEventListener("storage",apply);
})();
</script>"""


def _link(href: str | None, text: str, *, top: bool = False) -> str:
    """A link: MLflow pages open in a new tab; Airflow pages (``top``) replace the whole UI, not the frame."""
    if not href:
        return ""
    target = "_top" if top else "_blank"
    return f'<a href="{_e(href)}" target="{target}" rel="noopener">{_e(text)}</a>'


def _verdict_class(verdict: Any) -> str:
    text = str(verdict or "")
    return "reject" if text.startswith("reject") else ("promote" if text.startswith("promot") else _e(text))


def _mlflow_run(ui: str | None, experiment_id: Any, run_id: Any) -> str:
    if not run_id:
        return ""
    if not ui or not experiment_id:
        return f"<code>{_e(run_id)}</code>"
    return _link(f"{ui}/#/experiments/{experiment_id}/runs/{run_id}", str(run_id))


def _airflow_run(airflow: str, dag_id: Any, run_id: Any) -> str:
    if not run_id:
        return ""
    if not dag_id:
        return _e(run_id)
    return _link(f"{airflow}/dags/{quote(str(dag_id), safe='')}/runs/{quote(str(run_id), safe='')}", str(run_id),
                 top=True)


def _gate_table(gate: dict[str, Any], airflow: str) -> str:
    challenger, champion = gate["challenger_version"], gate["champion_version"]
    holdout = gate["holdout"]
    data = f", data version {_e(holdout['data_version'])}" if holdout.get("data_version") else ""
    rows = f"{holdout['rows']} rows" if holdout.get("rows") is not None else "rows unknown"
    out = [f"<table class='gate' data-challenger='{_e(challenger)}' data-champion='{_e(champion or '')}' "
           f"data-holdout='{_e(holdout['of_version'])}'><caption>"
           f"<span class='{_verdict_class(gate['verdict'])}'>{_e(gate['verdict'])}</span>: v{_e(challenger)} "
           + (f"against champion v{_e(champion)}" if champion else "with no champion (floors only)")
           + f", both scored on <b>v{_e(holdout['of_version'])}'s holdout</b> ({rows}{data}); "
           f"{_e((gate.get('recorded_at') or '')[:16].replace('T', ' '))} "
           f"{_airflow_run(airflow, gate.get('dag_id'), gate.get('run_id'))}</caption>"
           f"<tr><th>metric (v{_e(holdout['of_version'])}'s holdout)</th><th>challenger v{_e(challenger)}</th>"]
    if champion:
        out.append(f"<th>champion v{_e(champion)}</th><th>challenger − champion</th>")
    out.append("</tr>")
    for metric in gate["metrics"]:
        mine, theirs = gate["challenger_metrics"].get(metric), gate["champion_metrics"].get(metric)
        out.append(f"<tr><th>{_e(metric)}</th><td class='num'>{_fmt(mine)}</td>")
        if champion:
            delta = mine - theirs if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) else None
            out.append(f"<td class='num'>{_fmt(theirs)}</td>"
                       f"<td class='num'>{'' if delta is None else f'{delta:+.4g}'}</td>")
        out.append("</tr>")
    if gate["reasons"]:
        span = 4 if champion else 2
        out.append(f"<tr><th>reasons</th><td colspan='{span - 1}'>{_e('; '.join(map(str, gate['reasons'])))}</td></tr>")
    out.append("</table>")
    return "".join(out)


def render(facts: dict[str, Any], *, base: str = "/mlops", airflow: str = "") -> str:
    """The page. ``base``: where the plugin is mounted; ``airflow``: the Airflow UI's base URL
    (empty: same origin), for links to DAG runs."""
    from airflow_mlops_provider.ui.approvals import approvals_section
    from airflow_mlops_provider.ui.cards import cards_section
    from airflow_mlops_provider.ui.history_view import history_section

    ui = facts.get("mlflow_ui")
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>MLOps models</title>",
           f"<meta name='color-scheme' content='light dark'>{_THEME_SCRIPT}<style>{_STYLE}</style></head>"
           "<body><h1>Models</h1>",
           f"<p class='muted'>Read-only. Registry from MLflow, decisions from the audit ledger; "
           f"generated {facts['generated']}.</p>"]
    top = [_link(f"{base}/reports/data_docs/index.html", "Great Expectations data docs") if facts.get("data_docs")
           else "", _link(ui, "MLflow UI")]
    out.append(f"<p class='links'>{''.join(top)}</p>")
    if not facts["models"]:
        out.append("<p>No registered models yet: run a retraining DAG (or <code>make demo</code>).</p>")
    for model in facts["models"]:
        name = model["name"]
        out.append(f"<section class='model' data-model='{_e(name)}'><h2>{_e(name)}</h2>")
        holders = model["holders"]
        alias_line = ", ".join(f"@{_e(a)} → v{_e(v)}" for a, v in sorted(model["aliases"].items()))
        out.append(f"<p>Aliases: {alias_line or 'none'}</p>")
        gates = model.get("gate") or []
        if gates:
            out.append("<h3>The promotion gate's evidence (challenger and champion on the same holdout)</h3>")
            out.append("".join(_gate_table(g, airflow) for g in gates[:1]))
            if len(gates) > 1:
                out.append(f"<details><summary>{len(gates) - 1} earlier decision(s)</summary>"
                           + "".join(_gate_table(g, airflow) for g in gates[1:]) + "</details>")
        if holders:
            out.append("<h3>Champion, challenger and previous</h3><table class='holders'><caption>Each version on "
                       "<b>its own</b> holdout (from its training run): figures from different holdouts are not "
                       "comparable; the gate's evidence above is.</caption><tr><th>metric</th>")
            for alias, facts_v in holders.items():
                mv_link = _link(f"{ui}/#/models/{quote(name)}/versions/{facts_v['version']}", "version") if ui else ""
                out.append(f"<th data-alias='{alias}'>@{alias}: v{_e(facts_v['version'])} "
                           f"<span class='muted'>(v{_e(facts_v['version'])}'s holdout)</span> "
                           f"<span class='links'>{mv_link}</span></th>")
            out.append("</tr>")
            for metric in model["metric_names"]:
                cells = "".join(f"<td class='num'>{_fmt(h['metrics'].get(metric))}</td>" for h in holders.values())
                out.append(f"<tr><th>{_e(metric)}</th>{cells}</tr>")
            for label, key in (("registered", "created"), ("data version", "data_version")):
                cells = "".join(f"<td>{_e(h.get(key))}</td>" for h in holders.values())
                out.append(f"<tr><th>{label}</th>{cells}</tr>")
            cells = "".join(f"<td class='{_verdict_class(h.get('decision'))}'>{_e(h.get('decision'))}</td>"
                            for h in holders.values())
            out.append(f"<tr><th>decision</th>{cells}</tr>")
            cells = "".join(f"<td>{_mlflow_run(ui, h.get('experiment_id'), h.get('run_id'))}</td>"
                            for h in holders.values())
            out.append(f"<tr><th>MLflow run</th>{cells}</tr></table>")
        out.append(cards_section(model, base))
        if model["serving"]:
            out.append("<h3>Serving</h3><ul>")
            for s in model["serving"]:
                if s.get("available") is False:
                    out.append(f"<li class='muted' data-target='{_e(s['target'])}'>{_e(s['target'])}: unavailable "
                               f"({_e(s.get('reason'))})</li>")
                    continue
                share = f", {_fmt(s['traffic_percent'])}% of traffic" if s.get("traffic_percent") is not None else ""
                where = _link(s["url"], s["url"]) if s.get("url") else _e(s.get("resource"))
                out.append(f"<li data-target='{_e(s['target'])}'>{_e(s['target'])} {_e(s['role'])}: "
                           f"v{_e(s['version'])} at {where}{share}</li>")
            out.append("</ul>")
        out.append("<h3>Drift history (share of drifted features per scored partition)</h3>")
        if not model["drift"]:
            out.append("<p class='muted'>No drift checks recorded yet.</p>")
        for version, points in sorted(model["drift"].items(), key=lambda kv: kv[0]):
            out.append(f"<div class='drift' data-version='{_e(version)}'><p>v{_e(version)}: "
                       f"{len(points)} partition(s)</p>{drift_chart(points)}<table><tr><th>partition</th>"
                       "<th>drift share</th><th>drifted features</th><th>rows</th><th>fired</th><th>links</th></tr>")
            for p in points:
                report = _link(f"{base}/reports/drift/{quote(p['report'])}", "Evidently report") if p["report"] \
                    else ""
                run = _link(f"{ui}/#/experiments/{p['experiment_id']}/runs/{p['run_id']}", "MLflow run") if ui \
                    else ""
                out.append(f"<tr><td>{_e(p['partition'])}</td><td class='num'>{p['drift_share']:.0%}</td>"
                           f"<td class='num'>{p['n_drifted']}</td><td class='num'>{p['rows']}</td>"
                           f"<td class='{'reject' if p['drifted'] else ''}'>{'yes' if p['drifted'] else 'no'}</td>"
                           f"<td class='links'>{report}{run}</td></tr>")
            out.append("</table></div>")
        out.append("<h3>Performance on late labels (per labels day, against the version's holdout)</h3>")
        if not model.get("performance"):
            out.append("<p class='muted'>No labels checked yet (the performance-monitoring DAG).</p>")
        for version, points in sorted((model.get("performance") or {}).items(), key=lambda kv: kv[0]):
            out.append(f"<div class='performance' data-version='{_e(version)}'><p>v{_e(version)}: "
                       f"{len(points)} labels day(s)</p>{performance_chart(points)}<table><tr><th>labels day</th>"
                       "<th>metric</th><th>live</th><th>holdout</th><th>degradation</th><th>labelled rows</th>"
                       "<th>unmatched / late labels</th><th>fired</th><th>links</th></tr>")
            for p in points:
                run = _link(f"{ui}/#/experiments/{p['experiment_id']}/runs/{p['run_id']}", "MLflow run") if ui \
                    else ""
                fired = "yes" if p["degraded"] else ("not decided" if p["too_few_rows"] else "no")
                out.append(f"<tr><td>{_e(p['labels_day'])}</td><td>{_e(p['metric'])}</td>"
                           f"<td class='num'>{_fmt(p['live'])}</td><td class='num'>{_fmt(p['holdout'])}</td>"
                           f"<td class='num'>{_fmt(p['degradation'])}</td><td class='num'>{p['rows']}</td>"
                           f"<td>{p['unmatched']} / {p['late']}</td>"
                           f"<td title='{_e(p['reasons'])}' class='{'reject' if p['degraded'] else ''}'>{fired}</td>"
                           f"<td class='links'>{run}</td></tr>")
            out.append("</table></div>")
        out.append(release_checks_html(model.get("release_checks") or []))
        out.append("<h3>Decisions, promotions and rollbacks (newest first)</h3>")
        if not model["ledger"]:
            out.append("<p class='muted'>The ledger holds nothing for this model yet.</p>")
        else:
            out.append("<table class='ledger'><tr><th>when</th><th>event</th><th>version</th><th>against</th>"
                       "<th>reasons</th><th>Airflow run</th></tr>")
            for r in model["ledger"]:
                kind = r.get("verdict") if r["event"] == "decision" else r["event"]
                reasons = r.get("reasons") or r.get("failed_tasks") or []
                against = r.get("champion_version") or r.get("previous_champion") or r.get("expected_champion")
                out.append(f"<tr><td>{_e((r.get('recorded_at') or '')[:19].replace('T', ' '))}</td>"
                           f"<td class='{_verdict_class(kind)}'>{_e(r['event'])}"
                           f"{': ' + _e(kind) if r['event'] == 'decision' else ''}</td>"
                           f"<td>v{_e(r.get('challenger_version') or r.get('to_version'))}</td>"
                           f"<td>{'v' + _e(against) if against else '—'}</td>"
                           f"<td>{_e('; '.join(map(str, reasons)))}</td>"
                           f"<td>{_airflow_run(airflow, r.get('dag_id'), r.get('run_id'))}</td></tr>")
            out.append("</table>")
        out.append(approvals_section(model, base=base))
        out.append(history_section(model, base=base))
        out.append("</section>")
    out.append("</body></html>")
    return "".join(out)


# -- app --------------------------------------------------------------------------------------------
def warm_up() -> None:
    """Pay the first request's costs ahead of it: import MLflow (seconds on a small machine) and open
    the registry store once. Started in a background thread when the app is built; failures only log."""
    import logging

    try:
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        MlflowHook().client.search_registered_models(max_results=1)
    except Exception:  # the first request reports the same problem properly
        logging.getLogger(__name__).warning("Models view warm-up failed", exc_info=True)


_LOGIN_DETAILS = ("Not authenticated", "Token Expired", "Invalid JWT token")


def login_redirect(request: Any, status_code: int, detail: Any) -> Any:
    """A browser (no ``Authorization`` header, not the JSON API) without a valid login goes to the
    auth manager's login page and comes back here after it; API clients keep the 401/403."""
    from fastapi.responses import RedirectResponse

    if status_code not in (401, 403) or detail not in _LOGIN_DETAILS:
        return None  # logged in but not allowed: a redirect to the login page would loop
    if request.headers.get("authorization") or "/api/" in request.url.path:
        return None
    from airflow.api_fastapi.app import get_auth_manager

    return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=307)


def create_app() -> Any:
    """The FastAPI sub-application the plugin mounts at ``/mlops``."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user, requires_access_view
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

    from airflow_mlops_provider.links.base import REPORTS_URL_PREFIX, api_base_path

    # Every route: a logged-in Airflow user allowed to view plugins (cookie or bearer token).
    guard = [Depends(requires_access_view(AccessView.PLUGINS))]
    app = FastAPI(title="airflow-mlops-provider Models view", dependencies=guard, docs_url=None,
                  redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def to_login(request: Request, exc: HTTPException) -> Any:
        return login_redirect(request, exc.status_code, exc.detail) or await http_exception_handler(request, exc)

    def facts(model: str | None) -> dict[str, Any]:
        from airflow_mlops_provider.core.settings import mlops_home
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        hook = MlflowHook()
        try:
            return collect(hook.client, home=mlops_home(), tracking_uri=hook.tracking_uri, model=model)
        except Exception as err:
            # MLflow down or refusing: say so (server and connection, never credentials), not a bare 500.
            raise HTTPException(status_code=502,
                                detail=str(hook.unavailable(err, "reading the model registry"))) from err

    @app.get("/models", response_class=HTMLResponse)
    def models_page(model: str | None = None, rollback_run: str | None = None, answered: str | None = None,
                    answered_run: str | None = None, answered_task: str | None = None,
                    user=Depends(get_user)) -> HTMLResponse:  # noqa: B008 - FastAPI's dependency
        from airflow_mlops_provider.ui.history_view import page_actions

        given = {"model": model, "answer": answered, "dag_run_id": answered_run, "task_id": answered_task} \
            if model and answered else None
        return HTMLResponse(render(page_actions(facts(model), user, rollback_run, given), airflow=api_base_path()))

    @app.get("/api/models")
    def models_json(model: str | None = None) -> JSONResponse:
        return JSONResponse(facts(model))

    def _report(root: Path, relative: str) -> FileResponse:
        from airflow_mlops_provider.links.base import safe_relative

        resolved_root = root.resolve()
        target = (root / relative).resolve() if safe_relative(relative) else None
        if target is None or not target.is_relative_to(resolved_root) or not target.is_file():
            raise HTTPException(status_code=404, detail="no such report")
        return FileResponse(target)

    from airflow_mlops_provider.ui import history_view

    history_view.install(app, facts)  # /api/history, /api/compare, the rollback routes
    from airflow_mlops_provider.ui import approvals

    approvals.install(app)  # the waiting approvals: list, approve, reject

    reports = REPORTS_URL_PREFIX.removeprefix("/mlops")

    @app.get(reports + "/drift/{name}")
    def drift_report(name: str) -> FileResponse:
        from airflow_mlops_provider.core.settings import mlops_home

        if not _REPORT_NAME.match(name):
            raise HTTPException(status_code=404, detail="no such report")
        return _report(mlops_home().reports_dir / "drift", name)

    @app.get(reports + "/data_docs/{path:path}")
    def data_docs(path: str) -> FileResponse:
        from airflow_mlops_provider.core.settings import mlops_home

        return _report(mlops_home().reports_dir / "data_docs", path)

    from airflow_mlops_provider.ui.cards import register_card_routes

    def mlflow_client() -> Any:
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook().client

    register_card_routes(app, mlflow_client)
    return app
