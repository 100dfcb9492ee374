"""``[core] hostname_callable`` for the Celery test: two workers on one machine, told apart.

Both Celery workers run on this host, so Airflow's default hostname would be the same for
every task instance. scripts/ui.py gives each worker ``MLOPS_CELERY_WORKER=worker<i>``; the task
processes inherit it and report ``<host>-worker<i>`` as their hostname.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    worker = os.environ.get("MLOPS_CELERY_WORKER")
    return f"{socket.getfqdn()}-{worker}" if worker else socket.getfqdn()
