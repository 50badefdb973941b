"""The dashboard in a real headless Chromium, and `render` of a real video, on the local stack.

The browser is Debian's ``chromium`` with ``chromium-driver`` (``tools/install_browser.sh``),
driven by Selenium. Screenshots go to ``$VIDEO_RUNNER_SCREENSHOTS`` when it is set (the README's
come from ``VIDEO_RUNNER_SCREENSHOTS=docs/screenshots``), else to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import pytest

from support.stack import (
    REPO,
    isolated_settings,
    service_process,
    settings_env,
    store_of,
    submit_video,
    wait_for,
)
from support.videos import real_video
from video_runner.services.client_actions import status_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed: "
    "run tools/install_browser.sh (CI does)",
)
BIKES_SAMPLED = 50  # bikes.mp4: 250 frames at 25 fps, every 5th


@contextmanager
def chromium(*, javascript: bool = True) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1100")
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


NOSCRIPT_REFRESH = "return document.querySelector('noscript meta[http-equiv=refresh]') !== null;"


def loaded_widths(driver):
    """The natural width of every annotated image once all have loaded (0 while loading).

    WebDriver's own scripts run even where the page's are disabled.
    """

    def widths():
        found = driver.execute_script(
            "return [...document.querySelectorAll('img.annotated')]"
            ".map(i => i.complete ? i.naturalWidth : 0);"
        )
        return found if found and all(found) else None

    return wait_until(widths)


def row(driver, event_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'tr.video[data-event-id="{event_id}"]')


def row_state(driver, event_id):
    """(status, progress, frames text) of the event's row, read in one go (the script may swap
    the table under us)."""
    return driver.execute_script(
        "const r = document.querySelector(`tr.video[data-event-id='${arguments[0]}']`);"
        "return r && [r.dataset.status, r.dataset.progress, r.querySelector('.frames').innerText,"
        " r.querySelector('.classes').innerText];",
        event_id,
    )


def wait_until(predicate, timeout_s=60.0, every_s=0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout_s} s (last: {value!r})")
        time.sleep(every_s)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - a local test URL
        return bytes(response.read())


def screenshots_dir(tmp_path: Path) -> Path:
    target = os.environ.get("VIDEO_RUNNER_SCREENSHOTS")
    directory = (REPO / target) if target else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def wait_status(store, event_id, predicate, timeout_s=240.0):
    async def check():
        document = await status_of(store, event_id)
        return document if document is not None and predicate(document) else None

    return await wait_for(check, timeout_s=timeout_s, every_s=0.5)


def http_up(base: str) -> bool:
    try:
        fetch(base + "/health/live")
    except OSError:
        return False
    return True


def check_video_page(browser, base, event_id):
    """Every sampled frame is in the grid, its annotated image loads, and it differs from the
    stored JPEG exactly when the frame has detections."""
    from selenium.webdriver.common.by import By

    assert browser.find_element(By.ID, "status").text == "ready"
    figures = browser.find_elements(By.CSS_SELECTOR, "figure.frame")
    assert len(figures) == BIKES_SAMPLED
    assert set(loaded_widths(browser)) == {640}
    with_objects = 0
    for figure in figures:
        image = figure.find_element(By.CSS_SELECTOR, "img.annotated")
        drawn = fetch(image.get_attribute("src"))
        stored = fetch(base + image.get_attribute("data-stored"))
        if int(figure.get_attribute("data-objects")) > 0:
            with_objects += 1
            assert drawn != stored, figure.get_attribute("data-frame-id")
        else:
            assert drawn == stored, figure.get_attribute("data-frame-id")
    assert with_objects > 0
    assert browser.find_elements(By.CSS_SELECTOR, ".timeline svg")
    assert fetch(base + f"/videos/{event_id}/result.json").startswith(b"{")


def render_cli(settings, event_id, out):
    command = [sys.executable, "-m", "video_runner.entrypoints.cli", "render"]
    return subprocess.run(
        [*command, event_id, "--out", str(out)],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )


@needs_browser
async def test_the_dashboard_shows_a_video_processing_then_ready_with_its_annotated_frames(
    tmp_path,
):
    """While bikes.mp4 waits for its results, `/` shows it processing at 50 % (all 50 frames
    published, none detected yet), with and without JavaScript; once the inference worker runs,
    the page refreshes itself to ready at 100 % with its classes; the video page's annotated
    frames all load and differ from the stored JPEGs exactly where there are detections."""
    from selenium.webdriver.common.by import By

    settings = isolated_settings(tmp_path / "work")
    base = f"http://127.0.0.1:{settings.http_port}"
    shots = screenshots_dir(tmp_path)
    store = store_of(settings)
    with (
        service_process("serve", settings, tmp_path / "runner.log"),
        service_process("outbox-s3", settings, tmp_path / "outbox.log"),
        chromium() as browser,
        chromium(javascript=False) as plain,
    ):
        await wait_for(lambda: asyncio.to_thread(http_up, base), timeout_s=60)
        event_id = await submit_video(settings, real_video("bikes.mp4"))
        # No inference worker yet: the video stays processing with every task published.
        await wait_status(store, event_id, lambda d: d.get("total_frames") == BIKES_SAMPLED)

        browser.get(base + "/")
        status, progress, frames, _ = row_state(browser, event_id)
        assert (status, progress) == ("processing", "50.0")
        assert frames.startswith(f"0 / {BIKES_SAMPLED}")
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-in-flight") == "1"
        plain.get(base + "/")
        assert row_state(plain, event_id)[:2] == ["processing", "50.0"]
        # Scripting off, <noscript> holds elements (the refresh meta); on, it holds only text.
        assert plain.execute_script(NOSCRIPT_REFRESH) is True
        assert browser.execute_script(NOSCRIPT_REFRESH) is False

        with service_process("inference", settings, tmp_path / "inference.log"):
            await wait_status(store, event_id, lambda d: d["status"] == "ready")
        # The open page refreshes itself: no reload here.
        state = await asyncio.to_thread(
            wait_until, lambda: (s := row_state(browser, event_id)) and s[0] == "ready" and s
        )
        assert state[1] == "100.0"
        assert state[2].startswith(f"{BIKES_SAMPLED} / {BIKES_SAMPLED}")
        assert "person" in state[3]
        assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-in-flight") == "0"
        browser.save_screenshot(str(shots / "dashboard-list.png"))
        plain.refresh()
        assert row_state(plain, event_id)[:2] == ["ready", "100.0"]
        assert plain.execute_script(NOSCRIPT_REFRESH) is False  # nothing in flight any more

        row(browser, event_id).find_element(By.CSS_SELECTOR, "a").click()
        wait_until(lambda: browser.current_url == f"{base}/videos/{event_id}")
        check_video_page(browser, base, event_id)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(shots / "dashboard-video.png"))
        plain.get(f"{base}/videos/{event_id}")
        assert plain.find_element(By.ID, "status").text == "ready"
        assert set(loaded_widths(plain)) == {640}
    await store.close()


async def test_render_of_bikes_writes_an_h264_video_with_one_frame_per_sampled_frame(tmp_path):
    """`video-runner render EVENT_ID --out FILE` on a ready bikes.mp4: 50 H.264 frames at 5 fps
    (25 fps every 5th frame), 10 s long like the source, as the decoder counts them."""
    settings = isolated_settings(tmp_path / "work")
    store = store_of(settings)
    with (
        service_process("serve", settings, tmp_path / "runner.log"),
        service_process("inference", settings, tmp_path / "inference.log"),
        service_process("outbox-s3", settings, tmp_path / "outbox.log"),
    ):
        event_id = await submit_video(settings, real_video("bikes.mp4"))
        await wait_status(store, event_id, lambda d: d["status"] == "ready")
    await store.close()
    out = tmp_path / "annotated.mp4"
    done = await asyncio.to_thread(render_cli, settings, event_id, out)
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == 5
        assert (stream.width, stream.height) == (640, 272)
        assert sum(1 for _ in container.decode(video=0)) == BIKES_SAMPLED
