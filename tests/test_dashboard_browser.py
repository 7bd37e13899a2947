"""The storage dashboard in headless Chromium: what it shows matches the database, the
chart has a bar slot and a fallback point per day, and nothing errs or breaks the CSP.

``--dashboard-screenshot docs/images/storage-dashboard.png`` saves the page as shown.
"""

from datetime import timedelta

from django.db.models import Count, Q, Sum
from django.utils import timezone
from selenium.webdriver.common.by import By

from tests.test_browser import browser, no_content_security_policy_violation, sign_in, site  # noqa: F401 (fixtures)
from tests.test_dashboard import DASHBOARD_URL, storage_history  # noqa: F401 (a fixture)
from videos.dashboard import CHART_DAYS, UPLOAD_VIAS
from videos.models import StorageEvent, Video


def test_the_dashboard_shows_the_database_numbers_and_a_point_per_day(
    browser, site, staff_user, storage_history, request
):
    sign_in(browser, site, staff_user)
    browser.get(site + DASHBOARD_URL)

    for provider in ("s3", "local"):
        row = browser.find_element(By.CSS_SELECTOR, f'#providers tr[data-provider="{provider}"]')
        held = Video.objects.filter(storage_provider=provider).aggregate(videos=Count("id"), bytes=Sum("size_bytes"))
        assert int(row.find_element(By.CSS_SELECTOR, ".videos").text) == held["videos"]
        assert int(row.find_element(By.CSS_SELECTOR, ".bytes").get_attribute("data-bytes")) == held["bytes"]
        assert row.find_element(By.CSS_SELECTOR, ".breaker").text == "closed"
    s3_failure = browser.find_element(By.CSS_SELECTOR, '#providers tr[data-provider="s3"] .last-failure').text
    assert "EndpointConnectionError: Could not connect" in s3_failure

    days = browser.find_elements(By.CSS_SELECTOR, "#upload-chart g.day")
    points = browser.find_elements(By.CSS_SELECTOR, "#upload-chart circle.fallback-point")
    assert len(days) == len(points) == CHART_DAYS
    first_day = timezone.localdate() - timedelta(days=CHART_DAYS - 1)
    uploads = StorageEvent.objects.filter(created_at__date__gte=first_day, via__in=UPLOAD_VIAS)
    for day in days:
        on_that_day = uploads.filter(created_at__date=day.get_attribute("data-day"))
        expected = on_that_day.aggregate(
            stored=Count("id", filter=Q(outcome="stored")),
            fallbacks=Count("id", filter=Q(outcome="stored") & ~Q(fallen_from="")),
        )
        shown = int(day.get_attribute("data-stored")), int(day.get_attribute("data-fallbacks"))
        assert shown == (expected["stored"], expected["fallbacks"]), day.get_attribute("data-day")
        bars = day.find_elements(By.CSS_SELECTOR, "rect.bar")
        assert sum(int(bar.get_attribute("data-count")) for bar in bars) == expected["stored"]
    assert browser.find_element(By.ID, "upload-total").text == str(uploads.filter(outcome="stored").count())

    chart = browser.find_element(By.ID, "upload-chart")
    assert chart.size["width"] > 300 and chart.size["height"] > 80  # drawn, not collapsed
    errors = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]  # no favicon yet: not this page's
    ]
    assert errors == []

    screenshot = request.config.getoption("--dashboard-screenshot")
    if screenshot:
        browser.set_window_size(1280, 1100)
        browser.save_screenshot(screenshot)
