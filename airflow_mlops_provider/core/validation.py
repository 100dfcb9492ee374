"""Great Expectations 1.x as plain data: load a suite, run it, summarize the result, split rows.

No Airflow here. pandas and great_expectations are imported inside the functions that need them
(import cost, see DESIGN.md); everything returned for XCom is JSON-safe.

Severity is GE's own per-expectation ``severity`` field (``critical`` / ``warning`` / ``info``).
GE's overall ``success`` is false as soon as *any* expectation fails, whatever its severity, so
the gate decision here is recomputed from severities: only ``critical`` failures fail the data.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_mlops_provider.core.files import write_bytes_atomic
from airflow_mlops_provider.core.optional import require
from airflow_mlops_provider.exceptions import SuiteDefinitionError

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite

SEVERITIES = ("critical", "warning", "info")
RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
DATA_DOCS_SITE = "mlops"

_SUITE_KEYS = {"name", "expectations", "meta", "id", "notes", "suite_parameters", "data_asset_type"}
_EXPECTATION_KEYS = {"type", "expectation_type", "kwargs", "meta", "notes", "description", "severity",
                     "id", "rendered_content", "expectation_context", "success_on_last_run"}
_OBSERVED_VALUE_MAX_CHARS = 300
_EXCEPTION_MAX_CHARS = 500


def _gx() -> Any:
    # GE logs one INFO line per closure its API-docs decorator skips at import: hundreds of
    # lines in every task log, none of them about the data.
    noisy = logging.getLogger("great_expectations._docs_decorators")
    if noisy.level == logging.NOTSET:
        noisy.setLevel(logging.WARNING)
    return require("great_expectations")


# -- suites ----------------------------------------------------------------------------------
def load_suite(spec: Mapping[str, Any] | str | os.PathLike[str] | ExpectationSuite) -> ExpectationSuite:
    """Build a fresh, unattached ``ExpectationSuite`` from a dict, a JSON file or a suite.

    ``spec`` has GE's suite JSON shape: ``{"name": ..., "expectations": [{"type": ...,
    "kwargs": {...}, "severity": "critical"}, ...]}``. A string starting with ``{`` is read as
    inline JSON, any other string or path as a JSON file. An ``ExpectationSuite`` is copied
    (ids dropped) so it can be added to a new data context.

    Every expectation is checked here, because ``ExpectationSuite(expectations=...)`` only logs
    and drops an invalid one. Errors are :class:`SuiteDefinitionError` naming the file (or
    source) and the index and type of the bad expectation.
    """
    gx = _gx()
    default_name = "suite"
    if isinstance(spec, gx.ExpectationSuite):
        source = f"ExpectationSuite {spec.name!r}"
        data = spec.to_json_dict()
    elif isinstance(spec, Mapping):
        source, data = "suite dict", dict(spec)
    elif isinstance(spec, str) and spec.lstrip().startswith("{"):
        source = "inline suite JSON"
        data = _parse_json(spec, source)
    elif isinstance(spec, (str, os.PathLike)):
        path = Path(spec).expanduser()
        source, default_name = f"suite file {str(path)!r}", path.stem
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise SuiteDefinitionError(f"Suite file {str(path)!r} does not exist", path=str(path)) from err
        except (OSError, UnicodeDecodeError) as err:
            raise SuiteDefinitionError(f"Cannot read suite file {str(path)!r}: {err}", path=str(path)) from err
        data = _parse_json(text, source)
    else:
        raise SuiteDefinitionError(
            f"A suite must be a dict, a JSON file path or an ExpectationSuite, not {type(spec).__name__}",
            spec_type=type(spec).__name__)
    return _build_suite(data, source, default_name)


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SuiteDefinitionError(f"{source} is not valid JSON: {err.msg} at line {err.lineno} "
                                   f"column {err.colno}", source=source) from err


def _build_suite(data: Any, source: str, default_name: str) -> ExpectationSuite:
    gx = _gx()
    if not isinstance(data, Mapping):
        raise SuiteDefinitionError(f"{source} must be a JSON object with 'name' and 'expectations', "
                                   f"not {type(data).__name__}", source=source)
    unknown = sorted(set(data) - _SUITE_KEYS)
    if unknown:
        raise SuiteDefinitionError(f"{source} has unknown key(s) {unknown}; expected among "
                                   f"{sorted(_SUITE_KEYS)}", source=source, keys=unknown)
    if "expectations" not in data:
        raise SuiteDefinitionError(f"{source} has no 'expectations' list", source=source)
    specs = data["expectations"]
    if not isinstance(specs, list):
        raise SuiteDefinitionError(f"{source}: 'expectations' must be a list, not {type(specs).__name__}",
                                   source=source)
    if not specs:
        raise SuiteDefinitionError(f"{source} has an empty 'expectations' list; a suite that checks "
                                   "nothing would pass any data", source=source)
    name = data.get("name") or default_name
    if not isinstance(name, str):
        raise SuiteDefinitionError(f"{source}: 'name' must be a string, not {type(name).__name__}",
                                   source=source)
    expectations = [_build_expectation(spec, index, source) for index, spec in enumerate(specs)]
    meta = data.get("meta")
    try:
        return gx.ExpectationSuite(name=name, expectations=expectations,
                                   suite_parameters=data.get("suite_parameters") or None,
                                   meta=dict(meta) if isinstance(meta, Mapping) else None,
                                   notes=data.get("notes"))
    except (ValueError, TypeError) as err:
        raise SuiteDefinitionError(f"{source}: {err}", source=source) from err


def _build_expectation(spec: Any, index: int, source: str) -> Any:
    from great_expectations.exceptions import ExpectationNotFoundError, GreatExpectationsError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    where = f"{source}: expectation #{index}"
    if not isinstance(spec, Mapping):
        raise SuiteDefinitionError(f"{where} must be an object with 'type' and 'kwargs', "
                                   f"not {type(spec).__name__}", source=source, index=index)
    etype = spec.get("type", spec.get("expectation_type"))  # 0.x suites say expectation_type
    if not isinstance(etype, str) or not etype:
        raise SuiteDefinitionError(f"{where} has no 'type' (e.g. 'expect_column_values_to_not_be_null')",
                                   source=source, index=index)
    where = f"{where} ({etype})"
    unknown = sorted(set(spec) - _EXPECTATION_KEYS)
    if unknown:
        raise SuiteDefinitionError(f"{where} has unknown key(s) {unknown}; expectation arguments go "
                                   "under 'kwargs'", source=source, index=index, type=etype, keys=unknown)
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise SuiteDefinitionError(f"{where}: 'kwargs' must be an object, not {type(kwargs).__name__}",
                                   source=source, index=index, type=etype)
    meta = spec.get("meta")
    if isinstance(meta, Mapping) and meta.get("mlops_float_bounds"):
        # Input-contract bounds such as ±1.79e308 travel as text (core.contract: JSONB XCom).
        kwargs = {**kwargs, **{k: float(kwargs[k]) for k in ("min_value", "max_value")
                               if isinstance(kwargs.get(k), str)}}
    severity = spec.get("severity") or "critical"
    severity = getattr(severity, "value", severity)  # a FailureSeverity member from a built suite
    if not isinstance(severity, str) or severity.lower() not in SEVERITIES:
        raise SuiteDefinitionError(f"{where}: severity {severity!r} is not one of {list(SEVERITIES)}",
                                   source=source, index=index, type=etype)
    try:
        config = ExpectationConfiguration(
            type=etype, kwargs=dict(kwargs), meta=spec.get("meta"), notes=spec.get("notes"),
            description=spec.get("description"), severity=severity.lower())
        return config.to_domain_obj()
    except ExpectationNotFoundError as err:
        from great_expectations.expectations.registry import list_registered_expectation_implementations

        close = difflib.get_close_matches(etype, list_registered_expectation_implementations(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SuiteDefinitionError(f"{where}: unknown expectation type{hint}",
                                   source=source, index=index, type=etype) from err
    except GreatExpectationsError as err:
        raise SuiteDefinitionError(f"{where}: {getattr(err, 'message', err)}",
                                   source=source, index=index, type=etype) from err
    except ValueError as err:  # pydantic's ValidationError: missing or mistyped kwargs
        raise SuiteDefinitionError(f"{where}: invalid kwargs: {_pydantic_errors(err, kwargs)}",
                                   source=source, index=index, type=etype) from err


def _pydantic_errors(err: ValueError, kwargs: Mapping[str, Any]) -> str:
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return str(err)
    first: dict[str, str] = {}  # one message per field: unions report every alternative
    for item in errors():
        field = ".".join(str(part) for part in item.get("loc", ()) if part != "__root__") or "kwargs"
        first.setdefault(field, item.get("msg", "invalid"))
    return "; ".join(f"{field}: {msg}" + (f" (got {kwargs[field]!r})" if field in kwargs else "")
                     for field, msg in first.items())


# -- running ---------------------------------------------------------------------------------
class ValidationRun(NamedTuple):
    result: dict[str, Any]
    """GE's ``ExpectationSuiteValidationResult`` as a JSON-safe dict."""
    data_docs_uri: str | None
    """``file://`` URI of this validation's data docs page, when data docs were built."""


def run_suite(df: pd.DataFrame, suite: Any, *, result_format: str = "SUMMARY",
              data_docs_dir: str | os.PathLike[str] | None = None, run_name: str | None = None,
              asset_name: str = "data") -> ValidationRun:
    """Validate ``df`` against ``suite`` in an ephemeral GE context.

    Nothing is written except this result's data docs pages under ``data_docs_dir`` (when
    given) and that folder's ``index.html`` (:func:`write_data_docs_index`): suites, results and
    checkpoints live in memory for this call only. Pages of earlier runs stay.
    """
    if result_format not in RESULT_FORMATS:
        raise ValueError(f"result_format {result_format!r} is not one of {list(RESULT_FORMATS)}")
    gx = _gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    sites = {}
    if data_docs_dir is not None:
        sites[DATA_DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(data_docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        progress_bars=ProgressBarsConfig(globally=False),  # tqdm bars would flood task logs
        analytics_enabled=False,
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    suite = context.suites.add(load_suite(suite))  # a copy: adding binds a suite to one context
    batch = (context.data_sources.add_pandas("mlops").add_dataframe_asset(asset_name)
             .add_batch_definition_whole_dataframe("whole"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{asset_name}:{suite.name}", data=batch, suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name="mlops", validation_definitions=[definition], actions=[], result_format=result_format))
    outcome = checkpoint.run(batch_parameters={"dataframe": df}, run_id=RunIdentifier(run_name=run_name))
    ((identifier, result),) = outcome.run_results.items()
    result_json = json_safe(result.to_json_dict())
    docs_uri = None
    if sites:
        # Only this result's pages, no index: GE's index builder deletes every page whose result
        # is not in the context's stores, and an ephemeral context holds this run's result only,
        # so it would erase the pages of every earlier task.
        context.build_data_docs(site_names=[DATA_DOCS_SITE], build_index=False, resource_identifiers=[
            identifier, ExpectationSuiteIdentifier(name=suite.name)])
        urls = context.get_docs_sites_urls(resource_identifier=identifier, site_names=[DATA_DOCS_SITE])
        docs_uri = urls[0]["site_url"] if urls else None
        if docs_uri:
            _write_verdict(data_docs_path(docs_uri), summarize(result_json))
        write_data_docs_index(data_docs_dir)
    return ValidationRun(result=result_json, data_docs_uri=docs_uri)


VERDICT_SUFFIX = ".verdict.json"
"""Beside each data docs page: the gate's verdict on it (``<page>.html.verdict.json``), for the index."""


def data_docs_path(uri: str) -> Path:
    """The local file of a ``file://`` data docs URI (as GE returns it, percent-encoded)."""
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    parts = urlsplit(uri)
    if parts.scheme not in ("", "file"):
        raise ValueError(f"data docs URI {uri!r} is not a local file")
    return Path(url2pathname(parts.path))


def _write_verdict(page: Path, summary: Mapping[str, Any]) -> None:
    verdict = {"success": summary["success"], "evaluated": summary["evaluated"],
               "successful": summary["successful"], "failed": len(summary["failed"]),
               "warnings": len(summary["warnings"])}
    write_bytes_atomic(page.with_name(page.name + VERDICT_SUFFIX), json.dumps(verdict).encode())


def _verdict_cell(page: Path) -> str:
    try:
        verdict = json.loads(page.with_name(page.name + VERDICT_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "<td class='unknown'>?</td>"
    counts = f"{verdict.get('successful')}/{verdict.get('evaluated')} passed"
    if not verdict.get("success"):
        return f"<td class='fail'>fail: {verdict.get('failed')} critical; {counts}</td>"
    if verdict.get("warnings"):
        return f"<td class='warn'>pass with {verdict.get('warnings')} warning(s); {counts}</td>"
    return f"<td class='pass'>pass; {counts}</td>"


def write_data_docs_index(data_docs_dir: str | os.PathLike[str]) -> Path:
    """``index.html`` linking every validation page under ``data_docs_dir``, newest first.

    GE's own index builder only knows the results in its (ephemeral) context, so it would list
    one run; this one lists the pages on disk: ``validations/<suite>/<run>/<time>/<batch>.html``.
    Rewritten whole and atomically, so a reader never sees half a page.
    """
    import html as _html

    root = Path(data_docs_dir)
    pages = sorted((p for p in (root / "validations").rglob("*.html") if p.is_file()),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    rows = []
    for page in pages:
        parts = page.relative_to(root / "validations").parts
        suite, run = (parts[0], parts[1]) if len(parts) >= 3 else (parts[0], "")
        rel = page.relative_to(root).as_posix()
        rows.append(f"<tr><td>{_html.escape(suite)}</td><td>{_html.escape(run)}</td>{_verdict_cell(page)}"
                    f"<td><a href=\"{_html.escape(rel, quote=True)}\">{_html.escape(page.stem)}</a></td></tr>")
    style = ("body{font-family:system-ui,sans-serif;margin:16px;color-scheme:light dark}"
             "table{border-collapse:collapse}td,th{border:1px solid #8884;padding:3px 8px;text-align:left}"
             ".pass{color:#1a7f37}.fail{color:#cf222e;font-weight:600}.warn{color:#9a6700}")
    body = ("<!doctype html><html><head><meta charset='utf-8'><title>Data docs</title>"
            f"<style>{style}</style></head><body>"
            f"<h1>Great Expectations data docs</h1><p>{len(pages)} validation result(s), newest first.</p>"
            "<table><tr><th>suite</th><th>run</th><th>verdict</th><th>result</th></tr>"
            + "".join(rows) + "</table></body></html>")
    index = root / "index.html"
    tmp = root / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, index)
    return index


# -- results ---------------------------------------------------------------------------------
def _as_dict(result: Any) -> Mapping[str, Any]:
    if isinstance(result, Mapping):
        return result
    to_json = getattr(result, "to_json_dict", None)
    if callable(to_json):
        return to_json()
    raise TypeError(f"Expected a GE validation result or its JSON dict, not {type(result).__name__}")


def _severity(item: Mapping[str, Any]) -> str:
    value = (item.get("expectation_config") or {}).get("severity") or "critical"
    value = str(getattr(value, "value", value)).lower()
    return value if value in SEVERITIES else "critical"


def _column(kwargs: Mapping[str, Any]) -> str | None:
    if kwargs.get("column") is not None:
        return str(kwargs["column"])
    if kwargs.get("column_A") is not None and kwargs.get("column_B") is not None:
        return f"{kwargs['column_A']}, {kwargs['column_B']}"
    if isinstance(kwargs.get("column_list"), (list, tuple)):
        return ", ".join(str(c) for c in kwargs["column_list"])
    return None


def _exception_message(info: Any) -> str | None:
    """GE reports exceptions flat, or keyed by metric id when a metric computation raised."""
    if not isinstance(info, Mapping):
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message") or "error") if info.get("raised_exception") else None
    messages = [str(v.get("exception_message") or "error") for v in info.values()
                if isinstance(v, Mapping) and v.get("raised_exception")]
    return "; ".join(dict.fromkeys(messages)) or None


def _small(value: Any) -> Any:
    safe = json_safe(value)
    return safe if len(json.dumps(safe)) <= _OBSERVED_VALUE_MAX_CHARS else None


def _item(raw: Mapping[str, Any]) -> dict[str, Any]:
    config = raw.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    res = raw.get("result") or {}
    item = {
        "expectation_type": config.get("type") or config.get("expectation_type"),
        "column": _column(kwargs),
        "severity": _severity(raw),
        "kwargs": json_safe(kwargs),
        "element_count": res.get("element_count"),
        "unexpected_count": res.get("unexpected_count"),
        "unexpected_percent": json_safe(res.get("unexpected_percent")),
        "observed_value": _small(res.get("observed_value")),
    }
    if config.get("description"):
        item["description"] = str(config["description"])[:300]
    error = _exception_message(raw.get("exception_info"))
    if error:
        item["exception"] = error[:_EXCEPTION_MAX_CHARS]
    return item


def _failed(result: Mapping[str, Any], severities: Iterable[str]) -> list[Mapping[str, Any]]:
    wanted = set(severities)
    return [r for r in result.get("results") or [] if not r.get("success") and _severity(r) in wanted]


def _sort_key(item: Mapping[str, Any]) -> tuple:
    return (SEVERITIES.index(item["severity"]), item["expectation_type"] or "", item["column"] or "",
            json.dumps(item["kwargs"], sort_keys=True))


def summarize(result: Any) -> dict[str, Any]:
    """A small JSON-safe digest of a GE validation result (object or its JSON dict).

    ``success`` is true when no *critical* expectation failed. ``failed`` lists the critical
    failures, ``warnings`` the ``warning`` and ``info`` ones; each item has ``expectation_type``,
    ``column`` (None for table-level expectations), ``kwargs``, ``severity``, ``element_count``,
    ``unexpected_count``, ``unexpected_percent``, ``observed_value`` (None when absent or larger
    than a few hundred characters) and ``exception`` when GE raised while evaluating it.
    """
    data = _as_dict(result)
    stats = data.get("statistics") or {}
    failed = sorted((_item(r) for r in _failed(data, ["critical"])), key=_sort_key)
    warnings = sorted((_item(r) for r in _failed(data, ["warning", "info"])), key=_sort_key)
    evaluated = stats.get("evaluated_expectations", len(data.get("results") or []))
    unsuccessful = stats.get("unsuccessful_expectations", len(failed) + len(warnings))
    return {
        "success": not failed,
        "suite_name": data.get("suite_name"),
        "evaluated": evaluated,
        "successful": stats.get("successful_expectations", evaluated - unsuccessful),
        "unsuccessful": unsuccessful,
        "failed": failed,
        "warnings": warnings,
    }


def describe_failure(item: Mapping[str, Any]) -> str:
    """One line for logs and error messages, from a :func:`summarize` item."""
    text = item["expectation_type"] or "expectation"
    if item.get("description"):
        text = f"{item['description']} ({text})"
    if item.get("column"):
        text += f" on column {item['column']!r}"
    if item.get("exception"):
        return f"{text}: error: {item['exception']}"
    if item.get("unexpected_count") is not None:
        text += f": {item['unexpected_count']} unexpected"
        if item.get("element_count") is not None:
            text += f" of {item['element_count']} rows"
        if item.get("unexpected_percent") is not None:
            text += f" ({item['unexpected_percent']:.2f}%)"
        return text
    if item.get("observed_value") is not None:
        return f"{text}: observed {item['observed_value']!r}"
    return text


class RowSplit(NamedTuple):
    kept: pd.DataFrame
    quarantined: pd.DataFrame
    reasons: pd.Series
    """Aligned with ``quarantined``: the failed expectations that flagged each row, sorted, ``; ``-joined."""


def split_failing_rows(df: pd.DataFrame, result: Any, *,
                       severities: Sequence[str] = ("critical",)) -> RowSplit:
    """Split ``df`` into rows that passed and rows flagged by failed row-level expectations.

    Row-level (column map, column pair, multicolumn) expectations report the index labels of
    their unexpected rows in ``unexpected_index_list`` with ``result_format="COMPLETE"``; the
    result must come from validating this very frame. Failures without row labels (table or
    aggregate expectations, evaluation errors) flag no rows: see :func:`unsplittable_failures`.
    """
    pd = require("pandas")
    data = _as_dict(result)
    reasons: dict[Any, list[str]] = {}
    for raw in _failed(data, severities):
        res = raw.get("result") or {}
        labels = res.get("unexpected_index_list")
        if labels is None:
            if "partial_unexpected_index_list" in res:
                raise ValueError("split_failing_rows needs every unexpected row: validate with "
                                 "result_format='COMPLETE' (this result only lists a partial sample)")
            continue
        if labels and isinstance(labels[0], Mapping):
            raise ValueError("split_failing_rows needs plain index labels in unexpected_index_list; "
                             "do not set unexpected_index_column_names in the result format")
        item = _item(raw)
        why = (item["expectation_type"] or "expectation") + (f"({item['column']})" if item["column"] else "")
        for label in labels:
            label = tuple(label) if isinstance(label, list) else label  # MultiIndex labels via JSON
            rows = reasons.setdefault(label, [])
            if why not in rows:
                rows.append(why)
    if reasons:
        unknown = [label for label in reasons if label not in df.index]
        if unknown:
            raise ValueError(f"{len(unknown)} unexpected row label(s) (e.g. {unknown[0]!r}) are not in the "
                             "frame's index: the result was computed on another frame")
    mask = df.index.isin(list(reasons))
    quarantined = df[mask]
    why = pd.Series(["; ".join(sorted(reasons[label])) for label in quarantined.index], index=quarantined.index,
                    name="_failed_expectations", dtype="object")
    return RowSplit(kept=df[~mask], quarantined=quarantined, reasons=why)


def unsplittable_failures(result: Any, *, severities: Sequence[str] = ("critical",)) -> list[dict[str, Any]]:
    """Failed expectations that name no rows (table-level, aggregate, errors), as summary items.

    Quarantining rows cannot repair these: the data set as a whole is unacceptable.
    """
    data = _as_dict(result)
    return sorted((_item(r) for r in _failed(data, severities)
                   if (r.get("result") or {}).get("unexpected_index_list") is None
                   and "partial_unexpected_index_list" not in (r.get("result") or {})),
                  key=_sort_key)


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as JSON, all or nothing (temp file + ``os.replace``)."""
    return write_bytes_atomic(Path(path), json.dumps(json_safe(payload), indent=1, allow_nan=False).encode())


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None, numpy scalars as Python values, the unknown as ``str``."""
    if value is None:
        return None
    # Exact builtin types out: np.float64 subclasses float, an enum may subclass str.
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        try:
            return json_safe(tolist())
        except (TypeError, ValueError):
            pass
    return str(value)


def safe_name(text: str, fallback: str = "data") -> str:
    """A file-name-safe label (letters, digits, ``._-``), at most 80 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")[:80]
    return cleaned or fallback
