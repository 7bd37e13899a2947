"""What error reports show: Django's debug page (``DEBUG``) and the error e-mails.

Django's own filter blanks settings and request headers by name (``…KEY``,
``…SECRET``, ``…PASS``…). Credentials here also travel inside URLs whose names say
nothing (``CACHES["default"]["LOCATION"]``, ``DATABASE_URL``, ``CLOUDINARY_URL``
in the environment that the development server copies into ``request.META``), so
this filter blanks the user and password part of every URL in any value as well.
"""

import dataclasses
import re
from collections.abc import Mapping

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host → scheme://********************@host. Up to the last
# "@" before any blank, so that a password holding "@" or "/" is covered too:
# hiding a little more than the credentials is the safe way to be wrong.
URL_CREDENTIALS = re.compile(r"\b([a-z][a-z0-9+.-]*://)\S*@", re.IGNORECASE)


class CredentialMaskingFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL|PRIVATE|DSN", flags=re.IGNORECASE
    )

    def is_active(self, request):
        # Django leaves sensitive_variables and sensitive_post_parameters (the admin's
        # login password) visible when DEBUG is on; the development server runs so.
        return True

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        hidden = [name for name in parameters if self.hidden_settings.search(name)]
        if hidden:
            parameters = parameters.copy()
            for name in hidden:
                parameters[name] = self.cleansed_substitute
        return parameters

    def cleanse_setting(self, key, value):
        return self.mask_urls(super().cleanse_setting(key, self.as_dict(value)))

    def as_dict(self, value):
        """Mappings other than dicts (``os.environ``) and dataclasses (``settings.CONFIG``)
        as dicts, so that their entries are blanked by name as a dict's are."""
        try:
            if isinstance(value, Mapping) and not isinstance(value, dict):
                return dict(value)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return {field.name: getattr(value, field.name) for field in dataclasses.fields(value) if field.repr}
        except Exception:
            return "(not shown: could not be read safely)"  # never show what could not be checked
        return value

    def get_traceback_frame_variables(self, request, tb_frame):
        # Local variables get what settings get, their dicts' entries blanked by name too.
        return [
            (name, self.cleanse_setting("", value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

    def mask_urls(self, value):
        """``value`` with the credentials of any URL in it blanked out.

        Strings are masked; containers Django's filter already went through item by
        item; any other object is shown by its masked ``repr`` when that hides something.
        """
        if isinstance(value, str):
            return URL_CREDENTIALS.sub(rf"\1{self.cleansed_substitute}@", value)
        if isinstance(value, (dict, list, tuple)):
            return value
        try:
            shown = repr(value)
        except Exception:
            return value
        masked = URL_CREDENTIALS.sub(rf"\1{self.cleansed_substitute}@", shown)
        return masked if masked != shown else value
