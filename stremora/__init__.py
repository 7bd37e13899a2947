# The Celery app is loaded with Django, so that jobs sent from the web process use it.
from stremora.celery import app as celery_app

__all__ = ("celery_app",)
