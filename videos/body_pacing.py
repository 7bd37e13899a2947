"""A floor rate for request bodies read from gunicorn, and no body taken for complete when it is not.

gunicorn's sync workers read a request body straight from the client's socket, which is
blocking with no timeout: a client that sends one byte every few seconds holds a worker
until gunicorn's ``--timeout`` kills it. Nor does gunicorn complain when the client
closes before its Content-Length: the body just ends early.

``paced_body`` puts a deadline on every ``recv()`` gunicorn makes for the body, the way
Apache's ``RequestReadTimeout body=…,MinRate=…`` does: the body may take
``REQUEST_BODY_TIMEOUT`` seconds plus one second for every ``REQUEST_BODY_MIN_RATE_KB``
kilobytes received. A client slower than that is cut off (``BodyTooSlow``), however it
spreads its bytes; one that closes the connection early is refused (``IncompleteBody``).

The deadline has to sit on each ``recv()``: a socket timeout alone restarts with every
byte, and one ``read()`` of the body loops over as many ``recv()`` calls as it takes to
fill its buffer. gunicorn reads through the ``sock`` of its ``SocketUnreader``, reached
from ``wsgi.input``; other servers (``runserver``) are left as they are.
"""

import logging
import time
from contextlib import contextmanager

from django.conf import settings

logger = logging.getLogger(__name__)


class UnreadableBody(Exception):
    """The request body could not be read whole; nothing of it may be used."""

    status = 400


class BodyTooSlow(UnreadableBody):
    status = 408

    def __init__(self, received, elapsed):
        super().__init__(
            f"The request body arrived too slowly ({received // 1024} KB in {elapsed:.0f} s; this server allows "
            f"{settings.REQUEST_BODY_TIMEOUT:g} s plus one second for every {settings.REQUEST_BODY_MIN_RATE_KB} KB), "
            "so it was cut off. Nothing was stored."
        )


class IncompleteBody(UnreadableBody):
    def __init__(self, content_length):
        super().__init__(
            f"The connection closed before the request body was complete (its Content-Length announced "
            f"{content_length} bytes). Nothing was stored."
        )


class PacedSocket:
    """The client's socket as gunicorn's body reader sees it, with a deadline on each ``recv()``."""

    def __init__(self, sock, content_length, request_line):
        self._sock = sock
        self._content_length = content_length
        self._request_line = request_line
        self._started = time.monotonic()
        self._received = 0

    def _deadline(self):
        min_rate = settings.REQUEST_BODY_MIN_RATE_KB * 1024
        return self._started + settings.REQUEST_BODY_TIMEOUT + self._received / min_rate

    def recv(self, size, *flags):
        remaining = self._deadline() - time.monotonic()
        if remaining <= 0:
            self._refuse(BodyTooSlow(self._received, time.monotonic() - self._started))
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            self._refuse(BodyTooSlow(self._received, time.monotonic() - self._started))
        if not data:
            # gunicorn never reads past the body's end, so an end of stream here is a
            # client that gave up (or lied about its length).
            self._refuse(IncompleteBody(self._content_length))
        self._received += len(data)
        return data

    def _refuse(self, error):
        logger.warning("Request body of %s refused: %s", self._request_line, error)
        raise error

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _gunicorn_unreader(environ):
    """The ``SocketUnreader`` gunicorn reads this request's body through, if served by gunicorn."""
    reader = getattr(environ.get("wsgi.input"), "reader", None)
    # LengthReader and EOFReader keep it as ``unreader``, ChunkedReader on its request.
    unreader = getattr(reader, "unreader", None) or getattr(getattr(reader, "req", None), "unreader", None)
    return unreader if hasattr(unreader, "sock") else None


_warned_unpaced = False


@contextmanager
def paced_body(environ):
    """Pace the body reads of one request (see the module's docstring) while the block runs."""
    global _warned_unpaced
    unreader = _gunicorn_unreader(environ)
    if unreader is None:
        if "gunicorn.socket" in environ and not _warned_unpaced:
            _warned_unpaced = True
            logger.warning("This gunicorn's body reader is not the one known: request bodies are read without a floor rate")
        yield
        return
    sock = unreader.sock
    prior_timeout = sock.gettimeout()
    # The path quoted: a client's %0A must not start a line of its own in the log.
    request_line = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')!r} from {environ.get('REMOTE_ADDR')}"
    unreader.sock = PacedSocket(sock, environ.get("CONTENT_LENGTH") or "no", request_line)
    try:
        yield
    finally:
        unreader.sock = sock
        try:
            sock.settimeout(prior_timeout)
        except OSError:
            pass
