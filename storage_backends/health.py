"""What the server can say of each provider of the chain: ``/api/health/`` and the
admin's storage dashboard both read it here.

``provider_reports()`` calls no provider: it reads the settings and each breaker's
record (``storage_backends.breaker``), that is, what the uploads last saw.
``run_checks()`` runs each provider's cheap ``check()`` in parallel, waits
``CHECK_TIMEOUT`` seconds at most, and keeps the answers ``CHECK_CACHE_SECONDS`` in
the shared cache: however often it is asked, each provider is checked at most once
per window across all the server's workers.

The status rule (``overall_status``), over the configured providers:

- ``down``: none is available (every breaker open, or every check just failed);
- ``degraded``: some are, but one is not, or the last outcome seen of one (an upload
  or a check) was a failure;
- ``ok``: every one is available and the last outcome seen of each was a success
  (or nothing was seen yet).
"""

import concurrent.futures
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache

from storage_backends import providers
from storage_backends.breaker import BreakerState, CircuitBreaker, ProviderRecord
from storage_backends.chain import describe_failure

logger = logging.getLogger(__name__)

# Seconds a check may take before the report says it did not answer.
CHECK_TIMEOUT = 5.0
# Seconds the answers of a round of checks are reused.
CHECK_CACHE_SECONDS = 10
CHECKS_KEY = "stremora:health:checks"
CHECK_UNDER_WAY = "another check of the providers is under way: ask again in a few seconds"

# Used while the shared cache is unreachable: each process then throttles its own checks.
_process_cache = LocMemCache("stremora-health-checks", {"TIMEOUT": CHECK_CACHE_SECONDS})


@dataclass(frozen=True)
class CheckResult:
    ok: bool | None  # None: not known (another check under way)
    detail: str
    checked_at: float


@dataclass(frozen=True)
class ProviderReport:
    name: str
    configured: bool
    record: ProviderRecord
    check: CheckResult | None = field(default=None)

    @property
    def available(self):
        """Whether the chain sends it uploads: configured, breaker not open, check not failed."""
        return self.configured and self.record.state is not BreakerState.OPEN and not self.check_failed

    @property
    def check_failed(self):
        return self.check is not None and self.check.ok is False

    @property
    def failing(self):
        """Whether the last outcome seen (a check when one ran, else an upload) was a failure."""
        if self.check is not None and self.check.ok is not None:
            return not self.check.ok
        return self.record.last_outcome_failed


def provider_reports(names=None):
    """A ``ProviderReport`` per provider of the chain (``names``), from what the server last saw."""
    return [
        ProviderReport(name, providers.is_configured(name), CircuitBreaker(name).record())
        for name in (names or settings.STORAGE_PROVIDERS)
    ]


def overall_status(reports):
    """``"ok"``, ``"degraded"`` or ``"down"``, by the rule in this module's docstring."""
    configured = [report for report in reports if report.configured]
    available = [report for report in configured if report.available]
    if not available:
        return "down"
    if len(available) < len(configured) or any(report.failing for report in configured):
        return "degraded"
    return "ok"


def checked_reports(names=None):
    """``provider_reports`` with each configured provider's check (see ``run_checks``)."""
    reports = provider_reports(names)
    results = run_checks([report.name for report in reports if report.configured])
    return [
        ProviderReport(report.name, report.configured, report.record, results.get(report.name)) for report in reports
    ]


def run_checks(names):
    """``{provider: CheckResult}``: fresh, or the answers of a round at most
    ``CHECK_CACHE_SECONDS`` old; while another worker's round runs, results with
    ``ok=None`` that say so."""
    if not names:
        return {}
    key = f"{CHECKS_KEY}:{','.join(names)}"
    try:
        return _run_checks_once(caches["default"], key, names)
    except Exception as exc:  # the shared cache failed: throttle in this process instead
        logger.warning("Health check cache unreachable (%s); this process throttles its own checks", type(exc).__name__)
        return _run_checks_once(_process_cache, key, names)


def _run_checks_once(cache, key, names):
    results = cache.get(key)
    if results is not None:
        return results
    if not cache.add(f"{key}:running", True, timeout=CHECK_TIMEOUT + 1):
        return {name: CheckResult(None, CHECK_UNDER_WAY, time.time()) for name in names}
    try:
        results = _check_in_parallel(names)
        cache.set(key, results, timeout=CHECK_CACHE_SECONDS)
    finally:
        cache.delete(f"{key}:running")
    return results


def _check_in_parallel(names):
    futures = {name: providers.start_check(name) for name in names}
    deadline = time.monotonic() + CHECK_TIMEOUT
    results = {}
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            logger.warning("Storage provider %s did not answer its health check within %g s", name, CHECK_TIMEOUT)
            results[name] = CheckResult(False, f"no answer within {CHECK_TIMEOUT:g} s", time.time())
        except Exception as exc:
            reason = describe_failure(exc)
            logger.warning("Storage provider %s failed its health check: %s", name, reason)
            results[name] = CheckResult(False, reason, time.time())
        else:
            results[name] = CheckResult(True, "ok", time.time())
    return results


def forget_process_state():
    """Drop the checks this process kept while the shared cache was out."""
    _process_cache.clear()
