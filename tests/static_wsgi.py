"""Stremora with its static files served from the apps' folders, as runserver serves
them: a server the tests start for a browser has no collectstatic behind it."""

from django.contrib.staticfiles.handlers import StaticFilesHandler

from stremora.wsgi import application as site

application = StaticFilesHandler(site)
