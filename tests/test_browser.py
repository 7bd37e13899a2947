"""The public pages in headless Chromium: the list renders, the player loads and seeks."""

import shutil
import threading

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.factories import real_video, sha256, uploaded, video_upload
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


def test_a_failed_admin_upload_says_so_and_saves_nothing(
    browser, site, settings, transactional_db, staff_user, tmp_path
):
    from videos.models import Video

    settings.STORAGE_PROVIDERS = ["local"]
    settings.MAX_UPLOAD_MB = 1
    big = tmp_path / "big.webm"
    big.write_bytes(real_video(tmp_path, "seed.webm", codec_args=WEBM).read_bytes() + bytes(1_300_000))
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

    settings.STORAGE_PROVIDERS = ["local"]
    settings.MAX_UPLOAD_MB = 1
    big = tmp_path / "big.webm"
    big.write_bytes(real_video(tmp_path, "seed.webm", codec_args=WEBM).read_bytes() + bytes(1_300_000))
    sign_in(browser, site, staff_user)
    browser.get(site + "/admin/videos/video/add/")
    # As if the page were older than the server's limit: only the server can refuse the file.
    browser.execute_script("document.getElementById('upload-progress').dataset.maxUploadMb = '100'")

    browser.find_element(By.ID, "id_title").send_keys("From the browser")
    browser.find_element(By.ID, "id_file").send_keys(str(big))
    browser.find_element(By.NAME, "_save").click()

    error = browser.find_element(By.ID, "upload-error")
    WebDriverWait(browser, 30).until(lambda _: error.is_displayed())
    assert error.text == "The upload is larger than the limit of 1 MB."
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
