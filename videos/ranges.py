"""File responses that honour a single HTTP byte range, so players can seek."""

import mimetypes
import os
import re

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.http import http_date

RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK_SIZE = 256 * 1024


def parse_range(header, size):
    """``(first, last)`` of a single-range header within ``size`` bytes.

    None when there is no usable header (serve everything); ValueError when the range
    cannot be satisfied.
    """
    match = RANGE_PATTERN.match((header or "").strip())
    if not match or not any(match.groups()):
        return None
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    else:
        first, last = max(size - int(last_text), 0), size - 1
    if first >= size or first > last:
        raise ValueError("unsatisfiable range")
    return first, last


def _read_slice(handle, first, length):
    with handle:
        handle.seek(first)
        remaining = length
        while remaining > 0:
            block = handle.read(min(CHUNK_SIZE, remaining))
            if not block:
                break
            remaining -= len(block)
            yield block


def ranged_file_response(request, path):
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    stat = os.stat(path)
    size = stat.st_size
    try:
        requested = parse_range(request.headers.get("Range"), size)
    except ValueError:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    if requested is None or request.method == "HEAD":
        response = FileResponse(open(path, "rb"), content_type=content_type)
    else:
        first, last = requested
        response = StreamingHttpResponse(
            _read_slice(open(path, "rb"), first, last - first + 1), status=206, content_type=content_type
        )
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Content-Length"] = str(last - first + 1)
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = http_date(stat.st_mtime)
    return response
