"""Stremora's admin site: Django's, with its login throttled like the API's token
requests, and a storage dashboard (``/admin/storage/``, linked from the index).

``admin.site`` is this site (``StremoraAdminConfig`` in ``INSTALLED_APPS``), so the
apps' ``admin.site.register`` and ``@admin.register`` are unchanged.
"""

from django.contrib.admin import AdminSite
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.decorators import login_not_required
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache

from videos.api.throttling import LOGIN_THROTTLES, first_refusal, retry_after


class StremoraAdminSite(AdminSite):
    site_header = "Stremora administration"
    site_title = "Stremora"
    index_title = "Videos and storage"

    @method_decorator(never_cache)
    @login_not_required
    def login(self, request, extra_context=None):
        """Django's login, whose sign-ins count with the API's per client address and
        per username: a refused one is a 429 before any password is hashed."""
        if request.method == "POST":
            refusal = first_refusal([throttle() for throttle in LOGIN_THROTTLES], request)
            if refusal is not None:
                return self.login_throttled(request, retry_after(refusal))
        return super().login(request, extra_context)

    def get_urls(self):
        dashboard = path("storage/", self.admin_view(self.storage_dashboard), name="storage_dashboard")
        return [dashboard, *super().get_urls()]

    def storage_dashboard(self, request):
        """Each provider's state, what it holds, and the uploads and fallbacks of the
        last 30 days: from the database and the breakers' record, no provider called."""
        from videos.dashboard import storage_dashboard  # models: not importable with this module

        context = {**self.each_context(request), "title": "Storage", "dashboard": storage_dashboard()}
        return TemplateResponse(request, "admin/storage_dashboard.html", context)

    def login_throttled(self, request, seconds):
        context = {**self.each_context(request), "title": "Too many login attempts", "retry_after": seconds}
        response = TemplateResponse(request, "admin/login_throttled.html", context, status=429)
        response["Retry-After"] = str(seconds)
        return response


class StremoraAdminConfig(AdminConfig):
    default_site = "stremora.admin_site.StremoraAdminSite"
