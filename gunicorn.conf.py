"""gunicorn's configuration for Stremora, read from the directory gunicorn starts in
(or named with ``--config``).

/metrics adds up the counts of every worker through prometheus-client's multiprocess
mode: each worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a
scrape reads them all. The variable must be set before a worker imports Stremora, so
it is set here, in the master: to the operator's directory (created if missing), or
else to a fresh temporary one removed when gunicorn exits. The files of an earlier run
are removed when gunicorn starts, and each worker that exits is marked dead.

``PROVIDER_WAIT_SLOTS`` (``videos.provider_slots``), unless the operator set it, is half
the workers (at least one), so that a slow storage provider always leaves the other
half free for the site's other requests: with one free worker of three, a health check
still queued behind the others' signing and polling under load. It is set when
gunicorn starts, before the workers are forked and read their settings (with
``--preload`` they read them earlier: set it then).
"""

import os
import shutil
import tempfile
from pathlib import Path

# Only prometheus-client's own files are removed from an operator's directory.
METRIC_FILE_PATTERNS = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")
TEMPORARY_PREFIX = "stremora-metrics-"
# Names the directory made here, so that a reload (SIGHUP reads this file again) keeps it.
TEMPORARY_MARK = "STREMORA_TEMPORARY_METRICS_DIR"

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[TEMPORARY_MARK] = tempfile.mkdtemp(prefix=TEMPORARY_PREFIX)
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)


def on_starting(server):
    os.environ.setdefault("PROVIDER_WAIT_SLOTS", str(max(1, server.cfg.workers // 2)))
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for pattern in METRIC_FILE_PATTERNS:
        for stale in metrics_dir.glob(pattern):
            stale.unlink(missing_ok=True)


def post_worker_init(worker):
    # Once the worker has loaded Stremora: build the providers' clients, then move all
    # that lives as long as the worker (Django, DRF, botocore's service models: a few
    # hundred thousand objects) out of the garbage collector's full passes. Scanning
    # them made the occasional full collection stop a worker for 300 to 500 ms, in the
    # middle of whatever request it was serving.
    import gc
    import logging

    from django.conf import settings

    from storage_backends import providers

    try:
        providers.warm_up(settings.STORAGE_PROVIDERS)
    except Exception:  # the first request that needs the client builds it instead
        logging.getLogger("gunicorn.error").exception("Could not build the storage providers' clients")
    gc.collect()
    gc.freeze()


def child_exit(server, worker):
    # Imported here, not above: prometheus-client picks its mode when first imported,
    # and the workers forked from this process must find the variable already set.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if metrics_dir == os.environ.get(TEMPORARY_MARK) and Path(metrics_dir).name.startswith(TEMPORARY_PREFIX):
        shutil.rmtree(metrics_dir, ignore_errors=True)
