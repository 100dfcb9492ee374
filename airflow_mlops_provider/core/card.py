"""The model card of a model version: one JSON document and one self-contained HTML page.

Generated at the promotion gate (``MlflowCompareChallengerOperator``) for every challenger, and
logged as artifacts of the challenger's run (``model_card/model_card.json``,
``model_card/model_card.html``); the version's tag ``mlops.card`` and its description point to
them, so a superseded version keeps its card. Sections:

- **identity**: name, version, task type, flavor, owner, intended use, out-of-scope uses and
  limitations (declared in ``ModelConfig``);
- **training data**: DVC path, rev/commit and md5, the validation result, row counts, label balance;
- **evaluation**: challenger *and* champion on the same holdout rows, every metric with its
  bootstrap interval, the paired interval of the gain;
- **slices**, **fairness** (group metrics with intervals), **explanations** (from the gate
  evidence key ``explanations`` when computed), **plots**, the gate's **decision** and reasons,
  and the **deployment history** of the model so far (ledger).

:func:`gate_evidence` computes what the gate and the card share (intervals, gains, slices, plots)
once. Pure: no Airflow; numpy, pandas and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

CARD_SCHEMA = "airflow-mlops-provider/model-card/v1"
CARD_DIR = "model_card"
CARD_JSON = f"{CARD_DIR}/model_card.json"
CARD_HTML = f"{CARD_DIR}/model_card.html"
#: Tag on the model version naming the card's HTML artifact (``runs:/<run_id>/model_card/model_card.html``).
CARD_TAG = "mlops.card"
#: Ledger fields kept in the card's history section.
_HISTORY_FIELDS = ("recorded_at", "event", "challenger_version", "champion_version", "verdict",
                   "previous_champion", "dag_id", "run_id", "deploy_target", "reasons")


def gate_evidence(task_type: Any, holdout: Any, target: str, raw_by_side: Mapping[str, Any],
                  classes: Mapping[str, Sequence[Any] | None], *, bootstrap_spec: Any,
                  slices: Sequence[Mapping[str, Any]] = (), slice_metrics: Sequence[str] = (),
                  sensitive_features: Sequence[str] = (), directions: Mapping[str, str | None] | None = None,
                  plots: bool = True) -> dict[str, Any]:
    """Intervals, paired gains, slice report, fairness intervals and plots of challenger (and champion).

    ``raw_by_side``: each model's raw pyfunc output on ``holdout`` (``champion`` may be None);
    ``classes``: each side's class labels (their order may differ between versions).
    """
    from airflow_mlops_provider.core.bootstrap import bootstrap, group_codes
    from airflow_mlops_provider.core.slices import slice_report

    sides = {k: v for k, v in raw_by_side.items() if v is not None}
    y = holdout[target]
    codes = group_codes(holdout[list(sensitive_features)])[0] if sensitive_features else None
    evidence: dict[str, Any] = {
        "bootstrap": bootstrap(task_type, y, sides, classes, bootstrap_spec, directions=directions, codes=codes)}
    if slices:
        evidence["slices"] = slice_report(task_type, holdout, y, sides, classes, slices,
                                          bootstrap_spec=bootstrap_spec, interval_metrics=slice_metrics)
    if plots:
        from airflow_mlops_provider.core.plots import evaluation_plots

        evidence["plots"] = evaluation_plots(task_type, y, sides, classes)
    return evidence


def label_balance(values: Any, categorical: bool) -> dict[str, Any]:
    """Class shares (classifiers) or a five-number summary (regression) of a label column."""
    if categorical:
        counts = values.value_counts()
        total = int(counts.sum())
        return {str(k): {"rows": int(v), "share": float(v) / total if total else None} for k, v in counts.items()}
    described = values.astype(float).describe()
    return {k: float(described[k]) for k in ("count", "mean", "std", "min", "50%", "max") if k in described}


def build_card(*, identity: Mapping[str, Any], training_data: Mapping[str, Any], decision: Mapping[str, Any],
               metrics: Mapping[str, Mapping[str, float] | None], evidence: Mapping[str, Any],
               fairness: Mapping[str, Any] | None, history: Sequence[Mapping[str, Any]],
               policy: Mapping[str, Any], champion_version: str | None, eval_rows: int) -> dict[str, Any]:
    """The card as a JSON-safe dict (see the module docstring for its sections)."""
    boot = evidence.get("bootstrap") or {}
    intervals = boot.get("intervals") or {}
    evaluation: dict[str, Any] = {"holdout_rows": eval_rows, "champion_version": champion_version,
                                  "bootstrap": boot.get("spec"), "metrics": {}, "gains": boot.get("gains") or {}}
    for side, values in metrics.items():
        if values is None:
            continue
        evaluation["metrics"][side] = {
            k: {"value": _num(v), **{b: (intervals.get(side) or {}).get(k, {}).get(b) for b in ("low", "high")}}
            for k, v in values.items() if not k.startswith("fairness.")}
    fair = None
    if fairness:
        fair = {"sensitive_features": list(fairness.get("sensitive_features") or []), "sides": {}}
        for side in ("challenger", "champion"):
            if side in fairness:
                fair["sides"][side] = {"version": fairness[side].get("version"),
                                       "metrics": (boot.get("groups") or {}).get(side)
                                       or {k: {"value": v} for k, v in fairness[side].get("metrics", {}).items()},
                                       "groups": fairness[side].get("groups"), "sizes": fairness[side].get("sizes")}
    card = {
        "schema": CARD_SCHEMA,
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "identity": dict(identity),
        "training_data": dict(training_data),
        "evaluation": evaluation,
        "slices": list(evidence.get("slices") or []),
        "fairness": fair,
        "explanations": evidence.get("explanations"),
        "plots": dict(evidence.get("plots") or {}),
        "decision": {"verdict": decision.get("verdict"), "reasons": list(decision.get("reasons") or []),
                     "checks": list(decision.get("checks") or []), "policy": dict(policy)},
        "history": [{k: r[k] for k in _HISTORY_FIELDS if k in r} for r in history],
    }
    return json.loads(json.dumps(card, default=_json_default, allow_nan=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return _num(value.item()) if isinstance(value.item(), float) else value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _num(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:2px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f5f5f5}.num{text-align:right;font-variant-numeric:tabular-nums}
.ci{color:#666;font-size:12px}.promote{color:#1a7f37;font-weight:600}.rejected{color:#c62828;font-weight:600}
.fail{background:#fdecea}.muted{color:#777}.plots img{margin:4px;border:1px solid #eee}dt{font-weight:600}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _f(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)


def _ci(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "–"
    text = _f(entry.get("value"))
    if entry.get("low") is not None:
        text += f' <span class="ci">[{_f(entry["low"])}, {_f(entry["high"])}]</span>'
    return text


def _list(items: Sequence[Any] | None) -> str:
    if not items:
        return '<span class="muted">not declared</span>'
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def render_html(card: Mapping[str, Any]) -> str:
    """A self-contained HTML page of the card (inline CSS, plots as data URIs, no script)."""
    ident = card.get("identity") or {}
    title = f"Model card: {ident.get('name')} v{ident.get('version')}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
             f"<p class='muted'>Generated {_e(card.get('generated_at'))} at the promotion gate · {_e(card.get('schema'))}</p>"]

    parts.append("<h2>Identity</h2><table>")
    for key in ("name", "version", "task_type", "flavor", "owner", "run_id", "source", "classes"):
        value = ident.get(key)
        parts.append(f"<tr><th>{_e(key.replace('_', ' '))}</th><td>"
                     f"{_e(value) if value not in (None, '') else '<span class=muted>not declared</span>'}</td></tr>")
    parts.append("</table><dl>")
    parts.append(f"<dt>Intended use</dt><dd>{_e(ident.get('intended_use')) or '<span class=muted>not declared</span>'}</dd>")
    parts.append(f"<dt>Out-of-scope uses</dt><dd>{_list(ident.get('out_of_scope_uses'))}</dd>")
    parts.append(f"<dt>Limitations</dt><dd>{_list(ident.get('limitations'))}</dd></dl>")

    data = card.get("training_data") or {}
    parts.append("<h2>Training data</h2><table>")
    for key, value in data.items():
        if key == "label_balance":
            continue
        parts.append(f"<tr><th>{_e(key.replace('_', ' '))}</th><td>{_e(json.dumps(value) if isinstance(value, (dict, list)) else value)}</td></tr>")
    parts.append("</table>")
    balance = data.get("label_balance") or {}
    if balance:
        parts.append("<p>Label balance (holdout):</p><table><tr><th>label</th><th>rows / value</th><th>share</th></tr>")
        for k, v in balance.items():
            if isinstance(v, dict):
                parts.append(f"<tr><td>{_e(k)}</td><td class=num>{_f(v.get('rows'))}</td><td class=num>{_f(v.get('share'))}</td></tr>")
            else:
                parts.append(f"<tr><td>{_e(k)}</td><td class=num>{_f(v)}</td><td></td></tr>")
        parts.append("</table>")

    ev = card.get("evaluation") or {}
    spec = ev.get("bootstrap") or {}
    parts.append("<h2>Holdout evaluation</h2>")
    parts.append(f"<p>{_e(ev.get('holdout_rows'))} holdout rows; champion: "
                 f"{'v' + _e(ev['champion_version']) if ev.get('champion_version') else 'none'}. "
                 f"Intervals: {_e(round(100 * spec.get('confidence', 0.95)))}% percentile bootstrap, "
                 f"{_e(spec.get('resamples'))} resamples, seed {_e(spec.get('seed'))}; both models on the same "
                 "resampled rows (the gain's interval is a paired bootstrap).</p>")
    metrics = ev.get("metrics") or {}
    names = sorted({k for side in metrics.values() for k in side})
    gains = ev.get("gains") or {}
    parts.append("<table><tr><th>metric</th><th>challenger</th><th>champion</th><th>gain (positive: better)</th>"
                 "<th>significant</th></tr>")
    for name in names:
        gain = gains.get(name)
        parts.append(f"<tr><td>{_e(name)}</td><td class=num>{_ci((metrics.get('challenger') or {}).get(name))}</td>"
                     f"<td class=num>{_ci((metrics.get('champion') or {}).get(name))}</td>"
                     f"<td class=num>{_ci(gain)}</td><td>{'yes' if gain and gain.get('significant') else ('no' if gain else '–')}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Slices</h2>")
    slices = card.get("slices") or []
    if not slices:
        parts.append("<p class=muted>No slices declared (ModelConfig.slices).</p>")
    else:
        judged = {(c.get("slice"), c.get("metric")): c for c in (card.get("decision") or {}).get("checks") or []
                  if "slice" in c}
        parts.append("<table><tr><th>slice</th><th>rows</th><th>metric</th><th>challenger</th><th>champion</th>"
                     "<th>gate</th></tr>")
        for item in slices:
            side_metrics = item.get("metrics") or {}
            shown = sorted({k for m in side_metrics.values() for k in m})
            ints = item.get("intervals") or {}
            for k in shown:
                check = judged.get((item["slice"], k))
                verdict = "" if check is None else ("not judged: " + _e(check.get("note")) if not check.get("judged")
                                                    else ("pass" if check.get("passed") else "FAIL"))
                cls = " class=fail" if check is not None and not check.get("passed") else ""
                cells = []
                for side in ("challenger", "champion"):
                    value = (side_metrics.get(side) or {}).get(k)
                    entry = (ints.get(side) or {}).get(k) or {"value": value}
                    cells.append(f"<td class=num>{_ci(entry) if value is not None else '–'}</td>")
                parts.append(f"<tr{cls}><td>{_e(item['slice'])}</td><td class=num>{_e(item.get('rows'))}</td>"
                             f"<td>{_e(k)}</td>{''.join(cells)}<td>{verdict}</td></tr>")
        parts.append("</table>")

    parts.append("<h2>Fairness</h2>")
    fair = card.get("fairness")
    if not fair:
        parts.append("<p class=muted>No sensitive features declared (ModelConfig.sensitive_features).</p>")
    else:
        parts.append(f"<p>Grouped by {_e(', '.join(fair.get('sensitive_features') or []))}.</p>")
        sides = fair.get("sides") or {}
        names = sorted({k for s in sides.values() for k in (s.get("metrics") or {})})
        parts.append("<table><tr><th>group metric</th><th>challenger</th><th>champion</th></tr>")
        for name in names:
            parts.append(f"<tr><td>{_e(name)}</td>" + "".join(
                f"<td class=num>{_ci(((sides.get(s) or {}).get('metrics') or {}).get(name))}</td>"
                for s in ("challenger", "champion")) + "</tr>")
        parts.append("</table>")
        mine = (sides.get("challenger") or {}).get("groups") or {}
        for metric, groups in mine.items():
            parts.append(f"<p>{_e(metric)} per group (challenger): " + ", ".join(
                f"{_e(g)}={_f(v)}" for g, v in groups.items()) + "</p>")

    parts.append("<h2>Explanations</h2>")
    expl = card.get("explanations")
    if not expl:
        parts.append("<p class=muted>not computed</p>")
    else:
        parts.append(f"<p>Method: {_e(expl.get('method'))}, on {_e(expl.get('rows'))} rows. Global attributions "
                     "(mean |attribution|):</p><table><tr><th>feature</th><th>mean |attribution|</th></tr>")
        for name, value in sorted((expl.get("features") or {}).items(), key=lambda kv: -abs(kv[1] or 0)):
            parts.append(f"<tr><td>{_e(name)}</td><td class=num>{_f(value)}</td></tr>")
        parts.append("</table>")
        if expl.get("shift"):
            parts.append(f"<p>Shift against the champion: <code>{_e(json.dumps(expl['shift'], default=str))}</code></p>")

    parts.append("<h2>Evaluation plots</h2><div class=plots>")
    plots = card.get("plots") or {}
    if not plots:
        parts.append("<p class=muted>none</p>")
    for name, uri in plots.items():
        parts.append(f"<img alt='{_e(name)}' title='{_e(name)}' src='{_e(uri)}'>")
    parts.append("</div>")

    dec = card.get("decision") or {}
    verdict = dec.get("verdict")
    parts.append(f"<h2>Gate decision</h2><p class='{_e(verdict)}'>{_e(str(verdict).upper())}</p><ul>")
    parts.extend(f"<li>{_e(r)}</li>" for r in dec.get("reasons") or [])
    parts.append("</ul>")
    parts.append(f"<details><summary>Policy</summary><pre>{_e(json.dumps(dec.get('policy'), indent=1))}</pre></details>")

    parts.append("<h2>Deployment history so far</h2>")
    history = card.get("history") or []
    if not history:
        parts.append("<p class=muted>No ledger entries yet.</p>")
    else:
        parts.append("<table><tr><th>recorded</th><th>event</th><th>version</th><th>against / previous</th>"
                     "<th>verdict</th><th>run</th></tr>")
        for r in history:
            parts.append(f"<tr><td>{_e(r.get('recorded_at'))}</td><td>{_e(r.get('event'))}</td>"
                         f"<td>{_e(r.get('challenger_version'))}</td>"
                         f"<td>{_e(r.get('champion_version') or r.get('previous_champion'))}</td>"
                         f"<td>{_e(r.get('verdict'))}</td><td>{_e(r.get('dag_id'))} / {_e(r.get('run_id'))}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
