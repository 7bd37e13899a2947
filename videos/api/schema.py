"""The OpenAPI schema: drf-spectacular's, with every error answer an operation can give.

The answers DRF gives to any operation of a kind (an unknown token, a throttled client,
a missing object, a bad filter or page, a body refused) are added here from what the
view is; those only some operations give (a direct upload's 409 or 410, storage's 503)
are named on the view with ``extend_schema(responses={..., **errors.answers(...)})``.
How each one reads is in ``videos.api.errors.ANSWERS``.
"""

from drf_spectacular import openapi
from rest_framework.permissions import SAFE_METHODS

from videos.api import errors
from videos.upload_limits import max_upload_bytes

BODY_METHODS = {"POST", "PUT", "PATCH"}
RETRY_AFTER_HEADER = {
    "schema": {"type": "integer", "minimum": 0},
    "description": "Seconds to wait before asking again.",
}


class AutoSchema(openapi.AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        added = self.error_statuses() - {int(code) for code in responses if code.isdigit()}
        for status_code in added:
            responses[str(status_code)] = self._get_response_for_code(errors.ANSWERS[status_code], str(status_code))
        declared = self.get_response_serializers()
        declared = declared if isinstance(declared, dict) else {}
        shared = added | {int(code) for code, answer in declared.items() if answer is errors.ANSWERS.get(int(code))}
        for status_code in shared:
            response = responses[str(status_code)]
            if status_code in errors.RETRY_AFTER:
                response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
            if status_code in errors.PLAIN_TEXT and self.method in BODY_METHODS:
                response["content"]["text/plain"] = {"schema": {"type": "string"}}
        return dict(sorted(responses.items()))

    def _get_filter_parameters(self):
        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            parameter["allowEmptyValue"] = True  # as a form sends it: ?owner= filters nothing
        return parameters

    def error_statuses(self):
        """The error answers DRF and the request-body middleware give this operation."""
        statuses = {401}  # an unknown token is refused whatever the operation
        if self.view.get_throttles():
            statuses.add(429)
        if self.method not in SAFE_METHODS:
            statuses.add(403)
        if self.method in BODY_METHODS:
            statuses |= {400, 411, 413, 415}
        if "{" in self.path:
            statuses.add(404)
        if self.method == "GET" and self._is_list_view() and getattr(self.view, "pagination_class", None):
            statuses |= {400, 404}  # a bad filter value; a page past the last
        return statuses


def document_limits(result, generator, request, public):
    """Postprocessing hook: the limits that come from settings, read when the schema is made."""
    schemas = result.get("components", {}).get("schemas", {})
    if "UploadStartRequest" in schemas:
        schemas["UploadStartRequest"]["properties"]["size"]["maximum"] = max_upload_bytes()
    return result
