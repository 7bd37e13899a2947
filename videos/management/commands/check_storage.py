from django.core.management.base import BaseCommand, CommandError

from videos.housekeeping import missing_files, provider_statuses
from videos.management.progress import Progress
from videos.management.quiet import quiet_http_libraries
from videos.models import Video


class Command(BaseCommand):
    requires_system_checks = []  # check_storage reports the configuration; cron mail stays quiet
    help = "Check each storage provider (configured, reachable, credentials good) and, optionally, every video's files."

    def add_arguments(self, parser):
        parser.add_argument(
            "--verify-files", action="store_true", help="Also check that each video's files are where the database says."
        )

    def handle(self, *args, verify_files=False, **options):
        with quiet_http_libraries():
            self.report(verify_files)

    def report(self, verify_files):
        statuses = provider_statuses()
        self.stdout.write(f"{'provider':<11} {'in chain':<9} {'configured':<11} {'reachable':<10} detail")
        for status in statuses:
            reachable = "-" if status.reachable is None else ("yes" if status.reachable else "NO")
            self.stdout.write(
                f"{status.name:<11} {'yes' if status.in_chain else 'no':<9} "
                f"{'yes' if status.configured else 'no':<11} {reachable:<10} {status.detail}"
            )
        failing = [status.name for status in statuses if not status.ok]
        problems = list(failing)
        if not any(status.in_chain and status.configured and status.reachable for status in statuses):
            problems.append("no provider in the chain can store files")

        missing = []
        if verify_files:
            videos = Video.objects.only("id", "title", "file", "thumbnail", "storage_provider")
            progress = Progress(self.stdout, videos.count(), "Verifying files")
            for video in videos.iterator():
                for name in missing_files(video):
                    missing.append(f"video {video.pk} ({video.title}): {name}")
                progress.step()
            progress.finish()
            for line in missing:
                self.stderr.write(f"Missing: {line}")

        summary = f"{len(statuses)} providers checked, {len(failing)} with problems"
        if verify_files:
            summary += f"; {len(missing)} missing files"
        if problems or missing:
            raise CommandError(summary + (": " + "; ".join(problems) if problems else ""))
        self.stdout.write(self.style.SUCCESS(summary))
