"""How many of one machine's web workers may wait on a storage provider at once.

A gunicorn sync worker serves one request at a time. A provider that answers slowly
(S3 behind a saturated link, a Cloudinary outage that runs into its timeouts) would
hold every worker that asks it something, and the site would stop answering anything
else, its health check and its pages included. So the requests that wait on a
provider while a client waits for them (starting a direct upload, completing one in
the request) first take one of ``PROVIDER_WAIT_SLOTS`` slots. With none free they are
refused at once (``ProvidersBusy``: 503 with ``Retry-After``) and the client asks
again a moment later; the other workers stay free for the rest.

The slots are files in a directory that the machine's workers share, each held with
``flock`` by the request using it: the kernel frees the slot of a process that dies,
so a killed worker never keeps one. Unset (``runserver``, the tests, Celery workers)
there is no limit; under gunicorn, ``gunicorn.conf.py`` sets it to half its workers
(at least one).
"""

import contextlib
import fcntl
import hashlib
import os
import random
import tempfile
from pathlib import Path

from django.conf import settings

# Seconds a refused request is told to wait: a provider call that holds a slot takes a
# fraction of a second when the provider is well, so a slot frees soon.
RETRY_AFTER = 1


class ProvidersBusy(Exception):
    """Every slot is held: the request is refused before it calls a provider."""

    retry_after = RETRY_AFTER

    def __init__(self):
        super().__init__(
            "The server is busy waiting on its storage providers for other uploads; "
            f"try again in {RETRY_AFTER} s."
        )


def slots_directory() -> Path:
    """One directory per site on the machine, named after the project and its database,
    so that two sites served from one machine do not share their slots."""
    site = f"{settings.BASE_DIR}|{settings.DATABASES['default'].get('NAME')}"
    digest = hashlib.sha256(site.encode()).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / f"stremora-provider-slots-{os.getuid()}-{digest}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


@contextlib.contextmanager
def provider_slot():
    """Hold one slot for the ``with`` block, or raise ProvidersBusy when none is free."""
    count = settings.PROVIDER_WAIT_SLOTS
    if not count:
        yield
        return
    directory = slots_directory()
    # Starting from a random slot spreads the workers over the files: each try is one
    # open() and one flock() that does not wait.
    first = random.randrange(count)
    for number in [*range(first, count), *range(first)]:
        descriptor = os.open(directory / f"slot-{number}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        try:
            yield
        finally:
            os.close(descriptor)  # closing the only descriptor of the file releases its lock
        return
    raise ProvidersBusy()
