"""A real Prometheus Pushgateway and Prometheus server on loopback (Debian's packages).

`make test` installs ``prometheus`` and ``prometheus-pushgateway`` (scripts/install_system_packages.sh).
Prometheus scrapes the gateway every second (``honor_labels``: the pushed labels are kept).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.conftest import free_port


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{url} did not come up: {log.read_text()[-2000:]}") from None
            time.sleep(0.3)


def scraped(query, promql: str, what: str, timeout: float = 30) -> list[dict]:
    """The result of ``promql`` once Prometheus has scraped it (it scrapes every second)."""
    deadline = time.time() + timeout
    while not (series := query(promql)):
        assert time.time() < deadline, f"Prometheus never scraped the pushed {what}"
        time.sleep(1)
    return series


@contextlib.contextmanager
def prometheus_stack(root: Path):
    """Yields ``(pushgateway_url, query)``; ``query(promql)`` returns the result vector."""
    for binary in ("prometheus", "prometheus-pushgateway"):
        if not shutil.which(binary):
            raise RuntimeError(f"{binary} is not installed: `make test` installs it "
                               "(scripts/install_system_packages.sh)")
    root.mkdir(parents=True, exist_ok=True)
    gw_port, prom_port = free_port(), free_port()
    procs = []
    try:
        gw_log = root / "pushgateway.log"
        procs.append(subprocess.Popen(
            ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gw_port}"],
            stdout=open(gw_log, "w"), stderr=subprocess.STDOUT, start_new_session=True))
        gateway = f"http://127.0.0.1:{gw_port}"
        _wait(f"{gateway}/-/ready", procs[-1], gw_log)
        config = root / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                                "static_configs": [{"targets": [f"127.0.0.1:{gw_port}"]}]}],
        }))
        prom_log = root / "prometheus.log"
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(prom_log, "w"), stderr=subprocess.STDOUT, start_new_session=True))
        prometheus = f"http://127.0.0.1:{prom_port}"
        _wait(f"{prometheus}/-/ready", procs[-1], prom_log)

        def query(promql: str) -> list[dict]:
            url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
            with urllib.request.urlopen(url, timeout=10) as resp:
                answer = json.load(resp)
            assert answer["status"] == "success", answer
            return answer["data"]["result"]

        yield gateway, query
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
