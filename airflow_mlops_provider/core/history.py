"""What was live when, and why: alias and deploy-target history from the audit ledger and MLflow.

One implementation behind the Models view's JSON routes, its timeline, and ``airflow-mlops history``:

- :func:`timeline` — the moves of one alias (``champion``, ``previous``, ...) or one deploy target
  (``target="local"``), oldest first, each with the ledger record that caused it;
- :func:`live_at` — which version an alias or a target named at time ``T``, since when, and why
  (the move, the gate's decision behind it, who asked);
- :func:`compare` — two versions side by side (their facts from MLflow, the gate decisions that
  compared them, when each was live);
- :func:`reconcile` — MLflow's aliases against what the ledger says they should be: the
  ``external_change`` records to append for moves made outside the pipeline (MLflow UI, a client).

Ledger records that move things (``model`` names the registered model):

=======================  ======================================================================
``promoted``             ``@champion`` → ``challenger_version``; ``@previous`` → ``previous_champion``;
                         the lane's deploy target (``deploy_target``) serves it
``champion_rolled_back`` ``@champion`` → ``to_version``, ``@previous`` → ``from_version``; the
                         ``deploy_target`` (if any) serves it again; ``requested_by`` says who
``external_change``      ``alias`` → ``to_version`` (None: deleted), seen by :func:`reconcile`
``decision``             ``@challenger`` → ``challenger_version`` (registered just before)
=======================  ======================================================================

Times are ISO-8601; a time without a zone is UTC; a bare date is 00:00 UTC that day. MLflow keeps
no author and no time for an alias move (its alias table holds name, alias and version only), so
an external change is dated by when it was seen, bounded below by the last move the ledger knew.

Pure: no Airflow, no MLflow import; callers pass ledger records and MLflow facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from typing import Any

from airflow_mlops_provider.exceptions import MlopsProviderError

CHAMPION = "champion"
#: Aliases the pipeline owns: every move of them is in the ledger, so any other move is external.
LEDGER_ALIASES = ("champion", "previous")
MOVE_EVENTS = ("promoted", "champion_rolled_back", "external_change", "decision")


class HistoryError(MlopsProviderError, ValueError):
    """A history question that cannot be answered as asked (bad time, unknown alias, no such version)."""


def parse_time(value: str | datetime | date | None, *, field: str = "at") -> datetime:
    """An aware UTC datetime from ISO text (``2026-11-20``, ``2026-11-20T10:00``, ``...Z``); None: now."""
    if value is None or value == "":
        return datetime.now(timezone.utc)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError as err:
            raise HistoryError(f"{field}={value!r} is not an ISO-8601 date or time (e.g. 2026-11-20 or "
                               "2026-11-20T10:00:00Z)", field=field) from err
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _when(record: Mapping[str, Any]) -> datetime | None:
    raw = record.get("recorded_at")
    try:
        return parse_time(raw) if raw else None
    except HistoryError:
        return None


def _str(value: Any) -> str | None:
    return None if value in (None, "", "None") else str(value)


def deploy_targets_of(record: Mapping[str, Any]) -> list[str]:
    """The deploy targets a promotion or rollback record served on: its ``deploy_targets`` (a rollback
    restores serving wherever the model was live), its ``deploy_target``, else the lane's TaskGroup in
    ``task_id`` (``local.promote`` → ``local``); empty: aliases only."""
    listed = record.get("deploy_targets")
    if isinstance(listed, (list, tuple)):
        return [str(t) for t in listed if _str(t) and t != "none"]
    target = _str(record.get("deploy_target"))
    if target:
        return [] if target in ("none", "auto") else [target]
    task_id = str(record.get("task_id") or "")
    return [task_id.split(".", 1)[0]] if "." in task_id else []


def deploy_target_of(record: Mapping[str, Any]) -> str | None:
    """The first of :func:`deploy_targets_of` (None: aliases only)."""
    targets = deploy_targets_of(record)
    return targets[0] if targets else None


def _who(record: Mapping[str, Any]) -> str | None:
    if record.get("event") == "external_change":
        return _str(record.get("changed_by"))  # what MLflow reported (None: it keeps no author)
    return _str(record.get("requested_by")) or _str((record.get("approval") or {}).get("by")) or (
        f"Airflow {record['dag_id']} / {record['run_id']}" if record.get("dag_id") and record.get("run_id") else None)


def moves(records: Iterable[Mapping[str, Any]], model: str, *, alias: str | None = None,
          target: str | None = None) -> list[dict[str, Any]]:
    """Every move of ``alias`` (or of what ``target`` serves) for ``model``, oldest first:
    ``{"at", "version", "from_version", "event", "who", "record"}``."""
    if (alias is None) == (target is None):
        raise HistoryError("name exactly one of alias or target")
    out: list[dict[str, Any]] = []
    for order, record in enumerate(records):
        if record.get("model") != model or record.get("event") not in MOVE_EVENTS:
            continue
        at = _when(record)
        if at is None:
            continue
        event = record["event"]
        if event == "champion_rolled_back":  # written by the promote operator: its fields are the fallback
            record = {"to_version": record.get("challenger_version"),
                      "from_version": record.get("previous_champion"), **record}
        changes: list[tuple[str | None, str | None]] = []  # (to, from)
        if target is not None:
            if event in ("promoted", "champion_rolled_back") and target in deploy_targets_of(record):
                to = record.get("challenger_version") if event == "promoted" else record.get("to_version")
                frm = record.get("previous_champion") if event == "promoted" else record.get("from_version")
                changes.append((_str(to), _str(frm)))
        elif event == "promoted":
            if alias == CHAMPION:
                changes.append((_str(record.get("challenger_version")), _str(record.get("previous_champion"))))
            elif alias == "previous" and _str(record.get("previous_champion")):
                changes.append((_str(record.get("previous_champion")), None))
            elif alias == "challenger":
                changes.append((None, _str(record.get("challenger_version"))))
        elif event == "champion_rolled_back":
            if alias == CHAMPION:
                changes.append((_str(record.get("to_version")), _str(record.get("from_version"))))
            elif alias == "previous":
                changes.append((_str(record.get("from_version")), None))
        elif event == "external_change":
            if record.get("alias") == alias:
                changes.append((_str(record.get("to_version")), _str(record.get("from_version"))))
        elif event == "decision" and alias == "challenger":
            changes.append((_str(record.get("challenger_version")), None))
        for to, frm in changes:
            out.append({"at": at, "order": order, "version": to, "from_version": frm, "event": event,
                        "who": _who(record), "record": dict(record)})
    out.sort(key=lambda m: (m["at"], m["order"]))
    return out


def _decision_for(records: list[Mapping[str, Any]], model: str, version: str | None,
                  before: datetime) -> dict[str, Any] | None:
    """The last gate decision on ``version`` taken at or before ``before``."""
    if version is None:
        return None
    found = None
    for record in records:
        if (record.get("model") == model and record.get("event") == "decision"
                and _str(record.get("challenger_version")) == version):
            at = _when(record)
            if at is not None and at <= before:
                found = record
    if found is None:
        return None
    return {k: found.get(k) for k in ("verdict", "reasons", "champion_version", "challenger_metrics",
                                      "champion_metrics", "eval_rows", "data_version", "recorded_at", "dag_id",
                                      "run_id")}


def _why(move: dict[str, Any], records: list[Mapping[str, Any]], model: str) -> dict[str, Any]:
    record = move["record"]
    why: dict[str, Any] = {"event": move["event"], "recorded_at": record.get("recorded_at"), "who": move["who"],
                           "dag_id": record.get("dag_id"), "run_id": record.get("run_id")}
    if move["event"] == "champion_rolled_back":
        why["reason"] = record.get("reason")
    if move["event"] == "external_change":
        why["mlflow_reports"] = record.get("mlflow_reports")
        why["not_before"] = record.get("not_before")
    decision = _decision_for(records, model, move["version"], move["at"])
    if decision is not None and move["event"] in ("promoted", "decision"):
        why["decision"] = decision
    return why


def _public(move: dict[str, Any], records: list[Mapping[str, Any]], model: str) -> dict[str, Any]:
    return {"at": move["at"].isoformat(), "version": move["version"], "from_version": move["from_version"],
            "event": move["event"], "who": move["who"], "why": _why(move, records, model)}


def timeline(records: Iterable[Mapping[str, Any]], model: str, *, alias: str | None = None,
             target: str | None = None) -> list[dict[str, Any]]:
    """The moves of ``alias`` or ``target`` for ``model``, oldest first, each ``{"at", "version",
    "from_version", "event", "who", "why"}`` (``until``: when the next move replaced it)."""
    records = list(records)
    found = moves(records, model, alias=alias, target=target)
    out = [_public(m, records, model) for m in found]
    for entry, nxt in zip(out, out[1:], strict=False):
        entry["until"] = nxt["at"]
    if out:
        out[-1]["until"] = None
    return out


def live_at(records: Iterable[Mapping[str, Any]], model: str, at: str | datetime | date | None = None, *,
            alias: str | None = None, target: str | None = None,
            current: str | None | object = ...) -> dict[str, Any]:
    """Which version ``alias`` (default ``champion``) or deploy ``target`` named for ``model`` at ``at``.

    Returns ``{"model", "alias"|"target", "at", "version", "since", "why", "known"}``: ``version``
    None with ``known`` False when the ledger holds no move before ``at``. ``current``: what
    MLflow (or the target) says now; when it differs from the ledger's last word a ``warning``
    says the change is not reconciled yet (see :func:`reconcile`).
    """
    if alias is None and target is None:
        alias = CHAMPION
    moment = parse_time(at)
    records = list(records)
    found = moves(records, model, alias=alias, target=target)
    before = [m for m in found if m["at"] <= moment]
    subject = {"alias": alias} if target is None else {"target": target}
    answer: dict[str, Any] = {"model": model, **subject, "at": moment.isoformat(), "version": None, "since": None,
                              "why": None, "known": bool(before)}
    if before:
        last = before[-1]
        answer.update(version=last["version"], since=last["at"].isoformat(), why=_why(last, records, model))
        after = found[len(before):]
        answer["until"] = after[0]["at"].isoformat() if after else None
    if current is not ... and (not found or found[-1] is (before[-1] if before else None)):
        ledger_now = found[-1]["version"] if found else None
        if _str(current) != ledger_now:
            answer["warning"] = (f"MLflow now says v{current}, the ledger's last word is v{ledger_now}: a change "
                                 "made outside the pipeline and not reconciled yet")
    return answer


def live_intervals(records: Iterable[Mapping[str, Any]], model: str, version: str, *,
                   alias: str = CHAMPION) -> list[dict[str, Any]]:
    """When ``version`` held ``alias``: ``[{"from", "until"}]`` (``until`` None: still)."""
    return [{"from": m["at"], "until": m.get("until")}
            for m in timeline(records, model, alias=alias) if m["version"] == str(version)]


def compare(records: Iterable[Mapping[str, Any]], model: str, facts_a: Mapping[str, Any],
            facts_b: Mapping[str, Any]) -> dict[str, Any]:
    """Two versions side by side. ``facts_*``: each version's facts from MLflow (``version``,
    ``metrics``, ``task_type``, ``data_version``, ``decision``, ``created``, ``run_id``...).

    Returns ``{"model", "versions": [a, b], "facts": {a: ..., b: ...}, "metrics": [{"name", a, b,
    "difference"}], "fields": [{"name", a, b, "same"}], "head_to_head": [gate decisions that judged
    one against the other], "champion_intervals": {a: [...], b: [...]}}``. Each version's metrics
    come from its own holdout; ``head_to_head`` holds the figures on one holdout.
    """
    records = list(records)
    a, b = str(facts_a["version"]), str(facts_b["version"])
    if a == b:
        raise HistoryError(f"compare needs two different versions of {model!r}, got v{a} twice", field="versions")
    ma, mb = dict(facts_a.get("metrics") or {}), dict(facts_b.get("metrics") or {})
    metrics = []
    for name in sorted(set(ma) | set(mb)):
        va, vb = ma.get(name), mb.get(name)
        diff = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        metrics.append({"name": name, a: va, b: vb, "difference": diff})
    fields = []
    for name in sorted((set(facts_a) | set(facts_b)) - {"version", "metrics"}):
        va, vb = facts_a.get(name), facts_b.get(name)
        fields.append({"name": name, a: va, b: vb, "same": va == vb})
    head = [{k: r.get(k) for k in ("challenger_version", "champion_version", "verdict", "reasons",
                                   "challenger_metrics", "champion_metrics", "eval_rows", "recorded_at", "run_id")}
            for r in records
            if r.get("model") == model and r.get("event") == "decision"
            and {_str(r.get("challenger_version")), _str(r.get("champion_version"))} == {a, b}]
    intervals = {v: [{"from": i["from"], "until": i["until"]} for i in live_intervals(records, model, v)]
                 for v in (a, b)}
    return {"model": model, "versions": [a, b], "facts": {a: dict(facts_a), b: dict(facts_b)},
            "metrics": metrics, "fields": fields, "head_to_head": head, "champion_intervals": intervals}


def last_good_version(records: Iterable[Mapping[str, Any]], model: str, current: str | None) -> str | None:
    """The version a rollback of ``@champion`` goes back to: the latest earlier champion that is not
    ``current`` and was never rolled back from (a rollback away from a version marks it bad)."""
    records = list(records)
    bad = {_str(r.get("from_version") or r.get("previous_champion")) for r in records
           if r.get("model") == model and r.get("event") == "champion_rolled_back"}
    current = _str(current)
    for move in reversed(moves(records, model, alias=CHAMPION)):
        version = move["version"]
        if version and version != current and version not in bad:
            return version
        frm = move["from_version"]
        if frm and frm != current and frm not in bad:
            return frm
    return None


def ledger_state(records: Iterable[Mapping[str, Any]], model: str,
                 aliases: Iterable[str] = LEDGER_ALIASES) -> dict[str, dict[str, Any]]:
    """Per alias, the ledger's last word: ``{"version", "at"}`` (absent: never moved in the ledger)."""
    records = list(records)
    state = {}
    for alias in aliases:
        found = moves(records, model, alias=alias)
        if found:
            state[alias] = {"version": found[-1]["version"], "at": found[-1]["at"].isoformat()}
    return state


def reconcile(records: Iterable[Mapping[str, Any]], model: str, mlflow_aliases: Mapping[str, Any], *,
              aliases: Iterable[str] = LEDGER_ALIASES, seen_by: Mapping[str, Any] | None = None,
              mlflow_reports: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ``external_change`` records to append: one per owned alias whose MLflow version differs
    from the ledger's last word. An alias never moved in the ledger counts as unset.

    :param mlflow_aliases: alias -> version, as MLflow reports them now (the registered model's aliases).
    :param seen_by: who noticed (``dag_id``, ``run_id``, ``task_id`` or ``via: "webhook"``), recorded.
    :param mlflow_reports: what MLflow said about the change (who/when when it knows; recorded as is).
    """
    state = ledger_state(records, model, aliases)
    out = []
    for alias in aliases:
        now = _str(mlflow_aliases.get(alias))
        known = state.get(alias, {})
        if now == known.get("version"):
            continue
        reports = {"aliases": {str(k): str(v) for k, v in mlflow_aliases.items()}, "changed_by": None,
                   "changed_at": None, "note": "MLflow records no author or time for an alias move",
                   **dict(mlflow_reports or {})}
        out.append({"event": "external_change", "model": model, "alias": alias, "from_version": known.get("version"),
                    "to_version": now, "not_before": known.get("at"), "changed_by": reports.get("changed_by"),
                    "mlflow_reports": reports, **dict(seen_by or {})})
    return out


__all__ = ["HistoryError", "LEDGER_ALIASES", "compare", "deploy_target_of", "deploy_targets_of", "last_good_version", "ledger_state",
           "live_at", "live_intervals", "moves", "parse_time", "reconcile", "timeline"]
