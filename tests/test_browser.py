"""The public pages in headless Chromium: the list renders, the player loads and seeks."""

import shutil
import threading

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.factories import real_video, sha256, uploaded, video_upload
from tests.fault_proxy import FaultProxy
from tests.stack import GunicornServer, site_environment
from videos import services

WEBM = ("-c:v", "libvpx", "-b:v", "300k", "-c:a", "libvorbis")


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP violations land there
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(autouse=True)
def no_content_security_policy_violation(browser):
    """Whatever a test does in the browser, the site's Content-Security-Policy blocks none of it."""
    browser.get_log("browser")  # drop what earlier tests left
    yield
    violations = [
        entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]
    ]
    assert violations == []


class QuietRequestHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def site(transactional_db):
    """The site as deployed: static files, and Django's handler for the rest (/media/ too).

    (pytest-django's live_server answers /media/ itself, without byte ranges.)
    """
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietRequestHandler, allow_reuse_address=True)
    server.set_app(StaticFilesHandler(WSGIHandler()))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def published(settings, transactional_db, user, tmp_path):
    settings.STORAGE_PROVIDERS = ["local"]
    clip = real_video(tmp_path, "harbour.webm", seconds=4, codec_args=WEBM)
    return services.create_video(
        owner=user, title="Harbour at dawn", file=uploaded(clip, "video/webm"), is_published=True
    )


def test_the_list_shows_each_published_video_with_its_poster(browser, site, published):
    browser.get(site + "/")

    card = browser.find_element(By.CSS_SELECTOR, ".card")
    assert card.find_element(By.TAG_NAME, "h2").text == "Harbour at dawn"
    poster = card.find_element(By.TAG_NAME, "img")
    WebDriverWait(browser, 10).until(lambda _: browser.execute_script("return arguments[0].complete", poster))
    assert browser.execute_script("return arguments[0].naturalWidth", poster) == 160


def test_the_player_loads_its_source_and_seeks(browser, site, published):
    browser.get(f"{site}/videos/{published.pk}/")
    player = browser.find_element(By.ID, "player")

    WebDriverWait(browser, 20).until(lambda _: browser.execute_script("return arguments[0].readyState", player) >= 1)
    assert browser.execute_script("return arguments[0].duration", player) == pytest.approx(4.0, abs=0.2)
    assert browser.execute_script("return arguments[0].error", player) is None

    browser.execute_script("arguments[0].currentTime = 3.0", player)
    WebDriverWait(browser, 20).until(lambda _: not browser.execute_script("return arguments[0].seeking", player))
    assert browser.execute_script("return arguments[0].currentTime", player) == pytest.approx(3.0, abs=0.5)
    assert browser.execute_script("return arguments[0].error", player) is None


def test_the_search_box_finds_a_video_and_the_pages_have_an_icon(browser, site, published, user):
    services.create_video(owner=user, title="Kitchen tour", file=video_upload(), is_published=True)
    browser.get(site + "/")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card")) == 2

    box = browser.find_element(By.NAME, "search")
    box.send_keys("dawn")
    box.submit()
    WebDriverWait(browser, 10).until(lambda _: "search=dawn" in browser.current_url)

    assert [title.text for title in browser.find_elements(By.CSS_SELECTOR, ".card h2")] == ["Harbour at dawn"]
    icon_width = browser.execute_async_script(
        "var done = arguments[arguments.length - 1], icon = new Image();"
        "icon.onload = function () { done(icon.naturalWidth); }; icon.onerror = function () { done(-1); };"
        "icon.src = document.querySelector('link[rel=icon]').href;"
    )
    assert icon_width == 32


def test_the_watch_page_shows_the_duration_and_the_poster(browser, site, published):
    browser.get(f"{site}/videos/{published.pk}/")

    assert browser.find_element(By.CSS_SELECTOR, "time.duration").text == "0:04"
    poster = browser.find_element(By.ID, "player").get_attribute("poster")
    assert poster == site + services.poster_url(published)
    loaded = browser.execute_async_script(
        "var done = arguments[arguments.length - 1], image = new Image();"
        "image.onload = function () { done(image.naturalWidth); }; image.onerror = function () { done(-1); };"
        "image.src = arguments[0];",
        poster,
    )
    assert loaded > 0


def sign_in(browser, site, user):
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    browser.get(site + "/admin/login/")
    browser.add_cookie({"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value})


def fill_the_add_form(browser, site, owner, path):
    browser.get(site + "/admin/videos/video/add/")
    browser.find_element(By.ID, "id_title").send_keys("From the browser")
    owner_field = browser.find_element(By.ID, "id_owner")
    owner_field.clear()
    owner_field.send_keys(str(owner.pk))
    browser.find_element(By.ID, "id_file").send_keys(str(path))
    browser.find_element(By.NAME, "_save").click()


def test_an_admin_upload_shows_progress_and_lands(browser, site, settings, transactional_db, staff_user, tmp_path):
    from videos.models import Video

    settings.STORAGE_PROVIDERS = ["local"]
    clip = real_video(tmp_path, "upload.webm", seconds=20, codec_args=WEBM)
    sign_in(browser, site, staff_user)

    fill_the_add_form(browser, site, staff_user, clip)

    WebDriverWait(browser, 30).until(lambda _: browser.current_url.endswith("/admin/videos/video/"))
    video = Video.objects.get(title="From the browser")
    shown = [message.text for message in browser.find_elements(By.CSS_SELECTOR, ".messagelist li")]
    assert shown == [f"The video “{video}” was added successfully."]
    assert video.storage_provider == "local" and video.size_bytes == clip.stat().st_size
    with video.file.open("rb") as stored:
        assert sha256(stored.read()) == sha256(clip.read_bytes())


def test_an_admin_upload_refused_while_the_server_is_busy_asks_again_and_lands(
    browser, site, settings, transactional_db, staff_user, tmp_path
):
    from videos import metrics
    from videos.models import Video
    from videos.provider_slots import provider_slot

    settings.STORAGE_PROVIDERS = ["local"]
    settings.PROVIDER_WAIT_SLOTS = 1
    clip = real_video(tmp_path, "upload.webm", codec_args=WEBM)
    sign_in(browser, site, staff_user)
    refused_before = metrics.BUSY_REFUSALS.labels(action="create")._value.get()

    with provider_slot():  # the one slot, held as a request waiting on a slow provider would
        fill_the_add_form(browser, site, staff_user, clip)
        WebDriverWait(browser, 30).until(lambda _: metrics.BUSY_REFUSALS.labels(action="create")._value.get() > refused_before)
        assert not browser.find_element(By.ID, "upload-error").is_displayed()

    assert landed(browser) == ["The video “From the browser” was added successfully."]
    video = Video.objects.get(title="From the browser")
    with video.file.open("rb") as stored:
        assert sha256(stored.read()) == sha256(clip.read_bytes())


def test_an_admin_upload_over_the_small_body_limit_sends_its_csrf_token_first(
    browser, site, settings, transactional_db, staff_user, tmp_path
):
    """Over DATA_UPLOAD_MAX_MEMORY_SIZE the server checks CSRF from the header before reading the body."""
    from videos.models import Video

    settings.STORAGE_PROVIDERS = ["local"]
    large = tmp_path / "large.webm"
    padding = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 500_000
    large.write_bytes(real_video(tmp_path, "seed.webm", codec_args=WEBM).read_bytes() + bytes(padding))
    sign_in(browser, site, staff_user)

    fill_the_add_form(browser, site, staff_user, large)

    def landed_or_refused(_):
        if browser.current_url.endswith("/admin/videos/video/"):
            return "landed"
        errors = browser.find_elements(By.ID, "upload-error")
        return errors and errors[0].text and f"refused: {errors[0].text}"

    assert WebDriverWait(browser, 30).until(landed_or_refused) == "landed"
    assert Video.objects.get(title="From the browser").size_bytes == large.stat().st_size


@pytest.mark.parametrize("page", ["add", "change"])
def test_the_upload_error_box_is_hidden_until_an_upload_fails(
    browser, site, settings, transactional_db, staff_user, page
):
    from videos.models import Video

    settings.STORAGE_PROVIDERS = ["local"]
    video = Video.objects.create(title="Clip", owner=staff_user, file=video_upload())
    sign_in(browser, site, staff_user)
    browser.get(site + ("/admin/videos/video/add/" if page == "add" else f"/admin/videos/video/{video.pk}/change/"))

    WebDriverWait(browser, 20).until(lambda _: browser.find_elements(By.ID, "id_title"))
    assert not browser.find_element(By.ID, "upload-error").is_displayed()
    assert not browser.find_element(By.ID, "upload-progress").is_displayed()


def over_a_one_megabyte_limit(settings, tmp_path):
    """A real video of 1.3 MB, with MAX_UPLOAD_MB at 1 and local disk as the provider."""
    settings.STORAGE_PROVIDERS = ["local"]
    settings.MAX_UPLOAD_MB = 1
    big = tmp_path / "big.webm"
    big.write_bytes(real_video(tmp_path, "seed.webm", codec_args=WEBM).read_bytes() + bytes(1_300_000))
    return big


def test_a_failed_admin_upload_says_so_and_saves_nothing(
    browser, site, settings, transactional_db, staff_user, tmp_path
):
    from videos.models import Video

    big = over_a_one_megabyte_limit(settings, tmp_path)
    sign_in(browser, site, staff_user)

    fill_the_add_form(browser, site, staff_user, big)

    error = browser.find_element(By.ID, "upload-error")
    WebDriverWait(browser, 30).until(lambda _: error.is_displayed())
    assert error.text == "The file is larger than the limit of 1 MB. Nothing was sent."
    assert browser.find_element(By.ID, "id_title").get_attribute("value") == "From the browser"
    assert not Video.objects.exists()


def test_an_upload_the_server_refuses_as_too_large_shows_the_servers_limit(
    browser, site, settings, transactional_db, staff_user, tmp_path
):
    from videos.models import Video

    big = over_a_one_megabyte_limit(settings, tmp_path)
    sign_in(browser, site, staff_user)
    browser.get(site + "/admin/videos/video/add/")
    # As if the page were older than the server's limit: only the server can refuse the file.
    browser.execute_script("document.getElementById('upload-progress').dataset.maxUploadMb = '100'")

    browser.find_element(By.ID, "id_title").send_keys("From the browser")
    browser.find_element(By.ID, "id_file").send_keys(str(big))
    browser.find_element(By.NAME, "_save").click()

    error = browser.find_element(By.ID, "upload-error")
    WebDriverWait(browser, 30).until(lambda _: error.is_displayed())
    assert error.text.replace("\xa0", " ") == "The file is 1.3 MB, larger than the limit of 1 MB."
    assert not Video.objects.exists()


def test_the_api_docs_page_renders_offline(browser, site):
    browser.get(site + "/api/docs/")

    WebDriverWait(browser, 20).until(lambda _: browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text.startswith("Stremora API")
    WebDriverWait(browser, 20).until(lambda _: browser.find_elements(By.CSS_SELECTOR, ".opblock-tag"))
    tags = [tag.text for tag in browser.find_elements(By.CSS_SELECTOR, ".opblock-tag")]
    assert any("videos" in tag for tag in tags)


def test_a_player_served_by_cloudinary_loads_under_the_policy(
    browser, site, settings, cloudinary_server, user, tmp_path
):
    settings.STORAGE_PROVIDERS = ["cloudinary"]
    clip = real_video(tmp_path, "cloud.webm", seconds=2, codec_args=WEBM)
    video = services.create_video(
        owner=user, title="From the cloud", file=uploaded(clip, "video/webm"), is_published=True
    )
    assert video.storage_provider == "cloudinary"

    browser.get(f"{site}/videos/{video.pk}/")
    player = browser.find_element(By.ID, "player")

    assert browser.execute_script("return arguments[0].currentSrc", player).startswith(cloudinary_server.url)
    WebDriverWait(browser, 20).until(lambda _: browser.execute_script("return arguments[0].readyState", player) >= 1)
    assert browser.execute_script("return arguments[0].error", player) is None


# -- the admin's direct uploads, against gunicorn -----------------------------

BUCKET = "stremora-test"
# Browsers PUT parts across origins: the bucket must allow it and show each part's ETag.
BUCKET_CORS = {
    "CORSRules": [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"]}
    ]
}


@pytest.fixture
def serve(settings, transactional_db, media_root):
    """``serve(providers, s3_url=None)``: gunicorn with its static files, over ``providers``."""
    media_root.mkdir(parents=True, exist_ok=True)
    servers = []

    def start(providers, s3_url=None):
        s3 = {"s3_url": s3_url, "s3_settings": settings, "bucket": BUCKET} if s3_url else {}
        environment = site_environment(
            secret_key=settings.SECRET_KEY,  # the test signs the session it hands to the browser
            media_root=media_root, providers=providers, STORAGE_TIMEOUT=3, **s3,
        )
        server = GunicornServer(environment, workers=2, application="tests.static_wsgi:application").start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    s3_server.client().put_bucket_cors(Bucket=BUCKET, CORSConfiguration=BUCKET_CORS)
    return s3_server


def padded_video(tmp_path, size):
    """A real video padded with zeros to ``size`` bytes: parts and chunks to send, still a video."""
    clip = real_video(tmp_path, "seed.webm", codec_args=WEBM).read_bytes()
    path = tmp_path / "clip.webm"
    path.write_bytes(clip + bytes(size - len(clip)))
    return path


def stored_bytes(video, s3=None):
    if video.storage_provider == "s3":
        key = "stremora/" + video.file.name.removeprefix("s3:")
        return s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with video.file.open("rb") as stored:
        return stored.read()


def landed(browser):
    """Waits for the changelist the form goes to once saved; returns the messages shown."""
    def on_changelist_or_error(_):
        if browser.current_url.endswith("/admin/videos/video/"):
            return True
        errors = browser.find_elements(By.ID, "upload-error")
        if errors and errors[0].is_displayed():
            raise AssertionError(f"the upload failed: {errors[0].text}")
        return False

    # The form's page may be replaced by the changelist between finding its error box and
    # reading it: look again.
    WebDriverWait(browser, 60, ignored_exceptions=[StaleElementReferenceException]).until(on_changelist_or_error)
    return [message.text for message in browser.find_elements(By.CSS_SELECTOR, ".messagelist li")]


def test_an_admin_upload_goes_straight_to_s3(browser, serve, s3_bucket, staff_user, tmp_path):
    from videos.models import Video

    site = serve("s3,local", s3_url=s3_bucket.url)
    clip = padded_video(tmp_path, 20 * 1024 * 1024)  # three parts of 8 MiB
    sign_in(browser, site, staff_user)

    fill_the_add_form(browser, site, staff_user, clip)

    assert landed(browser) == ["The video “From the browser” was added successfully."]
    video = Video.objects.get(title="From the browser")
    assert video.storage_provider == "s3" and video.size_bytes == clip.stat().st_size
    assert sha256(stored_bytes(video, s3_bucket)) == sha256(clip.read_bytes())
    assert s3_bucket.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_an_admin_upload_the_browser_cannot_send_to_s3_moves_to_the_next_provider(
    browser, serve, s3_bucket, staff_user, tmp_path
):
    from videos.models import UploadSession, Video

    site = serve("s3,local", s3_url=s3_bucket.url)
    clip = padded_video(tmp_path, 10 * 1024 * 1024)
    sign_in(browser, site, staff_user)
    # The server reaches S3; this browser does not (a firewall, a proxy): its parts fail.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": [s3_bucket.url + "/*"]})
    try:
        fill_the_add_form(browser, site, staff_user, clip)
        assert landed(browser) == ["The video “From the browser” was added successfully."]
    finally:
        browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})

    video = Video.objects.get(title="From the browser")
    assert video.storage_provider == "local"
    assert sha256(stored_bytes(video)) == sha256(clip.read_bytes())
    assert [attempt["provider"] for attempt in UploadSession.objects.get().tried] == ["s3"]


def test_an_admin_upload_with_s3_refusing_lands_on_local_disk(browser, serve, s3_bucket, staff_user, tmp_path):
    from videos.models import Video

    with FaultProxy("127.0.0.1", s3_bucket.port) as proxy:
        proxy.set_mode("refuse")
        site = serve("s3,local", s3_url=proxy.url)
        clip = padded_video(tmp_path, 10 * 1024 * 1024)
        sign_in(browser, site, staff_user)

        fill_the_add_form(browser, site, staff_user, clip)

        assert landed(browser) == ["The video “From the browser” was added successfully."]
    video = Video.objects.get(title="From the browser")
    assert video.storage_provider == "local"
    assert sha256(stored_bytes(video)) == sha256(clip.read_bytes())


def test_when_every_provider_fails_the_form_stays_with_a_readable_message(
    browser, serve, s3_bucket, staff_user, tmp_path
):
    from videos.models import Video

    with FaultProxy("127.0.0.1", s3_bucket.port) as proxy:
        proxy.set_mode("refuse")
        site = serve("s3", s3_url=proxy.url)
        clip = padded_video(tmp_path, 1024 * 1024)
        sign_in(browser, site, staff_user)
        browser.get(site + "/admin/videos/video/add/")
        browser.find_element(By.ID, "id_title").send_keys("Kept")
        browser.find_element(By.ID, "id_description").send_keys("Also kept")
        browser.find_element(By.ID, "id_file").send_keys(str(clip))
        browser.find_element(By.NAME, "_save").click()

        error = browser.find_element(By.ID, "upload-error")
        WebDriverWait(browser, 30).until(lambda _: error.is_displayed())

    assert error.text.startswith("The video could not be uploaded: every storage provider failed")
    assert "Nothing was saved; your changes are still here" in error.text
    assert "Error(" not in error.text and "Traceback" not in error.text
    assert browser.current_url == site + "/admin/videos/video/add/"
    assert browser.find_element(By.ID, "id_title").get_attribute("value") == "Kept"
    assert browser.find_element(By.ID, "id_description").get_attribute("value") == "Also kept"
    assert browser.find_element(By.NAME, "_save").is_enabled()
    assert not Video.objects.exists()


def test_save_is_disabled_and_the_progress_in_view_while_the_video_uploads(
    browser, serve, staff_user, tmp_path
):
    from videos.models import UploadSession, Video

    site = serve("local")
    clip = padded_video(tmp_path, 12 * 1024 * 1024)
    sign_in(browser, site, staff_user)
    browser.execute_cdp_cmd("Network.enable", {})
    # About four seconds for the file: long enough to look at the page meanwhile.
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 3 * 1024 * 1024},
    )
    try:
        fill_the_add_form(browser, site, staff_user, clip)
        bar = browser.find_element(By.CSS_SELECTOR, "#upload-progress progress")
        WebDriverWait(browser, 20).until(lambda _: 0 < int(bar.get_attribute("value")) < 100)

        buttons = browser.find_elements(By.CSS_SELECTOR, "#video_form [type=submit]")
        assert len(buttons) == 3 and not any(button.is_enabled() for button in buttons)
        browser.execute_script("window.scrollTo(0, 0)")
        assert in_view(browser, browser.find_element(By.ID, "upload-progress"))
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        assert in_view(browser, browser.find_element(By.ID, "upload-progress"))
        # A second Save (Enter in a field) starts no second upload.
        browser.execute_script("document.getElementById('video_form').requestSubmit()")
    finally:
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    assert landed(browser) == ["The video “From the browser” was added successfully."]
    assert UploadSession.objects.count() == 1 and Video.objects.count() == 1


def in_view(browser, element):
    return browser.execute_script(
        "var box = arguments[0].getBoundingClientRect();"
        "return box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight;",
        element,
    )


def test_an_admin_upload_pauses_when_the_connection_is_lost_and_sends_only_the_rest_when_it_is_back(
    browser, serve, s3_bucket, staff_user, tmp_path
):
    from tests.counting_proxy import CountingProxy
    from videos.models import UploadSession, Video

    online = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    # Each part is held a while on its way to S3, so the connection can be lost midway.
    with CountingProxy("127.0.0.1", s3_bucket.port, delay=1.0) as proxy:
        site = serve("s3,local", s3_url=proxy.url)
        clip = padded_video(tmp_path, 80 * 1024 * 1024)  # ten parts of 8 MiB
        sign_in(browser, site, staff_user)
        browser.execute_cdp_cmd("Network.enable", {})
        try:
            fill_the_add_form(browser, site, staff_user, clip)
            WebDriverWait(browser, 30).until(lambda _: sum(proxy.parts_landed().values()) >= 1)
            browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**online, "offline": True})
            resume_button = browser.find_element(By.ID, "upload-resume")
            WebDriverWait(browser, 30).until(lambda _: resume_button.is_displayed())
            assert "paused" in browser.find_element(By.ID, "upload-progress").text
            assert browser.find_element(By.NAME, "_save").get_attribute("disabled")
        finally:
            browser.execute_cdp_cmd("Network.emulateNetworkConditions", online)

        assert landed(browser) == ["The video “From the browser” was added successfully."]
        landed_parts = proxy.parts_landed()
    video = Video.objects.get(title="From the browser")
    assert video.storage_provider == "s3"
    assert sha256(stored_bytes(video, s3_bucket)) == sha256(clip.read_bytes())
    assert sorted(landed_parts) == list(range(1, 11))
    # The parts cut off by the loss had not reached S3; the rest were not sent again (one
    # that reached S3 just as the connection went may be, as with the Python client).
    assert len([number for number, times in landed_parts.items() if times > 1]) <= 1, landed_parts
    assert UploadSession.objects.get().tried == []  # the same upload went on: no provider was given up
