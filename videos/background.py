"""Work a request hands off so that it can answer at once: a few threads of this process.

A direct upload's completion waits for its provider (S3 may take a while to join a
large object's parts): handed off here, it holds no web worker meanwhile. The work
starts once the request's transaction commits, and each piece of work closes its
database connections when done. A process that dies takes its unfinished work with
it; what was handed off must be safe to ask for again (see ``upload_sessions``).
"""

import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connections, transaction

logger = logging.getLogger(__name__)

THREADS = 2
_executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="stremora-background")


def run(function, *args):
    """Run ``function(*args)`` on a background thread once the current transaction commits."""

    def work():
        close_old_connections()
        try:
            function(*args)
        except Exception:
            logger.exception("Background work %s failed", getattr(function, "__name__", function))
        finally:
            connections.close_all()

    transaction.on_commit(lambda: _executor.submit(work))
