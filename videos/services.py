"""Operations on videos and their files: the admin, the API and the commands all call these.

The rules they keep, each in one place:

- new files go through the fallback chain before the row is written, and the row
  records the provider that took them (``Video.save``);
- a file that is replaced or whose video is deleted is removed from its provider only
  after the database commits, so a rolled-back change never loses a playing file;
- a removal that fails is queued as a ``PendingDeletion`` and retried later with
  backoff, never forgotten.
"""

import hashlib
import logging
import mimetypes
import posixpath
from dataclasses import dataclass
from datetime import timedelta

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from storage_backends.chain import describe_failure
from storage_backends.errors import FailureKind, ProviderNotConfigured, StorageUnavailable
from storage_backends.names import LEGACY_PROVIDER, provider_of, qualify, split
from videos import job_queue, probe
from videos.models import MoveStatus, PendingDeletion, Processing, StorageProvider, Video, remove_stored_files

logger = logging.getLogger(__name__)

# Retry delays for a failed removal: 1, 2, 4 … minutes, at most a day apart.
RETRY_BASE_DELAY = timedelta(minutes=1)
RETRY_MAX_DELAY = timedelta(days=1)
# A video's processing still pending after this long lost its job: it is asked for again.
PENDING_PROCESSING_GRACE = timedelta(minutes=10)


def describe_file(uploaded_file) -> tuple[int, str]:
    """Size in bytes and MIME type of an uploaded file, the type judged by its name."""
    content_type, _ = mimetypes.guess_type(uploaded_file.name)
    return uploaded_file.size, content_type or "application/octet-stream"


def create_video(*, owner, title, file, thumbnail=None, content_type=None, **fields) -> Video:
    """Store ``file`` (and ``thumbnail``) through the chain and write the video's row."""
    video = Video(owner=owner, title=title, file=file, **fields)
    if thumbnail:
        video.thumbnail = thumbnail
    return save_video(video, file_changed=True, content_type=content_type)


def update_video(video: Video, *, file=None, thumbnail=None, content_type=None, **fields) -> Video:
    """Change a video's metadata, and replace its file or thumbnail when new ones are given."""
    for field_name, value in fields.items():
        setattr(video, field_name, value)
    if file:
        video.file = file
    if thumbnail:
        video.thumbnail = thumbnail
    return save_video(video, file_changed=bool(file), content_type=content_type)


@dataclass(frozen=True)
class DirectlyStoredFile:
    """A video file that its client sent straight to the provider, checked already."""

    name: str  # the stored name, provider prefix included
    size: int
    content_type: str  # by content
    duration: float | None  # when the provider reported one
    probe_source: str | None  # a path or URL ffprobe reads it from; None: the provider cuts posters


def save_video(video: Video, *, file_changed: bool, content_type=None, stored_file: DirectlyStoredFile = None) -> Video:
    """Save ``video``; files it no longer uses are removed once the save commits.

    New files are stored before the database transaction starts: an upload can take
    minutes, and must not hold a transaction (or a connection's state) open meanwhile.
    The admin form assigns the new files itself and calls this; the API goes through
    ``create_video`` and ``update_video``. ``stored_file`` is a new video file already
    on its provider (a direct upload, ``videos.upload_sessions``).
    """
    media_source = duration = None
    if stored_file is not None:
        video.file = stored_file.name
        video.size_bytes, video.content_type = stored_file.size, stored_file.content_type
        media_source, duration, file_changed = stored_file.probe_source, stored_file.duration, True
    elif file_changed and video.file:
        media_source = video.file.file
        size, guessed_type = describe_file(video.file)
        video.size_bytes, video.content_type = size, content_type or guessed_type
    if video.thumbnail and not video.thumbnail._committed:
        video.thumbnail_generated = False  # chosen by the uploader: it always wins
    elif file_changed and video.thumbnail_generated:
        video.thumbnail = None  # a frame of the old file; one of the new file is cut below
        video.thumbnail_generated = False
    stored = video.store_new_files()
    process_later = file_changed and bool(video.file) and job_queue.has_workers()
    try:
        if process_later:
            video.duration_seconds, video.processing, video.processing_error = None, Processing.PENDING, ""
        elif file_changed and video.file:
            stored += _add_media_details(video, media_source, duration)
            video.processing, video.processing_error = Processing.DONE, ""
        ensure_usable_connection()
        with transaction.atomic():
            replaced = _replaced_names(video)
            video.save()
            remove_files_after_commit(replaced)
            if process_later:
                job_queue.send_after_commit("process_upload", video.pk)
    except BaseException:
        remove_stored_files(stored)
        raise
    return video


def ensure_usable_connection():
    """Replace a database connection the server dropped during a long upload.

    Outside a transaction only: inside one, a lost connection is the transaction's
    failure to report.
    """
    if not connection.in_atomic_block and connection.connection is not None and not connection.is_usable():
        logger.info("The database connection was lost during an upload; reconnecting")
        connection.close()


def _add_media_details(video: Video, source, duration=None, *, raise_read_errors=False) -> list:
    """Duration and poster: from Cloudinary's answer, else from ffprobe and ffmpeg
    reading ``source`` (the upload, or the path or URL of the stored file).

    Cloudinary cuts posters on delivery, so only files elsewhere get a poster stored as
    their thumbnail, and never over one the uploader chose. Returns what it stored.
    """
    if duration is None:
        duration = default_storage.upload_details(video.file.name).get("duration")
    video.duration_seconds = duration
    wants_poster = not video.thumbnail and provider_of(video.file.name) != StorageProvider.CLOUDINARY
    if source is not None and (video.duration_seconds is None or wants_poster):
        info = probe.inspect(source, want_poster=wants_poster, raise_read_errors=raise_read_errors)
        if video.duration_seconds is None:
            video.duration_seconds = info.duration
        if wants_poster and info.poster_jpeg:
            stem = posixpath.splitext(posixpath.basename(video.file.name))[0]
            video.thumbnail = ContentFile(info.poster_jpeg, name=f"{stem}-poster.jpg")
            video.thumbnail_generated = True
            return video.store_new_files()
    return []


def process_upload(video_id) -> bool:
    """Duration and poster of a video whose processing is pending, from its stored file;
    whether this run recorded them.

    Safe to run again: a video done already is left alone. The results are written
    only if the video still has the file (and thumbnail) they were found for: when an
    upload replaced it meanwhile, the poster cut here is removed and that upload's own
    job processes the new file. Errors propagate (``jobs.process_upload`` retries).
    """
    video = Video.objects.filter(pk=video_id).first()
    if video is None or video.processing == Processing.DONE or not video.file:
        return False
    file_name, thumbnail_name = video.file.name, video.thumbnail.name or ""
    stored = _add_media_details(video, _readable_source(file_name), raise_read_errors=True)
    try:
        recorded = Video.objects.filter(
            pk=video_id, file=file_name, thumbnail=thumbnail_name, processing__in=(Processing.PENDING, Processing.FAILED)
        ).update(
            duration_seconds=video.duration_seconds,
            thumbnail=video.thumbnail.name or "",
            thumbnail_generated=video.thumbnail_generated,
            processing=Processing.DONE,
            processing_error="",
            updated_at=timezone.now(),
        )
    except BaseException:
        remove_stored_files(stored)
        raise
    if not recorded:
        remove_stored_files(stored)
    return bool(recorded)


def record_processing_failure(video_id, reason) -> None:
    """A video's processing gave up: it stays playable, without duration or poster."""
    Video.objects.filter(pk=video_id, processing=Processing.PENDING).update(
        processing=Processing.FAILED, processing_error=reason, updated_at=timezone.now()
    )


def resend_pending_processing(older_than=PENDING_PROCESSING_GRACE) -> int:
    """Ask again for the processing of videos pending longer than ``older_than`` (its job
    could not be queued, or was lost); returns how many were asked for."""
    pending = Video.objects.filter(processing=Processing.PENDING, updated_at__lt=timezone.now() - older_than)
    ids = list(pending.values_list("pk", flat=True))
    for video_id in ids:
        job_queue.send("process_upload", video_id)
    return len(ids)


def _readable_source(name) -> str:
    """A path or URL from which ffprobe and ffmpeg read the stored file ``name``."""
    try:
        return default_storage.path(name)
    except NotImplementedError:  # not on local disk
        return default_storage.url(name)


def stored_file_url(field_file) -> str:
    """The URL to show for a video's stored file (``video.file``, ``video.thumbnail``).

    The files of a published video have plain URLs; those of an unpublished one URLs
    that expire (``AWS_S3_URL_EXPIRY``), signed where the provider does not sign every
    URL already (local disk), so a link that leaks stops working. Raises
    ProviderNotConfigured when the file's provider lost its settings.
    """
    if field_file.instance.is_published:
        return field_file.url
    return field_file.storage.signed_url(field_file.name)


def file_url(field_file) -> str | None:
    """``stored_file_url``, or None when there is no file, or its provider lost its settings."""
    if not field_file:
        return None
    try:
        return stored_file_url(field_file)
    except ProviderNotConfigured:
        return None


def is_public_file(name: str) -> bool:
    """Whether the stored file ``name`` belongs to a published video (one indexed query)."""
    return Video.objects.filter(Q(file=name) | Q(thumbnail=name), is_published=True).exists()


def poster_url(video: Video) -> str | None:
    """The picture to show for a video: its thumbnail, else a frame its provider cuts."""
    if video.thumbnail:
        return file_url(video.thumbnail)
    if not video.file:
        return None
    try:
        return default_storage.poster_url(video.file.name)
    except ProviderNotConfigured:
        return None


def is_referenced(name: str) -> bool:
    """Whether a video uses the stored file ``name`` (legacy unprefixed names included)."""
    provider, key = split(name)
    names = [qualify(provider, key)]
    if provider == LEGACY_PROVIDER:
        names.append(key)
    return Video.objects.filter(Q(file__in=names) | Q(thumbnail__in=names)).exists()


def delete_video(video: Video) -> None:
    """Delete the row; its files are removed from their providers after the commit.

    The files are those the row names under its lock, not those of ``video`` as it
    was loaded: a job may have recorded a poster since (``process_upload``); one
    recording now waits for the delete, then finds no row and removes its poster.
    """
    with transaction.atomic():
        names = list(_locked_names(video.pk).values())
        video.delete()
        remove_files_after_commit(names)


class MoveError(Exception):
    """A file could not be copied to its new provider, or the copy did not match."""


def move_video(video: Video, to_provider: str) -> bool:
    """Move a video's files to ``to_provider``; returns False when there was nothing to do.

    The row stays locked while its files are copied (other movers skip it); the copies
    are checked by size before the row switches to them, and the old files are
    removed after the commit. Interrupted at any point, the video still plays: the
    worst left behind is an unreferenced copy, which ``cleanup_orphans`` finds.
    """
    copies = []
    try:
        with transaction.atomic():
            locked = Video.objects.select_for_update(skip_locked=True).filter(pk=video.pk).first()
            if locked is None:
                return False  # another mover holds it
            to_move = [
                field_name
                for field_name in ("file", "thumbnail")
                if getattr(locked, field_name) and provider_of(getattr(locked, field_name).name) != to_provider
            ]
            if not to_move:
                return False
            old_names = []
            for field_name in to_move:
                field_file = getattr(locked, field_name)
                new_name = _copy_to(field_file, to_provider)
                copies.append(new_name)
                old_names.append(field_file.name)
                setattr(locked, field_name, new_name)
            locked.storage_provider = to_provider
            locked.save(update_fields=["file", "thumbnail", "storage_provider", "updated_at"])
            remove_files_after_commit(old_names)
    except BaseException:
        for name in copies:
            remove_stored_file(name)
        raise
    video.refresh_from_db()
    return True


@dataclass(frozen=True)
class QueuedMoves:
    """What ``queue_moves`` did: videos queued, already on the target, not queued."""

    queued: list
    already_there: list
    unsent: list

    def by_status(self):
        """The queued videos by how their moves stand now: ``(waiting, moved, failed)``.
        Without a job queue the moves ran inline before ``queue_moves`` returned."""
        statuses = dict(Video.objects.filter(pk__in=[video.pk for video in self.queued]).values_list("pk", "move_status"))
        waiting = [video for video in self.queued if statuses.get(video.pk) in (MoveStatus.QUEUED, MoveStatus.MOVING)]
        moved = [video for video in self.queued if statuses.get(video.pk) == MoveStatus.DONE]
        failed = [video for video in self.queued if statuses.get(video.pk) == MoveStatus.FAILED]
        return waiting, moved, failed


def is_on(video: Video, provider: str) -> bool:
    """Whether every file of ``video`` is stored on ``provider`` (nothing to move)."""
    return all(
        provider_of(field_file.name) == provider for field_file in (video.file, video.thumbnail) if field_file
    )


def queue_moves(videos, to_provider: str) -> QueuedMoves:
    """Ask for a ``move_video`` job per video not on ``to_provider`` yet, each marked
    queued first; the admin's "Move to …" and ``migrate_storage --queue`` use it.

    Without a job queue the moves run inline, one after the other, before this returns.
    """
    queued, already_there, unsent = [], [], []
    for video in videos:
        if is_on(video, to_provider):
            already_there.append(video)
            continue
        record_move(video.pk, MoveStatus.QUEUED, to_provider=to_provider)

        def not_queued(reason, video=video):
            record_move(video.pk, MoveStatus.FAILED, f"Could not queue the move: {reason}")
            unsent.append(video)

        if job_queue.send("move_video", video.pk, to_provider, on_unsent=not_queued):
            queued.append(video)
    return QueuedMoves(queued, already_there, unsent)


def record_move(video_id, status, detail="", *, to_provider=None) -> None:
    """Write how a video's move stands (shown in the admin).

    Not while a mover holds the row (``move_video``'s lock): waiting for it would hold
    a worker for as long as that move takes, and that mover records its own outcome.
    """
    fields = {"move_status": status, "move_detail": detail, "move_updated_at": timezone.now()}
    if to_provider is not None:
        fields["move_target"] = to_provider
    with transaction.atomic():
        if list(Video.objects.select_for_update(skip_locked=True).filter(pk=video_id).values_list("pk", flat=True)):
            Video.objects.filter(pk=video_id).update(**fields)


class MoveInterrupted(Exception):
    """A move failed for a reason that may pass (a provider fault, a copy that did not
    match, another mover holding the video): worth trying again later."""


def run_move(video_id, to_provider: str) -> None:
    """One attempt of a queued move, its status recorded: moving, then done.

    Raises MoveInterrupted (with a credential-free reason) when trying again may
    succeed; any other exception is lasting (the target lost its settings, the
    source file is gone).
    """
    video = Video.objects.filter(pk=video_id).first()
    if video is None:
        return  # deleted meanwhile: nothing left to move
    record_move(video_id, MoveStatus.MOVING, to_provider=to_provider)
    try:
        moved = move_video(video, to_provider)
    except Exception as exc:
        if _worth_retrying(exc):
            raise MoveInterrupted(describe_failure(exc)) from exc
        raise
    if not moved:
        current = Video.objects.filter(pk=video_id).first()
        if current is None:
            return
        if not is_on(current, to_provider):
            raise MoveInterrupted("another move of this video is under way")
    record_move(video_id, MoveStatus.DONE)


def _worth_retrying(exc) -> bool:
    if isinstance(exc, (ProviderNotConfigured, FileNotFoundError)):
        return False
    if isinstance(exc, StorageUnavailable):
        return any(failure.kind in (FailureKind.FAULT, FailureKind.CIRCUIT_OPEN) for failure in exc.failures)
    return True


def _copy_to(field_file, to_provider: str) -> str:
    """Copy a stored file to ``to_provider`` and check the copy by size and, where the
    provider tells one, by MD5; returns the copy's name."""
    name, storage = field_file.name, field_file.storage
    key = storage.portable_key(name)
    with storage.open(name, "rb") as source:
        # The source is a local spooled copy by now: hashing it costs no second download.
        expected_md5, expected_size = hashlib.md5(), 0
        for block in iter(lambda: source.read(1024 * 1024), b""):
            expected_md5.update(block)
            expected_size += len(block)
        source.seek(0)
        new_name = storage.save_on(to_provider, key, source)
    try:
        copied_size, copied_md5 = default_storage.size(new_name), default_storage.md5(new_name)
    except Exception as exc:
        remove_stored_file(new_name)
        raise MoveError(f"Could not check the copy of {name} on {to_provider}: {describe_failure(exc)}") from exc
    if copied_size != expected_size or copied_md5 not in (None, expected_md5.hexdigest()):
        remove_stored_file(new_name)
        raise MoveError(
            f"The copy of {name} on {to_provider} does not match: {copied_size} bytes (MD5 {copied_md5}), "
            f"{expected_size} expected (MD5 {expected_md5.hexdigest()})"
        )
    return new_name


def _locked_names(video_id) -> dict:
    """The stored names a video's row holds, ``{"file": …, "thumbnail": …}`` ({} when it
    is gone), its row locked until the transaction ends: a job recording a poster
    meanwhile waits, then sees what this transaction wrote."""
    return Video.objects.select_for_update().filter(pk=video_id).values("file", "thumbnail").first() or {}


def _replaced_names(video: Video) -> list[str]:
    """Names of the stored files that this save of ``video`` will stop using."""
    if video.pk is None:
        return []
    stored = _locked_names(video.pk)
    current = {"file": video.file.name or "", "thumbnail": video.thumbnail.name or ""}
    return [
        stored[field_name]
        for field_name in ("file", "thumbnail")
        if stored.get(field_name) and stored[field_name] != current[field_name]
    ]


def remove_files_after_commit(names) -> None:
    names = [name for name in names if name]
    if names:
        transaction.on_commit(lambda: [remove_stored_file(name) for name in names])


def remove_stored_file(name: str) -> bool:
    """Remove a stored file from its provider now; queue the removal when that fails.

    Returns whether the file is gone.
    """
    try:
        default_storage.delete(name)
    except Exception as exc:
        reason = describe_failure(exc)
        logger.warning("Could not remove %s, queued for retry: %s", name, reason)
        _queue_removal(name, reason)
        return False
    PendingDeletion.objects.filter(name=name).delete()
    return True


def _queue_removal(name: str, reason: str) -> PendingDeletion:
    pending, _ = PendingDeletion.objects.get_or_create(
        name=name, defaults={"provider": provider_of(name), "next_attempt_at": timezone.now()}
    )
    pending.attempts += 1
    pending.last_error = reason
    pending.next_attempt_at = timezone.now() + retry_delay(pending.attempts)
    pending.save(update_fields=["attempts", "last_error", "next_attempt_at"])
    return pending


def queue_uncertain_file(sender, *, name, reason, **kwargs) -> None:
    """Receives ``storage_backends.signals.store_uncertain``: a provider failed an upload
    in a way that does not say the file is not there (its answer may have been lost).

    No video uses that name (the upload went on to another provider, or failed), so
    its removal is queued, first tried after ``RETRY_BASE_DELAY``: by then a write
    that was only slow has landed. Removing a file that never landed succeeds.
    """
    ensure_usable_connection()  # idle while the provider failed to answer: it may have been dropped
    with transaction.atomic():  # a savepoint: a failed insert spoils no transaction around the upload
        PendingDeletion.objects.get_or_create(
            name=name,
            defaults={
                "provider": provider_of(name),
                "last_error": f"An upload failed after the file may have reached the provider: {reason}",
                "next_attempt_at": timezone.now() + RETRY_BASE_DELAY,
            },
        )


def retry_delay(attempts: int) -> timedelta:
    return min(RETRY_BASE_DELAY * 2 ** max(attempts - 1, 0), RETRY_MAX_DELAY)


def retry_pending_deletions(*, due_only=True) -> tuple[int, int]:
    """Try the queued removals again: ``(removed, still_failing)``."""
    queue = PendingDeletion.objects.all()
    if due_only:
        queue = queue.filter(next_attempt_at__lte=timezone.now())
    removed = failing = 0
    for pending in queue.iterator():
        if is_referenced(pending.name):
            # A video uses the file again (a move was undone, say): it must stay.
            pending.delete()
            continue
        if remove_stored_file(pending.name):
            removed += 1
        else:
            failing += 1
    return removed, failing
