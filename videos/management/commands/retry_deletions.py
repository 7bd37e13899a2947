from django.core.management.base import BaseCommand, CommandError

from videos import services
from videos.models import PendingDeletion


class Command(BaseCommand):
    requires_system_checks = []  # check_storage reports the configuration; cron mail stays quiet
    help = "Retry the queued removals of files whose deletion failed; exits non-zero while some remain."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Retry every queued removal now, not only those due.")

    def handle(self, *args, all=False, **options):
        removed, failing = services.retry_pending_deletions(due_only=not all)
        remaining = PendingDeletion.objects.count()
        summary = f"{removed} removed, {failing} failed again, {remaining} still queued"
        for pending in PendingDeletion.objects.all()[:50]:
            self.stdout.write(f"queued: {pending.name} (attempts {pending.attempts}, next {pending.next_attempt_at:%Y-%m-%d %H:%M}): {pending.last_error}")
        if remaining:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
