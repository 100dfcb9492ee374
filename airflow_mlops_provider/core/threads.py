"""How many threads a scoring task uses, and how they wait: sized to the cores the task gets.

A worker host usually runs several tasks, and other work, at once. Model libraries size their
thread pools to the machine, and OpenMP runtimes (libgomp, which scikit-learn and LightGBM load)
make idle threads *spin* for a while before sleeping. Streaming scoring predicts chunk after
chunk: between two chunks, and at every barrier where a sibling thread was preempted, the spinning
threads burn cores the other work needs (measured on 2 busy cores: twice the CPU-seconds of a quiet
run, and slower than a plain read → predict → write). So, in the task process:

* the thread count is, first match wins: the operator's ``scoring_threads`` argument; the
  ``MLOPS_SCORING_THREADS`` environment variable; Airflow's ``[mlops] scoring_threads``
  (``AIRFLOW__MLOPS__SCORING_THREADS``); else the cores this process may run on (its CPU
  affinity, capped by a cgroup CPU quota) — never the machine's core count;
* the limit is applied to every thread pool the model's libraries loaded (OpenMP and BLAS) with
  threadpoolctl, for the scoring only;
* the OpenMP wait policy is set to passive (``OMP_WAIT_POLICY=PASSIVE``: idle threads sleep at
  once) — unless the environment already sets ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
  ``KMP_BLOCKTIME``. The runtime reads these once, when it is loaded; when it is already loaded
  in this process (a model library imported earlier), the setting cannot take effect and the
  task says so in its log: put ``OMP_WAIT_POLICY=PASSIVE`` in the worker's environment instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_mlops_provider.core.settings import CONFIG_SECTION, configured_value

log = logging.getLogger(__name__)

CONFIG_KEY = "scoring_threads"
ENV_VAR = "MLOPS_SCORING_THREADS"
#: Variables through which a user already chose how OpenMP threads wait (libgomp and LLVM's libomp).
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
_OPENMP_LIBRARIES = ("libgomp", "libomp", "libiomp")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(path: Path | None = None) -> int | None:
    """Whole cores a cgroup v2 CPU quota allows (``cpu.max``: ``<quota> <period>``, rounded up), or None."""
    try:
        quota, period = (path or CGROUP_CPU_MAX).read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (``os.sched_getaffinity``), capped by a
    cgroup CPU quota; ``os.cpu_count()`` where affinity is not available."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    return max(1, min(cores, quota) if quota else cores)


def _parse(value: Any, source: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{source} must be a whole number of threads >= 1 (or empty for the cores this task "
                         f"may use), got {value!r}")
    return number


def resolve_scoring_threads(explicit: Any = None) -> tuple[int, str]:
    """``(threads, why)``: the thread count of one scoring task (see the module doc for the order).

    An invalid value raises ``ValueError`` naming where it came from."""
    if explicit not in (None, "", "None"):
        return _parse(explicit, "scoring_threads"), "the scoring_threads argument"
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        return _parse(value, f"the {ENV_VAR} environment variable"), f"the {ENV_VAR} environment variable"
    value = configured_value(CONFIG_KEY)
    if value:
        setting = f"[{CONFIG_SECTION}] {CONFIG_KEY}"
        return _parse(value, f"{setting} (AIRFLOW__{CONFIG_SECTION.upper()}__{CONFIG_KEY.upper()})"), setting
    return available_cores(), "the cores this process may run on"


def openmp_loaded() -> list[str]:
    """Paths of the OpenMP runtimes already mapped into this process (Linux ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if any(lib in line for lib in _OPENMP_LIBRARIES)}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


def quiet_openmp_waits() -> str:
    """Make OpenMP threads sleep instead of spinning when idle, if it can still take effect.

    Returns what happened, for the task log: ``"passive"`` (set now, before any OpenMP runtime
    was loaded), ``"user"`` (the environment already chose a wait policy: left alone) or
    ``"too late"`` (a runtime is loaded already; its policy can no longer change)."""
    chosen = [v for v in WAIT_VARIABLES if os.environ.get(v, "").strip()]
    if chosen:
        return "user"
    if openmp_loaded():
        return "too late"
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "passive"


def prepare_scoring_threads(explicit: Any = None) -> int:
    """Call in the task process before the model is loaded: resolves the thread count (logged with
    why) and quiets OpenMP waits (:func:`quiet_openmp_waits`). Returns the thread count."""
    threads, why = resolve_scoring_threads(explicit)
    waits = quiet_openmp_waits()
    if waits == "too late":
        log.warning("scoring with %d thread(s) (%s); OpenMP threads keep their default wait policy (spinning): "
                    "a runtime was loaded before scoring (%s). On a busy worker set OMP_WAIT_POLICY=PASSIVE "
                    "in its environment", threads, why, ", ".join(openmp_loaded()))
    else:
        log.info("scoring with %d thread(s) (%s); OpenMP wait policy: %s", threads, why,
                 "passive" if waits == "passive" else
                 ", ".join(f"{v}={os.environ[v]}" for v in WAIT_VARIABLES if os.environ.get(v, "").strip()))
    return threads


@contextlib.contextmanager
def thread_limits(threads: int | None, user_api: str | None = None) -> Iterator[None]:
    """Limit the thread pools of the loaded model libraries (OpenMP, BLAS; ``user_api``: only
    ``"openmp"`` or ``"blas"``) to ``threads`` inside the block (threadpoolctl); None: no limit.
    The OpenMP limit holds in the calling thread, the one that predicts; BLAS pools are process-wide."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(threads), user_api=user_api):
        yield


def single_threaded_openmp() -> None:
    """Limit OpenMP to one thread in the calling thread (its own ICV): the initializer of the
    threads that predict chunks side by side."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")
