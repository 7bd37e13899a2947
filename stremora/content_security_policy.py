"""A Content-Security-Policy on every response: scripts only from this site.

Nothing Stremora serves runs inline script (the admin, the public pages, DRF's
browsable API, and the API docs page, whose Swagger UI loads its start-up script as a
file), so ``script-src 'self'`` holds everywhere and an injected ``<script>`` does not
run. Inline styles stay allowed: the public pages, DRF's pages and Swagger UI carry
some, and they cannot run code. Players and posters load from the providers'
delivery hosts, and the admin's upload script sends files to their upload hosts
(direct uploads), all named from the settings. (Django 6.0 brings ``SECURE_CSP``; this
middleware is its few lines for 5.2.)
"""

from urllib.parse import urlsplit

from django.conf import settings


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _s3_origins():
    if not settings.AWS_S3_BUCKET_NAME:
        return []
    # Presigned URLs: the endpoint's own host (path style), or AWS's bucket hosts.
    endpoint = settings.AWS_S3_ENDPOINT_URL
    return [_origin(endpoint) if endpoint else "https://*.amazonaws.com"]


def media_origins():
    """Where video and poster URLs may point besides this site."""
    return " ".join([_origin(settings.CLOUDINARY_DELIVERY_PREFIX), *_s3_origins()])


def upload_origins():
    """Where the admin's upload script may send a file's bytes besides this site."""
    return " ".join([_origin(settings.CLOUDINARY_UPLOAD_PREFIX), *_s3_origins()])


def policy():
    media = media_origins()
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            f"img-src 'self' data: {media}",
            f"media-src 'self' {media}",
            f"connect-src 'self' {upload_origins()}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.DEBUG and response.status_code == 500:
            return response  # Django's debug page: its frame toggles are inline script
        response.headers.setdefault("Content-Security-Policy", policy())
        return response
