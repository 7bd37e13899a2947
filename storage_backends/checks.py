"""``manage.py check`` reports providers of the chain that cannot be used."""

from django.conf import settings
from django.core import checks

from storage_backends import providers


@checks.register("stremora")
def check_storage_providers(app_configs=None, **kwargs):
    messages = []
    chain = list(settings.STORAGE_PROVIDERS)
    for provider in chain:
        missing = providers.missing_settings(provider)
        if missing:
            messages.append(
                checks.Warning(
                    f"The {provider} storage provider is skipped: {', '.join(missing)} not set.",
                    hint="Set them in the environment or .env (see .env.example), "
                    "or leave the provider out of STORAGE_PROVIDERS.",
                    id="stremora.W001",
                )
            )
    if not any(providers.is_configured(provider) for provider in chain):
        messages.append(
            checks.Error(
                "No storage provider in STORAGE_PROVIDERS is configured: uploads cannot be stored.",
                hint="Configure Cloudinary or S3, or add local to STORAGE_PROVIDERS.",
                id="stremora.E001",
            )
        )
    return messages
