"""gunicorn's configuration for Stremora, read from the directory gunicorn starts in
(or named with ``--config``).

/metrics adds up the counts of every worker through prometheus-client's multiprocess
mode: each worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a
scrape reads them all. The variable must be set before a worker imports Stremora, so
it is set here, in the master: to the operator's directory (created if missing), or
else to a fresh temporary one removed when gunicorn exits. The files of an earlier run
are removed when gunicorn starts, and each worker that exits is marked dead.

``PROVIDER_WAIT_SLOTS`` (``videos.provider_slots``), unless the operator set it, is one
fewer than the workers, so that a slow storage provider always leaves one worker free
for the site's other requests. It is set when gunicorn starts, before the workers are
forked and read their settings (with ``--preload`` they read them earlier: set it then).
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
    os.environ.setdefault("PROVIDER_WAIT_SLOTS", str(max(1, server.cfg.workers - 1)))
    metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for pattern in METRIC_FILE_PATTERNS:
        for stale in metrics_dir.glob(pattern):
            stale.unlink(missing_ok=True)


def child_exit(server, worker):
    # Imported here, not above: prometheus-client picks its mode when first imported,
    # and the workers forked from this process must find the variable already set.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if metrics_dir == os.environ.get(TEMPORARY_MARK) and Path(metrics_dir).name.startswith(TEMPORARY_PREFIX):
        shutil.rmtree(metrics_dir, ignore_errors=True)
