"""The playground in a real browser: headless Chromium, driven through Selenium and Debian's chromedriver.

It types a prompt and sees the tokens arrive, opens what the model considered at a step, stops a long
generation, and runs five checkpoints side by side, against checkpoints trained in seconds (tests/conftest.py).
The last test saves a screenshot of the page; with PLAYGROUND_SCREENSHOT=PATH it also writes it to PATH, which
is how the README's picture is made, from the models `python -m course` and `python -m ch05_finetune classify
--from runs/course/pretrain --out runs/ch05/classify` train (PLAYGROUND_RUNS, tests/conftest.py):

    PLAYGROUND_RUNS=runs PLAYGROUND_SCREENSHOT=docs/playground.png \
        python -m pytest tests/test_playground_browser.py -n 0

No browser is downloaded: without Debian's chromium and chromium-driver the module skips, saying so in one line.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip("headless Chromium not found: install Debian's chromium and chromium-driver (apt-get install chromium "
                "chromium-driver) to run the browser tests", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is missing: pip install -r requirements-dev.txt")

import httpx  # noqa: E402  (after the skip: a learner's machine without the browser needs none of this)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from playground.server import create_app  # noqa: E402
from playground.settings import Limits  # noqa: E402

PROMPT = "Once there was a girl named Nora. One day, she"  # in the built-in stories' characters
STEP_SECONDS = 0.01  # each forward pass of the test's models made this slow, so a reply takes a visible time
TITLES = {"bigram": "Chapter 1 · bigram", "char-gpt": "Chapter 3 · character-level GPT",
          "gpt": "Chapter 4 · pretrained GPT", "instruct": "Chapter 5 · instruction-tuned GPT",
          "classifier": "Chapter 5 · classifier"}


@pytest.fixture(scope="module")
def url(playground_models, serve):
    with pytest.MonkeyPatch.context() as patch:
        for loaded in playground_models.values():
            forward = loaded.model.forward
            patch.setattr(loaded.model, "forward", lambda *a, _f=forward, **k: time.sleep(STEP_SECONDS) or _f(*a, **k))
        # Five columns: every kind of model at once (the command's default is 4).
        with serve(create_app(playground_models, Limits(max_columns=5))) as address:
            yield address


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1600,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_window_size(1600, 1000)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, url):
    browser.get(url)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model-list input")) == 5)
    return browser


def wait(driver, condition, seconds: float = 30):
    return WebDriverWait(driver, seconds, poll_frequency=0.02).until(condition)


def choose(driver, kinds: list[str], prompt: str, tokens: int, seed: int | None = None, temperature: float = 0.8):
    """Tick the models of `kinds` (and only them), and fill in the prompt and the settings."""
    wanted = {TITLES[k] for k in kinds}
    for label in driver.find_elements(By.CSS_SELECTOR, "#model-list label"):
        box = label.find_element(By.TAG_NAME, "input")
        title = label.find_elements(By.TAG_NAME, "span")[0].text
        if box.is_selected() != (title in wanted):
            box.click()
    fill(driver, "prompt", prompt)
    fill(driver, "max-new-tokens", str(tokens))
    fill(driver, "temperature", str(temperature))
    fill(driver, "seed", "" if seed is None else str(seed))
    assert len(driver.find_elements(By.CSS_SELECTOR, ".column")) == len(kinds)


def fill(driver, element_id: str, text: str):
    box = driver.find_element(By.ID, element_id)
    box.clear()
    if text:
        box.send_keys(text)


def column(driver, kind: str):
    return next(c for c in driver.find_elements(By.CSS_SELECTOR, ".column")
                if c.find_element(By.TAG_NAME, "h2").text == TITLES[kind])


def token_count(driver, kind: str) -> int:
    return len(column(driver, kind).find_elements(By.CSS_SELECTOR, ".token"))


def idle(driver) -> bool:
    return driver.find_element(By.ID, "generate").is_enabled()


def test_a_prompt_streams_in_token_by_token_and_a_token_shows_what_was_considered(page):
    choose(page, ["char-gpt"], PROMPT, tokens=60, seed=11)
    # Record the number of tokens on the page at every change of the page, to see them arrive in several steps.
    page.execute_script("""
        window.counts = [];
        new MutationObserver(() => window.counts.push(document.querySelectorAll('.token').length))
            .observe(document.getElementById('columns'), {childList: true, subtree: true});""")
    page.find_element(By.ID, "generate").click()
    wait(page, lambda d: not idle(d))
    wait(page, idle)
    assert token_count(page, "char-gpt") == 60
    partial = {n for n in page.execute_script("return window.counts") if 0 < n < 60}
    assert len(partial) >= 5, partial  # the reply appeared a few tokens at a time, not all at once
    status = column(page, "char-gpt").find_element(By.CLASS_NAME, "column-status").text
    assert status == "seed 11 · 60 characters · token limit reached"
    assert page.find_element(By.ID, "status").text.startswith("seed 11 · done")
    text = column(page, "char-gpt").find_element(By.CLASS_NAME, "transcript").text
    assert PROMPT in text and len(text) > len(PROMPT) + 30

    tenth = column(page, "char-gpt").find_elements(By.CSS_SELECTOR, ".token")[9]
    tenth.click()
    panel = page.find_element(By.ID, "considered")
    wait(page, lambda d: panel.is_displayed())
    rows = panel.find_elements(By.CSS_SELECTOR, "li")
    chosen = panel.find_elements(By.CSS_SELECTOR, "li.chosen")
    assert 1 <= len(rows) <= 6 and len(chosen) == 1
    shown = tenth.text.replace(" ", "␣") or "↵"  # the list shows spaces and line breaks
    assert chosen[0].find_element(By.CLASS_NAME, "tok").text == shown
    assert panel.find_element(By.CLASS_NAME, "considered-head").text.startswith("step 10")
    assert "drawn with, after temperature 0.8" in panel.find_element(By.CLASS_NAME, "considered-note").text
    percents = [float(r.find_element(By.CLASS_NAME, "p").text.rstrip("%").lstrip("<")) for r in rows[:5]]
    assert percents == sorted(percents, reverse=True) and sum(percents) <= 100.5
    page.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    wait(page, lambda d: not panel.is_displayed())

    # The same seed gives the same reply.
    first = column(page, "char-gpt").find_element(By.CLASS_NAME, "transcript").text
    page.find_element(By.ID, "generate").click()
    wait(page, lambda d: not idle(d))
    wait(page, idle)
    assert column(page, "char-gpt").find_element(By.CLASS_NAME, "transcript").text == first


def test_stop_ends_a_long_generation_and_the_page_recovers(page, url):
    choose(page, ["char-gpt"], PROMPT, tokens=400)
    page.find_element(By.ID, "generate").click()
    wait(page, lambda d: token_count(d, "char-gpt") >= 10)
    assert page.find_element(By.ID, "stop").is_enabled()
    page.find_element(By.ID, "stop").click()
    wait(page, idle)
    stopped_at = token_count(page, "char-gpt")
    time.sleep(0.5)
    assert token_count(page, "char-gpt") == stopped_at < 400  # nothing more arrives
    assert "stopped after" in column(page, "char-gpt").find_element(By.CLASS_NAME, "column-status").text
    assert "stopped" in page.find_element(By.ID, "status").text
    assert not page.find_element(By.ID, "stop").is_enabled()
    deadline = time.monotonic() + 10  # the server saw the connection close and stopped sampling
    while httpx.get(f"{url}/api/status").json()["running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{url}/api/status").json()["running"] == 0
    fill(page, "max-new-tokens", "5")  # and the page works again
    page.find_element(By.ID, "generate").click()
    wait(page, lambda d: "token limit reached" in column(d, "char-gpt").find_element(
        By.CLASS_NAME, "column-status").text)
    assert token_count(page, "char-gpt") == 5


def test_side_by_side_every_model_answers_and_the_screenshot(page, tmp_path):
    kinds = ["bigram", "char-gpt", "gpt", "instruct", "classifier"]
    choose(page, kinds, PROMPT, tokens=80, seed=3)
    page.find_element(By.ID, "generate").click()
    wait(page, lambda d: not idle(d))
    wait(page, idle, seconds=60)
    columns = page.find_elements(By.CSS_SELECTOR, ".column")
    assert [c.find_element(By.TAG_NAME, "h2").text for c in columns] == [TITLES[k] for k in kinds]
    for kind in ("bigram", "char-gpt", "gpt"):
        assert token_count(page, kind) == 80, kind
    assert token_count(page, "instruct") >= 1
    assert column(page, "instruct").find_element(By.CSS_SELECTOR, ".turn.user").text == PROMPT
    label = column(page, "classifier").find_element(By.CLASS_NAME, "label").text
    assert label in ("positive", "negative")
    assert len(column(page, "classifier").find_elements(By.CLASS_NAME, "class-row")) == 2

    # What the character GPT considered at one step, open for the picture.
    column(page, "char-gpt").find_elements(By.CSS_SELECTOR, ".token")[14].click()
    wait(page, lambda d: d.find_element(By.ID, "considered").is_displayed())
    shot = tmp_path / "playground.png"
    assert page.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    target = os.environ.get("PLAYGROUND_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
