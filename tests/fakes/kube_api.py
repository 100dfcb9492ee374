"""A fake Kubernetes API server for KServe InferenceServices — a TEST DOUBLE.

No Kubernetes (nor KServe, nor a container engine) can run on the test machines, so this
stands in for the API server on 127.0.0.1 (a threading ``http.server`` on a free port). It is
not a cluster: it implements only what ``KServeHook`` uses, the custom-objects REST paths

    /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices          GET (list), POST
    /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}   GET, PATCH, DELETE
    /version                                                                   GET

with the API server's answers: 409 ``AlreadyExists`` on a duplicate create, 404 ``NotFound``
on a missing object, 415 for a PATCH that is not ``application/merge-patch+json``, and 422
``Invalid`` when the stored object (spec and simulated status) does not validate against the
real KServe CRD schema (``shared/kserve/inferenceservice-v1beta1.openapi.json``).

KServe's controller is simulated in ``status``: a change of the predictor template creates a
new revision, which becomes Ready after ``ready_after`` GETs (``mode="ok"``), never
(``mode="never"``), or fails to load (``mode="fail"``, a terminal ``BlockedByFailedLoad``).
``canaryTrafficPercent`` splits traffic between the latest ready revision and the last
rolled-out one, as KServe's serverless mode reports it. ``patch_conflicts = k`` makes the next
k PATCHes answer 409 (a concurrent writer). A tiny predictor answers V2 (``/v2/models/{m}/infer``)
and V1 (``/v1/models/{m}:predict``) requests at the URL the status reports;
``predictor_mode`` ``"bad_shape"`` drops one prediction, ``predictor_delay`` adds latency, ``model``
(a function of the rows) replaces the row-sum answer.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PATH = re.compile(r"^/apis/serving\.kserve\.io/v1beta1/namespaces/([^/]+)/inferenceservices(?:/([^/]+))?$")
_PREDICT = re.compile(r"^/serving/([^/]+)/([^/]+)/(?:v2/models/([^/]+)/infer|v1/models/([^/:]+):predict)$")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _template(obj: dict[str, Any]) -> str:
    """What makes a new Knative revision: the predictor spec without the traffic split."""
    predictor = dict((obj.get("spec") or {}).get("predictor") or {})
    predictor.pop("canaryTrafficPercent", None)
    return json.dumps(predictor, sort_keys=True)


class _Sim:
    """KServe controller state for one InferenceService."""

    def __init__(self) -> None:
        self.revisions = 0
        self.latest_created: str | None = None
        self.latest_ready: str | None = None
        self.rolled_out: str | None = None
        self.previous_rolled_out: str | None = None
        self.pending = 0
        self.failed = False
        self.template = ""
        self.traffic: list[dict[str, Any]] = []


class FakeKubeApi:
    """Start with ``with FakeKubeApi(schema) as api:``; ``api.kubeconfig()`` points a client here."""

    def __init__(self, schema: dict[str, Any], *, ready_after: int = 1, mode: str = "ok",
                 patch_conflicts: int = 0, token: str = "fake-token") -> None:
        import jsonschema

        self.validator = jsonschema.Draft7Validator(schema)
        self.ready_after = ready_after
        self.mode = mode
        self.patch_conflicts = patch_conflicts
        self.token = token
        self.predictor_mode = "ok"
        self.predictor_delay = 0.0
        # None: the predictor answers each row's sum; else ``model(rows) -> predictions`` (named columns in order)
        self.model: Any = None
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.sims: dict[tuple[str, str], _Sim] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.lock = threading.RLock()
        self._version = 0
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FakeKubeApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True, name="fake-kube-api").start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig (as a dict) for the ``kube_config`` extra of a Kubernetes connection."""
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }

    def stored(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """The stored object as a client would GET it, without advancing the simulation."""
        with self.lock:
            return copy.deepcopy(self.objects[(namespace, name)])

    def count(self, method: str, status: int | None = None) -> int:
        return sum(1 for m, _, s in self.requests if m == method and (status is None or s == status))

    # -- simulated KServe controller ----------------------------------------------------------
    def _reconcile(self, key: tuple[str, str], obj: dict[str, Any]) -> None:
        sim = self.sims.setdefault(key, _Sim())
        template = _template(obj)
        if template != sim.template:
            sim.template = template
            sim.revisions += 1
            sim.latest_created = f"{key[1]}-predictor-{sim.revisions:05d}"
            sim.pending = self.ready_after
            sim.failed = False
            if sim.pending <= 0:
                self._became_ready(sim)
        self._route(sim, obj)
        obj["status"] = self._status(key, sim, obj)

    def _became_ready(self, sim: _Sim) -> None:
        if self.mode == "ok":
            sim.latest_ready = sim.latest_created
            if sim.rolled_out is None:
                sim.rolled_out = sim.latest_ready
        elif self.mode == "fail":
            sim.failed = True

    def _route(self, sim: _Sim, obj: dict[str, Any]) -> None:
        pct = ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")
        pct = 100 if pct is None else pct
        current_is_latest = sim.latest_ready is not None and sim.latest_ready == sim.latest_created
        if not current_is_latest:  # the new revision is not ready: old traffic stays where it was
            sim.traffic = ([{"revisionName": sim.rolled_out, "percent": 100, "latestRevision": False,
                             "tag": "prev"}] if sim.rolled_out else [])
            return
        if sim.rolled_out in (None, sim.latest_ready) or pct >= 100:
            if sim.rolled_out != sim.latest_ready:
                sim.previous_rolled_out, sim.rolled_out = sim.rolled_out, sim.latest_ready
            sim.traffic = [{"revisionName": sim.latest_ready, "percent": 100, "latestRevision": True,
                            "tag": "latest"}]
            return
        sim.traffic = [{"revisionName": sim.latest_ready, "percent": pct, "latestRevision": True, "tag": "latest"},
                       {"revisionName": sim.rolled_out, "percent": 100 - pct, "latestRevision": False,
                        "tag": "prev"}]

    def _status(self, key: tuple[str, str], sim: _Sim, obj: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.url}/serving/{key[0]}/{key[1]}"
        ready = sim.latest_ready is not None and sim.latest_ready == sim.latest_created
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        reason = None if ready else ("RevisionFailed" if sim.failed else "RevisionMissing")
        message = None if ready else (f"Revision {sim.latest_created} failed: model failed to load" if sim.failed
                                      else f"Revision {sim.latest_created} is not ready yet")
        conditions = []
        for ctype in ("IngressReady", "PredictorReady", "Ready"):
            cond = {"type": ctype, "status": "True" if ready else "False", "lastTransitionTime": now}
            if reason and ctype != "IngressReady":
                cond.update(reason=reason, message=message)
            if ctype == "IngressReady":
                cond["status"] = "True" if sim.rolled_out else "False"
            conditions.append(cond)
        predictor: dict[str, Any] = {"latestCreatedRevision": sim.latest_created, "traffic": sim.traffic}
        for field, value in (("latestReadyRevision", sim.latest_ready), ("latestRolledoutRevision", sim.rolled_out),
                             ("previousRolledoutRevision", sim.previous_rolled_out)):
            if value:
                predictor[field] = value
        if sim.rolled_out:
            predictor["url"] = url
        model_status: dict[str, Any] = {
            "transitionStatus": "UpToDate" if ready else ("BlockedByFailedLoad" if sim.failed else "InProgress"),
            "states": {"activeModelState": "Loaded" if sim.latest_ready else
                       ("FailedToLoad" if sim.failed else "Pending")},
        }
        if sim.failed:
            model_status["lastFailureInfo"] = {"reason": "ModelLoadFailed", "message": message,
                                               "modelRevisionName": sim.latest_created}
        status: dict[str, Any] = {"observedGeneration": obj["metadata"]["generation"], "conditions": conditions,
                                  "components": {"predictor": predictor}, "modelStatus": model_status,
                                  "deploymentMode": "Serverless"}
        if sim.rolled_out:
            status["url"] = url
            status["address"] = {"url": url}
        return status

    def on_get(self, key: tuple[str, str]) -> None:
        sim, obj = self.sims[key], self.objects[key]
        if sim.pending > 0:
            sim.pending -= 1
            if sim.pending == 0:
                self._became_ready(sim)
                self._route(sim, obj)
                obj["status"] = self._status(key, sim, obj)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        # Record before answering: the client may act on the answer before this thread resumes.
        self.fake.requests.append((self.command, self.path, code))
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.fake.token}":
            self._status(401, "Unauthorized", "Unauthorized")
            return False
        return True

    def _check(self, obj: dict[str, Any]) -> bool:
        errors = sorted(self.fake.validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            causes = "; ".join(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
            self._status(422, "Invalid", f"InferenceService.serving.kserve.io "
                                         f"{obj.get('metadata', {}).get('name')!r} is invalid: {causes}")
            return False
        return True

    # -- verbs -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/version":
            self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "gitCommit": "fake",
                             "gitTreeState": "clean", "buildDate": "2026-11-01T00:00:00Z", "goVersion": "go1.23",
                             "compiler": "gc", "platform": "linux/amd64"})
            return
        match = _PATH.match(self.path.split("?")[0])
        if not match or not self._authorized():
            if not match:
                self._status(404, "NotFound", f"the server could not find the requested resource {self.path}")
            return
        ns, name = match.groups()
        fake = self.fake
        with fake.lock:
            if name is None:
                items = [copy.deepcopy(o) for (n, _), o in fake.objects.items() if n == ns]
                self._send(200, {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceServiceList",
                                 "metadata": {}, "items": items})
                return
            key = (ns, name)
            if key not in fake.objects:
                self._status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
                return
            fake.on_get(key)
            self._send(200, copy.deepcopy(fake.objects[key]))

    def do_POST(self) -> None:
        predict = _PREDICT.match(self.path)
        if predict:
            self._predict(*predict.groups())
            return
        match = _PATH.match(self.path.split("?")[0])
        if not match or match.group(2) is not None:
            self._status(405, "MethodNotAllowed", "POST is only allowed on the collection")
            return
        if not self._authorized():
            return
        ns = match.group(1)
        obj = self._body()
        fake = self.fake
        with fake.lock:
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            if meta.get("namespace", ns) != ns:
                self._status(400, "BadRequest", "the namespace of the object does not match the request")
                return
            if (ns, name) in fake.objects:
                self._status(409, "AlreadyExists", f'inferenceservices.serving.kserve.io "{name}" already exists')
                return
            fake._version += 1
            meta.update(namespace=ns, generation=1, resourceVersion=str(fake._version),
                        uid=f"uid-{ns}-{name}", creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            if not self._check(obj):
                return
            fake._reconcile((ns, name), obj)
            if not self._check(obj):
                return
            fake.objects[(ns, name)] = obj
            self._send(201, copy.deepcopy(obj))

    def do_PATCH(self) -> None:
        match = _PATH.match(self.path.split("?")[0])
        if not match or match.group(2) is None:
            self._status(405, "MethodNotAllowed", "PATCH needs an object name")
            return
        if not self._authorized():
            return
        if self.headers.get("Content-Type", "").split(";")[0] != "application/merge-patch+json":
            self._status(415, "UnsupportedMediaType",
                         f"the fake API server only speaks merge-patch, not {self.headers.get('Content-Type')}")
            return
        ns, name = match.groups()
        patch = self._body()
        fake = self.fake
        with fake.lock:
            key = (ns, name)
            if key not in fake.objects:
                self._status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
                return
            if fake.patch_conflicts > 0:
                fake.patch_conflicts -= 1
                self._status(409, "Conflict", f'Operation cannot be fulfilled on inferenceservices.serving.kserve.io '
                                              f'"{name}": the object has been modified; please apply your changes '
                                              f'to the latest version and try again')
                return
            old = fake.objects[key]
            patch = dict(patch or {})
            patch.pop("status", None)  # status is a subresource
            new = merge_patch(old, patch)
            new["metadata"].update(name=name, namespace=ns, uid=old["metadata"]["uid"])
            if json.dumps(new.get("spec"), sort_keys=True) != json.dumps(old.get("spec"), sort_keys=True):
                new["metadata"]["generation"] = old["metadata"]["generation"] + 1
            fake._version += 1
            new["metadata"]["resourceVersion"] = str(fake._version)
            if not self._check(new):
                return
            fake._reconcile(key, new)
            if not self._check(new):
                return
            fake.objects[key] = new
            self._send(200, copy.deepcopy(new))

    def do_DELETE(self) -> None:
        match = _PATH.match(self.path.split("?")[0])
        if not match or match.group(2) is None or not self._authorized():
            if not match or match.group(2) is None:
                self._status(405, "MethodNotAllowed", "DELETE needs an object name")
            return
        ns, name = match.groups()
        with self.fake.lock:
            if self.fake.objects.pop((ns, name), None) is None:
                self._status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
                return
            self.fake.sims.pop((ns, name), None)
        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}})

    # -- predictor ---------------------------------------------------------------------------
    def _predict(self, ns: str, name: str, v2_model: str | None, v1_model: str | None) -> None:
        with self.fake.lock:
            obj = self.fake.objects.get((ns, name))
            serving = obj is not None and bool(self.fake.sims[(ns, name)].rolled_out)
        if not serving:
            self._status(404, "NotFound", f"no predictor serves {ns}/{name}")
            return
        body = self._body()
        time.sleep(self.fake.predictor_delay)
        try:
            if self.fake.model is not None:  # the test says what the served model answers
                if v2_model:
                    inputs = body["inputs"]
                    rows = [[inp["data"][i] for inp in inputs] for i in range(int(inputs[0]["shape"][0]))]
                else:
                    rows = [list(r.values()) if isinstance(r, dict) else r for r in body["instances"]]
                preds = list(self.fake.model(rows))
            elif v2_model:
                inputs = body["inputs"]
                rows = int(inputs[0]["shape"][0])
                if len(inputs) == 1 and len(inputs[0]["shape"]) == 2:  # one [rows, cols] tensor
                    width = int(inputs[0]["shape"][1])
                    data = inputs[0]["data"]
                    preds = [float(sum(data[i * width:(i + 1) * width])) for i in range(rows)]
                else:  # one named input per column; text columns (BYTES) do not add to the score
                    preds = [float(sum(inp["data"][i] for inp in inputs
                                       if isinstance(inp["data"][i], (int, float)))) for i in range(rows)]
            else:
                instances = body["instances"]
                preds = [float(sum(r.values() if isinstance(r, dict) else r)) for r in instances]
        except (KeyError, IndexError, TypeError, ValueError) as err:
            self._status(400, "BadRequest", f"malformed inference request: {err!r}")
            return
        if self.fake.predictor_mode == "bad_shape":
            preds = preds[:-1]
        if v2_model:
            self._send(200, {"model_name": v2_model, "id": "fake", "outputs": [
                {"name": "predict", "shape": [len(preds)], "datatype": "FP64", "data": preds}]})
        else:
            self._send(200, {"predictions": preds})
