"""The project's Celery app as the suite's workers run it (``celery -A tests.worker_app``).

Two changes of time, none of behaviour:

- Redis hands a job whose worker died without acknowledging it to another worker
  after ``VISIBILITY_TIMEOUT`` seconds, looked for every second, instead of after
  hours (production's timeout outlasts the longest move; the suite's take seconds).
- A job's automatic retries wait ``RETRY_TIME_SCALE`` times less: the deployed
  schedule's 30 s, 1 min, 2 min become 3, 6 and 12 s (at most: the jitter picks a
  time below), the number of retries unchanged.

Everything else is ``stremora.celery.app`` as deployed. Only the workers import this
module: importing it changes the app of the process that does.
"""

from celery.app import autoretry

from stremora.celery import app
from tests.stack import RETRY_TIME_SCALE, VISIBILITY_TIMEOUT

app.conf.broker_transport_options = {
    **(app.conf.broker_transport_options or {}),
    "visibility_timeout": VISIBILITY_TIMEOUT,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

_deployed_backoff = autoretry.get_exponential_backoff_interval


def _scaled_backoff(*args, **kwargs):
    return _deployed_backoff(*args, **kwargs) / RETRY_TIME_SCALE


# Looked up by name on each retry (celery.app.autoretry), so the tasks pick it up.
autoretry.get_exponential_backoff_interval = _scaled_backoff
