"""The Celery app of Stremora's background jobs (``videos.jobs``).

``celery -A stremora worker`` runs them, ``celery -A stremora beat`` sends the
periodic ones; settings are Django's ``CELERY_*`` (``stremora.settings``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stremora.settings")

app = Celery("stremora")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(related_name="jobs")
