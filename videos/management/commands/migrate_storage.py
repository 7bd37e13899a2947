from django.core.management.base import BaseCommand, CommandError

from storage_backends import providers
from storage_backends.chain import describe_failure
from storage_backends.names import PROVIDER_NAMES
from videos import services
from videos.housekeeping import provider_status
from videos.management.progress import Progress
from videos.management.quiet import quiet_http_libraries
from videos.models import Video

# Seconds the target's check may take, whatever its retries, before the command says it
# cannot be reached (STORAGE_TIMEOUT bounds each of its attempts).
TARGET_CHECK_TIMEOUT = 10.0


class Command(BaseCommand):
    requires_system_checks = []  # check_storage reports the configuration; cron mail stays quiet
    help = (
        "Move videos' files to another provider: copy, verify, switch the row, then delete the old copy. "
        "Safe to interrupt and to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, choices=PROVIDER_NAMES, dest="target", help="Provider to move to.")
        parser.add_argument("--from", choices=PROVIDER_NAMES, dest="source", help="Only videos on this provider.")
        parser.add_argument("--limit", type=int, help="Move at most this many videos.")
        parser.add_argument("--dry-run", action="store_true", help="List what would move, move nothing.")
        parser.add_argument(
            "--queue", action="store_true", help="Hand each video to the job queue (a move_video job) and return."
        )

    def handle(self, *args, target, source=None, limit=None, dry_run=False, queue=False, **options):
        if not providers.is_configured(target):
            raise CommandError(f"The {target} provider is not configured")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be 1 or more")
        with quiet_http_libraries():
            target_status = provider_status(target, timeout=TARGET_CHECK_TIMEOUT)
        if not target_status.reachable:
            raise CommandError(f"The {target} provider cannot be reached, nothing moved: {target_status.detail}")
        videos = Video.objects.exclude(storage_provider=target).order_by("pk")
        if source:
            videos = videos.filter(storage_provider=source)
        ids = list(videos.values_list("pk", flat=True)[:limit])

        if dry_run:
            for video in Video.objects.filter(pk__in=ids).order_by("pk"):
                self.stdout.write(f"would move video {video.pk} ({video.title}) from {video.storage_provider} to {target}")
            self.stdout.write(self.style.SUCCESS(f"{len(ids)} videos would move to {target} (dry run)"))
            return

        if queue:
            outcome = services.queue_moves(Video.objects.filter(pk__in=ids).order_by("pk"), target)
            waiting, moved, failed = outcome.by_status()
            for video in outcome.unsent:
                self.stderr.write(f"video {video.pk}: not queued: the job queue did not answer")
            for video in failed:
                video.refresh_from_db(fields=["move_detail"])
                self.stderr.write(f"video {video.pk}: not moved: {video.move_detail}")
            summary = (
                f"{len(waiting)} queued for a move to {target}, {len(outcome.already_there)} already there, "
                f"{len(outcome.unsent)} not queued"
            )
            if moved or failed:  # no job queue: the moves ran here
                summary += f", {len(moved)} moved here, {len(failed)} failed (no job queue: CELERY_BROKER_URL is unset)"
            if outcome.unsent or failed:
                raise CommandError(summary)
            self.stdout.write(self.style.SUCCESS(summary))
            return

        moved = skipped = failed = 0
        progress = Progress(self.stdout, len(ids), f"Moving to {target}")
        for pk in ids:
            video = Video.objects.filter(pk=pk).first()
            try:
                if video is not None and services.move_video(video, target):
                    moved += 1
                else:
                    skipped += 1  # gone, already there, or being moved by another run
            except Exception as exc:
                failed += 1
                self.stderr.write(f"video {pk}: {describe_failure(exc)}")
            progress.step()
        progress.finish()
        summary = f"{moved} moved to {target}, {skipped} skipped, {failed} failed"
        if failed:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
