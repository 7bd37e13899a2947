from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from storage_backends import providers
from storage_backends.chain import describe_failure
from storage_backends.names import PROVIDER_NAMES, qualify
from videos.housekeeping import find_orphans, record_sweep
from videos.management.progress import Progress
from videos.services import is_referenced
from videos.upload_sessions import sweep_expired


class Command(BaseCommand):
    requires_system_checks = []  # check_storage reports the configuration; cron mail stays quiet
    help = (
        "List the files a provider holds that no video references and that are older than the grace "
        "period, and the direct uploads that expired; delete them with --delete."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", choices=PROVIDER_NAMES, help="Only this provider (default: every configured one).")
        parser.add_argument(
            "--older-than", type=float, default=24, metavar="HOURS",
            help="Grace period: younger files may belong to uploads in flight (default 24).",
        )
        parser.add_argument("--delete", action="store_true", help="Delete the orphans (default: only list them).")

    def handle(self, *args, provider=None, older_than=24, delete=False, **options):
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more hours")
        names = [provider] if provider else [name for name in PROVIDER_NAMES if providers.is_configured(name)]
        expired, removed, failed = sweep_expired(remove=delete)
        if expired:
            self.stdout.write(
                f"{expired} expired direct uploads"
                + (f": {removed} leftovers removed, {failed} not removed" if delete else " (use --delete to remove what they left)")
            )
        found = deleted = 0
        found_bytes = deleted_bytes = 0
        for name in names:
            if not providers.is_configured(name):
                raise CommandError(f"The {name} provider is not configured")
            try:
                orphans = list(find_orphans(name, older_than))
            except Exception as exc:
                self.stderr.write(f"{name}: could not list files: {describe_failure(exc)}")
                failed += 1
                continue
            progress = Progress(self.stdout, len(orphans), f"{name} orphans")
            deleted_before = deleted
            for orphan in orphans:
                found += 1
                found_bytes += orphan.size
                self.stdout.write(f"{name}:{orphan.key}  {filesizeformat(orphan.size)}  {orphan.modified:%Y-%m-%d %H:%M}")
                if delete:
                    if is_referenced(qualify(name, orphan.key)):
                        self.stdout.write(f"  kept: a video uses {orphan.key} now")
                    else:
                        try:
                            providers.get_storage(name).delete(orphan.key)
                        except Exception as exc:
                            failed += 1
                            self.stderr.write(f"  could not delete {name}:{orphan.key}: {describe_failure(exc)}")
                        else:
                            deleted += 1
                            deleted_bytes += orphan.size
                progress.step()
            progress.finish()
            record_sweep(name, found=len(orphans), deleted=deleted - deleted_before)

        summary = f"{found} orphans ({filesizeformat(found_bytes)})"
        summary += f", {deleted} deleted ({filesizeformat(deleted_bytes)})" if delete else ", none deleted (dry run; use --delete)"
        if failed:
            raise CommandError(f"{summary}, {failed} failures")
        self.stdout.write(self.style.SUCCESS(summary))
