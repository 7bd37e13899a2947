"""Direct uploads: the client sends a video's bytes straight to a provider, and the
server signs, then checks what arrived before it writes the video's row.

The API (``/api/uploads/``) and the admin's upload script both go through here:

- ``start_upload`` picks the first provider of ``STORAGE_PROVIDERS`` that is
  configured, can take direct uploads (``storage_backends.direct``) and whose breaker
  lets it through, and opens the upload there under a name chosen as a proxied upload's;
- ``fail_over``: the client could not reach its target. The server checks the provider
  itself (a cheap call, briefly) and counts a failure against it only when that check
  fails too; the upload moves to the next provider either way;
- ``complete`` never trusts the client: the provider must hold the file, of the
  declared size, within ``MAX_UPLOAD_MB``, a video by its first bytes. A file that
  fails a check is removed. Then the row is written as a proxied upload writes it
  (``services.save_video``), so URLs, deletes, moves and housekeeping work unchanged.
  ``complete_later`` does the same in the background (a job, or a thread without a
  job queue), so that a web worker does not wait while the provider joins a large
  file's parts;
- ``sweep_expired``: sessions past ``UPLOAD_SESSION_TTL`` are abandoned, and what they
  left on their providers removed (``cleanup_orphans``).
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from storage_backends import providers, signals
from storage_backends.breaker import Admission, CircuitBreaker
from storage_backends.chain import describe_failure
from storage_backends.direct import DirectUploadRefused
from storage_backends.errors import FailureKind, ProviderFailure, ProviderNotConfigured
from storage_backends.faults import is_provider_fault
from storage_backends.names import qualify
from videos import background, completion_times, job_queue, services
from videos.upload_limits import max_upload_bytes, too_large_for_providers
from videos.models import UploadSession, Video
from videos.validators import SNIFF_BYTES, clean_file_name, validate_video_name, video_type_of

logger = logging.getLogger(__name__)

Status = UploadSession.Status
# Uploads one user may have open at once: each may hold up to MAX_UPLOAD_MB of partial
# data on a provider until it expires.
OPEN_UPLOADS_PER_USER = 20
# A completion still claimed after this long was cut off (its process died): another
# request may take it over.
COMPLETION_CLAIM_TIMEOUT = timedelta(minutes=10)
# How long the server's own check of a provider a client could not reach may take.
PROVIDER_CHECK_TIMEOUT = 5.0


class UploadRefused(Exception):
    """The request does not fit the upload; ``status`` is the HTTP status to answer."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class NoProviderAvailable(Exception):
    """No provider is left to take the upload: try again after ``retry_after`` seconds."""

    def __init__(self, message="No storage provider can take the upload now. Try again later."):
        super().__init__(message)
        self.retry_after = settings.STORAGE_BREAKER_COOLDOWN


class ProviderUnreachable(Exception):
    """The upload's provider did not answer the server; nothing was changed."""

    def __init__(self, provider):
        super().__init__(f"The {provider} provider did not answer; try again shortly.")


def _too_large(size):
    return UploadRefused(
        f"The file is {filesizeformat(size)}, larger than the limit of {settings.MAX_UPLOAD_MB} MB.", status=413
    )


def _direct_uploads(provider):
    return getattr(providers.get_storage(provider), "direct_uploads", None)


def _provider_call(provider, operation, *args, **kwargs):
    """``operation`` of ``provider``'s direct uploads, a call to the provider, timed as
    the chain times its own (``stremora_provider_call_seconds``, ``direct_<operation>``)."""
    with signals.timed(provider, f"direct_{operation}"):
        return getattr(_direct_uploads(provider), operation)(*args, **kwargs)


# -- starting and moving on ---------------------------------------------------


def start_upload(owner, *, filename, size, content_type, part_checksum="") -> UploadSession:
    """Open a direct upload of ``size`` bytes; raises UploadRefused or NoProviderAvailable.

    ``part_checksum`` ``"crc32"``: the client will send each part's CRC32 for the
    provider to check (S3's parts; a target without parts ignores it)."""
    try:
        validate_video_name(filename)
    except ValidationError as exc:
        raise UploadRefused(exc.messages[0]) from None
    if size > max_upload_bytes():
        raise _too_large(size)
    open_uploads = UploadSession.objects.still_open().filter(owner=owner, expires_at__gt=timezone.now()).count()
    if open_uploads >= OPEN_UPLOADS_PER_USER:
        raise UploadRefused(
            f"You have {open_uploads} uploads open, the most one account may have: "
            "complete or abandon (DELETE /api/uploads/ID/) one first.",
            status=429,
        )
    filename = clean_file_name(filename)
    name = Video._meta.get_field("file").generate_filename(None, filename)
    session = UploadSession(
        owner=owner,
        filename=filename,
        size=size,
        content_type=content_type,
        part_checksum=part_checksum,
        key=default_storage.get_available_name(name, max_length=Video._meta.get_field("file").max_length),
        expires_at=timezone.now() + timedelta(seconds=settings.UPLOAD_SESSION_TTL),
    )
    try:
        _open_on_next_provider(session)
    except NoProviderAvailable:
        signals.send(signals.store_failed, name=session.key, failures=_failures(session), via="direct")
        raise
    session.save()
    return session


def _open_on_next_provider(session):
    """Start ``session`` on the first provider that takes it; NoProviderAvailable if none,
    UploadRefused (413) when the file is larger than every candidate takes."""
    candidates = [
        provider
        for provider in settings.STORAGE_PROVIDERS
        if providers.is_configured(provider) and _direct_uploads(provider)
    ]
    fitting = [provider for provider in candidates if providers.takes_size(provider, session.size)]
    if candidates and not fitting:
        largest = max(providers.max_bytes(provider) for provider in candidates)
        raise UploadRefused(too_large_for_providers(session.size, largest), status=413)
    for provider in candidates:
        if provider in _left(session):
            continue
        if provider not in fitting:
            logger.info(
                "Storage provider %s skipped for the direct upload of %s: %s bytes, above its %s MB",
                provider, session.key, session.size, providers.max_bytes(provider) // (1024 * 1024),
            )
            continue
        breaker = CircuitBreaker(provider)
        admission = breaker.admit()
        if admission.skips:
            continue
        try:
            if admission is Admission.TRIAL:
                providers.check(provider)
            started = _provider_call(
                provider, "start", session.key, session.size, session.content_type,
                expires_at=session.expires_at, part_checksum=session.part_checksum,
            )
        except Exception as exc:
            if is_provider_fault(exc):
                breaker.record_failure(describe_failure(exc))
            elif admission is Admission.TRIAL:
                breaker.release_trial()
            logger.warning(
                "Storage provider %s could not start a direct upload of %s, trying the next one: %s",
                provider, session.key, describe_failure(exc),
            )
            session.tried.append({"provider": provider, "state": None, "removed": True})
            continue
        if admission is Admission.TRIAL:
            breaker.record_success()
        session.provider, session.state = provider, started.state
        return
    raise NoProviderAvailable()


def _stored_name(provider, key):
    """The stored name of the file an upload to ``key`` on ``provider`` makes (Cloudinary's carries its folder)."""
    try:
        direct = _direct_uploads(provider)
    except ProviderNotConfigured:
        return qualify(provider, key)
    return qualify(provider, direct.stored_key(key) if direct else key)


def _left(session):
    return {attempt["provider"] for attempt in session.tried}


def fail_over(session, reason) -> UploadSession:
    """The client could not reach its target: move the upload to the next provider.

    The row stays locked meanwhile (a few seconds at most), so two reports of one
    upload move it once. What the client sent is removed from the provider, unless the
    provider failed the server's check too: then the expired-upload sweep removes it. With no provider left the upload ends (NoProviderAvailable):
    the client starts a new one after the time it is told.
    """
    with transaction.atomic():
        session = UploadSession.objects.select_for_update().get(pk=session.pk)
        check_open(session)
        provider = session.provider
        logger.warning("A client could not reach %s for upload %s: %s", provider, session.pk, (reason or "")[:200])
        breaker = CircuitBreaker(provider)
        if breaker.is_open():
            answers = False  # known to be failing: no check to wait for, nothing more to count
        else:
            answers = _provider_answers(provider)
            if not answers and breaker.record_failure("failed its check after a client could not reach it"):
                logger.warning(
                    "Storage provider %s failed its check after a client's report (circuit opened)", provider
                )
        if answers:
            removed = _remove_quietly(session)
        else:
            # Removing it would wait out the provider's timeout too: the expired-upload
            # sweep (cleanup_orphans) removes it once the provider answers again.
            logger.warning(
                "Left the direct upload %s on %s for cleanup_orphans to remove: it did not answer its check",
                session.key, provider,
            )
            removed = False
        session.tried.append({"provider": provider, "state": session.state, "removed": removed})
        try:
            _open_on_next_provider(session)
            none_left = None
        except NoProviderAvailable as exc:
            none_left = exc
            if removed:
                session.status = Status.ABANDONED
        session.save()
    if none_left:
        signals.send(signals.store_failed, name=session.key, failures=_failures(session), via="direct")
        raise none_left
    return session


def _failures(session):
    """The providers the upload left, as the chain reports those it fell back from."""
    return tuple(
        ProviderFailure(attempt["provider"], "the direct upload moved on from it", FailureKind.FAULT)
        for attempt in session.tried
    )


def _provider_answers(provider):
    """The provider's cheap check, within PROVIDER_CHECK_TIMEOUT; False when it fails."""
    try:
        providers.check_within(provider, PROVIDER_CHECK_TIMEOUT)
    except TimeoutError:
        logger.warning("Storage provider %s did not answer its check within %s s", provider, PROVIDER_CHECK_TIMEOUT)
        return False
    except Exception as exc:
        logger.warning("Storage provider %s failed its check: %s", provider, describe_failure(exc))
        return False
    return True


def _remove_quietly(session, provider=None, state=None):
    """Remove what an upload left on a provider; whether that worked."""
    provider = provider or session.provider
    try:
        _provider_call(provider, "abort", session.key, session.state if state is None else state)
    except Exception as exc:
        logger.warning(
            "Could not remove the direct upload %s from %s (cleanup_orphans will): %s",
            session.key, provider, describe_failure(exc),
        )
        return False
    return True


# -- while the bytes travel ---------------------------------------------------


def check_open(session):
    """Raise UploadRefused unless the session still takes bytes and requests."""
    if session.status == Status.COMPLETED or (session.status == Status.COMPLETING and not _claim_is_stale(session)):
        raise UploadRefused("This upload is being completed or is completed already.", status=409)
    if session.status in (Status.ABANDONED, Status.EXPIRED) or session.expires_at <= timezone.now():
        raise UploadRefused(
            "This upload expired or was abandoned; start a new one with POST /api/uploads/.", status=410
        )


def _claim_is_stale(session):
    return session.claimed_at is None or session.claimed_at < timezone.now() - COMPLETION_CLAIM_TIMEOUT


def target(session) -> dict:
    """The session's target as its client needs it now (signatures made afresh)."""
    return _direct_uploads(session.provider).target(session.key, session.state, expires_at=session.expires_at)


def received(session):
    """What the provider holds of the upload (``storage_backends.direct.Received``)."""
    try:
        return _provider_call(session.provider, "received", session.key, session.state)
    except Exception as exc:
        logger.warning("Could not ask %s what upload %s holds: %s", session.provider, session.pk, describe_failure(exc))
        raise ProviderUnreachable(session.provider) from exc


def sign_parts(session, numbers, checksums=None) -> list:
    check_open(session)
    try:
        return _direct_uploads(session.provider).sign_parts(
            session.key, session.state, numbers, expires_at=session.expires_at, checksums=checksums
        )
    except DirectUploadRefused as exc:
        raise UploadRefused(str(exc)) from None


def receive_chunk(session, *, start, end, total, stream) -> int:
    """Take the bytes ``start``..``end`` (inclusive) of ``total`` for a target the server
    itself receives; returns the bytes held."""
    check_open(session)
    if total != session.size:
        raise UploadRefused(f"The chunk's total size {total} is not the upload's declared size {session.size}.")
    try:
        return _direct_uploads(session.provider).receive(
            session.key, session.state, start, stream, end - start + 1, total
        )
    except DirectUploadRefused as exc:
        raise UploadRefused(str(exc)) from None


# -- completing and abandoning ------------------------------------------------


def complete(session, *, video=None, parts=None, public_id=None, **fields):
    """Check the uploaded file and write it to ``video`` (a new one for the session's
    owner when None); returns ``(video, created)``.

    Raises UploadRefused when the provider holds no such file (400: send it first),
    when the client's report does not fit (400), or when the file fails a check (400,
    413: the file is removed and the upload closed); ProviderUnreachable when the
    provider did not answer. The session is claimed first: a second ``complete``
    running at the same time is refused (409).
    """
    _claim(session)
    return _complete_claimed(session, video=video, parts=parts, public_id=public_id, **fields)


def complete_later(session, *, video=None, parts=None, public_id=None, **fields):
    """``complete`` in the background: the session is claimed now, and its ``status``
    (and ``video``, or ``error``) tell the outcome.

    With a job queue a worker completes it (``jobs.complete_upload``); without one, a
    thread of this process (``videos.background``), so the request answers at once.
    """
    completion = {"video": video.pk if video is not None else None, "parts": parts, "public_id": public_id,
                  "fields": fields}
    _claim(session, completion=completion)
    if not job_queue.has_workers():
        background.run(complete_asked, session.pk)
        return session

    def not_queued(reason):
        UploadSession.objects.filter(pk=session.pk, status=Status.COMPLETING).update(
            status=Status.UPLOADING,
            error={"status": 503, "detail": "The upload could not be completed now; ask again to complete it."},
        )

    job_queue.send_after_commit("complete_upload", str(session.pk), on_unsent=not_queued)
    session.refresh_from_db()
    return session


def complete_asked(session_id):
    """Complete the upload as ``complete_later`` asked; its outcome is recorded on the
    session. Asked again (a job run twice), a session no longer being completed is left
    alone."""
    session = UploadSession.objects.select_related("owner").filter(pk=session_id).first()
    if session is None or session.status != Status.COMPLETING:
        return
    asked = session.completion
    video = Video.objects.filter(pk=asked["video"]).first() if asked["video"] else None
    try:
        _complete_claimed(
            session, video=video, parts=asked["parts"], public_id=asked["public_id"], **asked["fields"]
        )
    except UploadRefused as exc:
        _record_error(session, exc.status, str(exc))
    except ProviderUnreachable as exc:
        _record_error(session, 503, str(exc))
    except Exception:
        logger.exception("Completing upload %s failed", session_id)
        _record_error(session, 503, "The upload could not be completed; ask again to complete it.")


def completion_retry_after(session):
    """Seconds after which the client should ask again how the completion of
    ``session`` goes, or None when the server cannot tell (``completion_times``)."""
    if session.status != Status.COMPLETING:
        return None
    elapsed = (timezone.now() - session.claimed_at).total_seconds() if session.claimed_at else 0.0
    return completion_times.retry_after(session.provider, session.size, elapsed)


def _record_error(session, status, detail):
    UploadSession.objects.filter(pk=session.pk).update(error={"status": status, "detail": detail})


def _claim(session, **also):
    """Mark the session as being completed, with the fields in ``also``, or UploadRefused
    (409) when another request has it. A claim older than COMPLETION_CLAIM_TIMEOUT (its
    process died) is taken over."""
    check_open(session)
    now = timezone.now()
    claim = {"status": Status.COMPLETING, "claimed_at": now, "error": None, **also}
    stale = Q(status=Status.COMPLETING, claimed_at__lt=now - COMPLETION_CLAIM_TIMEOUT)
    if not UploadSession.objects.filter(Q(status=Status.UPLOADING) | stale, pk=session.pk).update(**claim):
        raise UploadRefused("This upload is being completed or is completed already.", status=409)
    for field_name, value in claim.items():
        setattr(session, field_name, value)


def _complete_claimed(session, *, video=None, parts=None, public_id=None, **fields):
    started = time.monotonic()
    try:
        stored_file = _finish_and_check(session, parts=parts, public_id=public_id)
        created = video is None or video.pk is None
        if video is None:
            video = Video(owner=session.owner)
        for field_name, value in fields.items():
            setattr(video, field_name, value)
        services.save_video(video, file_changed=True, stored_file=stored_file)
    except BaseException:
        if session.status == Status.COMPLETING:
            _set_status(session, Status.UPLOADING)
        raise
    signals.send(signals.file_stored, provider=session.provider, name=stored_file.name, size=stored_file.size,
                 failures=_failures(session), via="direct")
    session.video = video
    _set_status(session, Status.COMPLETED, "video")
    completion_times.record(session.provider, session.size, time.monotonic() - started)
    return video, created


def _finish_and_check(session, *, parts, public_id):
    direct = _direct_uploads(session.provider)
    try:
        finished = _provider_call(
            session.provider, "finish", session.key, session.state, {"parts": parts, "public_id": public_id}
        )
    except FileNotFoundError:
        raise UploadRefused(
            "The provider holds no file for this upload: send its bytes to the target before completing it."
        ) from None
    except DirectUploadRefused as exc:
        raise UploadRefused(str(exc)) from None
    except Exception as exc:
        logger.warning("Could not finish upload %s on %s: %s", session.pk, session.provider, describe_failure(exc))
        raise ProviderUnreachable(session.provider) from exc
    try:
        content_type = _check_finished(session, finished.size)
    except UploadRefused:
        _remove_quietly(session)
        _set_status(session, Status.ABANDONED)
        raise
    return services.DirectlyStoredFile(
        name=_stored_name(session.provider, session.key),
        size=finished.size,
        content_type=content_type,
        duration=finished.details.get("duration"),
        probe_source=direct.probe_source(session.key),
    )


def _check_finished(session, size):
    """The file's type by content, or UploadRefused naming what is wrong with it."""
    if size > max_upload_bytes():
        raise _too_large(size)
    if size != session.size:
        raise UploadRefused(
            f"The provider holds {size} bytes of this upload, but {session.size} were declared; "
            "the file was removed. Start the upload again."
        )
    try:
        head = _provider_call(session.provider, "read_head", session.key, SNIFF_BYTES)
    except Exception as exc:
        raise ProviderUnreachable(session.provider) from exc
    try:
        return video_type_of(head)
    except ValidationError as exc:
        raise UploadRefused(f"{exc.messages[0]} It was removed.") from None


def abandon(session) -> None:
    """Stop an upload and remove what it left on its provider."""
    if session.status == Status.COMPLETED:
        raise UploadRefused("This upload is completed: delete its video instead.", status=409)
    if session.status in (Status.UPLOADING, Status.COMPLETING) and not _remove_quietly(session):
        raise ProviderUnreachable(session.provider)
    _set_status(session, Status.ABANDONED)


def sweep_expired(now=None, *, remove=True):
    """Sessions past their time that no ``complete`` took: remove what they left on
    their providers (with ``remove``) and mark them expired. Returns
    ``(sessions, removed, failed)``: expired sessions found, and the leftovers removed
    and not removed."""
    now = now or timezone.now()
    expired = UploadSession.objects.still_open().filter(expires_at__lte=now)
    sessions = removed = failed = 0
    for session in expired.iterator():
        sessions += 1
        if not remove:
            continue
        leftovers = [(session.provider, session.state)] + [
            (attempt["provider"], attempt["state"]) for attempt in session.tried if not attempt["removed"]
        ]
        all_removed = True
        for provider, state in leftovers:
            if services.is_referenced(_stored_name(provider, session.key)):
                continue  # a video took the file after all
            if _remove_quietly(session, provider=provider, state=state):
                removed += 1
            else:
                failed += 1
                all_removed = False
        if all_removed:
            UploadSession.objects.still_open().filter(pk=session.pk).update(status=Status.EXPIRED)
    return sessions, removed, failed


def _set_status(session, status, *also):
    session.status = status
    session.save(update_fields=["status", *also])
