"""The public pages in headless Chromium: the list renders, the player loads and seeks."""

import shutil
import threading

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.factories import real_video, uploaded
from videos import services

WEBM = ("-c:v", "libvpx", "-b:v", "300k", "-c:a", "libvorbis")


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class QuietRequestHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def site(transactional_db):
    """The site as deployed: Django's WSGI handler alone, so /media/ goes through our view.

    (pytest-django's live_server answers /media/ itself, without byte ranges.)
    """
    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietRequestHandler, allow_reuse_address=True)
    server.set_app(WSGIHandler())
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
