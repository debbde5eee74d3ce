"""The web page in a real browser (Debian's Chromium driven by Playwright) against a real
gunicorn on 127.0.0.1 serving the committed models: a digit drawn stroke by stroke with the
mouse, an uploaded PNG, the housing form with an invalid value, a phone-sized screen.

Without Chromium the tests skip saying what to install; under CI (``CI=true``, as
``.ci/run`` sets) a missing browser fails. ``SCREENSHOT_DIR`` (default: a temporary folder)
receives a screenshot per test; ``make screenshots`` writes them to docs/screenshots/.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
import requests

from tests.factories import digit_png
from tests.service.gunicorn_server import running

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]
INSTALL = "apt-get install -y --no-install-recommends chromium"


def chromium_path() -> str:
    """Debian's Chromium, or skip (fail under CI) saying how to install it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = f"the browser tests need Chromium: {INSTALL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running(ROOT / "artifacts", tmp_path_factory.mktemp("gunicorn-web")) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.goto(server.url + "/?model=mnist")
    page.locator("#digit-panel").wait_for()
    yield page
    context.close()


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw on the pad with the mouse, each stroke through points given as fractions of
    the pad's width and height."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                  for fx, fy in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(x, y, steps=8)
        page.mouse.up()


def probabilities(page) -> list[float]:
    return [float(t.rstrip("%")) for t in page.locator("#bars .pct").all_inner_texts()]


def test_drawn_digits_are_recognised(page, shots):
    page.uncheck("#auto")
    draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])    # a 7: the bar, the stem
    page.click("#predict-digit")
    page.wait_for_function("document.querySelector('#digit-label').textContent !== ''")
    assert page.inner_text("#digit-label") == "It is a 7"
    assert len(probabilities(page)) == 10 and max(probabilities(page)) > 50
    assert page.locator("#seen-figure").is_visible()
    page.screenshot(path=shots / "draw-7.png")

    page.click("#clear")
    page.check("#auto")                                      # predicts on lifting the pen
    draw(page, [[(0.3, 0.3), (0.5, 0.15), (0.5, 0.85)], [(0.35, 0.85), (0.65, 0.85)]])
    page.wait_for_function("document.querySelector('#digit-label').textContent.endsWith('1')")
    assert page.inner_text("#digit-label") == "It is a 1"


def test_uploaded_picture(page, shots):
    page.set_input_files("#file", ROOT / "examples" / "digit-7.png")
    page.wait_for_function("document.querySelector('#digit-label').textContent !== ''")
    assert page.inner_text("#digit-label") == "It is a 7"
    assert page.locator("#bars li.top").inner_text().startswith("7")
    page.screenshot(path=shots / "upload.png")

    page.evaluate("""b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const files = new DataTransfer();
        files.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
        document.querySelector("#digit-label").textContent = "";
        document.querySelector("#drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: files, bubbles: true, cancelable: true}));
    }""", base64.b64encode(digit_png(seed=1)).decode())     # drag and drop
    page.wait_for_function("document.querySelector('#digit-label').textContent !== ''")
    assert page.inner_text("#digit-label").startswith("It is a ")

    page.set_input_files("#file", files=[{"name": "notes.png", "mimeType": "image/png",
                                          "buffer": b"not a picture"}])
    page.wait_for_function("document.querySelector('#digit-error').textContent !== ''")
    assert "not a picture" in page.inner_text("#digit-error")
    assert page.inner_text("#digit-label") == ""


def test_housing_form_round_trip(page, shots):
    page.select_option("#model", "housing")
    page.locator("#table-panel").wait_for()
    assert page.locator("#digit-panel").is_hidden()
    assert page.input_value("#f-RM") == "6.21"
    assert "average rooms per dwelling" in page.inner_text("#table-panel")
    page.click("#predict-table")
    page.wait_for_function("document.querySelector('#table-answer').textContent !== ''")
    price = page.inner_text("#table-answer")
    assert price.startswith("Predicted price: $")
    assert 10_000 < int(price.split("$")[1].replace(",", "")) < 50_000

    page.fill("#f-RM", "six")
    page.keyboard.press("Enter")                             # keyboard submits the form
    page.wait_for_function("document.querySelector('#e-RM').textContent !== ''")
    assert "Not a valid number" in page.inner_text("#e-RM")
    assert page.get_attribute("#f-RM", "aria-invalid") == "true"
    assert page.inner_text("#e-LSTAT") == "" and page.inner_text("#table-answer") == ""
    page.screenshot(path=shots / "housing-error.png", full_page=True)

    page.fill("#f-RM", "7")
    page.click("#predict-table")
    page.wait_for_function("document.querySelector('#table-answer').textContent !== ''")
    assert page.inner_text("#e-RM") == ""


def test_phone_sized_screen(browser, server, shots):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True,
                                  is_mobile=True, device_scale_factor=1)
    page = context.new_page()
    page.goto(server.url + "/?model=mnist")
    page.locator("#digit-panel").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    pad = page.locator("#pad").bounding_box()
    assert pad["width"] <= 390 and pad["x"] >= 0
    page.set_input_files("#file", ROOT / "examples" / "digit-7.png")
    page.wait_for_function("document.querySelector('#digit-label').textContent !== ''")
    assert page.inner_text("#digit-label") == "It is a 7"
    page.screenshot(path=shots / "phone.png", full_page=True)
    context.close()


def test_token_field_appears_when_the_server_asks(browser, server):
    """A 401 (as an auth middleware answers) shows the token field; the token is then sent
    as a bearer token."""
    context = browser.new_context()
    page = context.new_page()
    sent = []

    def guard(route):
        auth = route.request.headers.get("authorization")
        sent.append(auth)
        if auth != "Bearer s3cret":
            route.fulfill(status=401, content_type="application/json",
                          body='{"error": "missing or invalid bearer token", "details": {}}')
        else:
            route.continue_()

    page.route("**/v1/models", guard)
    page.goto(server.url + "/")
    page.locator("#token").wait_for()
    assert "needs a token" in page.inner_text("#server-error")
    assert page.locator("#model option").count() == 0
    page.fill("#token", "s3cret")
    page.keyboard.press("Tab")                               # change event: list again
    page.wait_for_function("document.querySelectorAll('#model option').length > 0")
    assert sent[-1] == "Bearer s3cret" and page.inner_text("#server-error") == ""
    context.close()


def test_other_clients_at_root_still_get_liveness(server):
    assert requests.get(server.url + "/", timeout=10).json() == {"status": "alive"}
    page = requests.get(server.url + "/", headers={"Accept": "text/html"}, timeout=10)
    assert page.headers["Content-Type"].startswith("text/html")
    for asset in ("app.js", "style.css"):
        assert requests.get(f"{server.url}/static/{asset}", timeout=10).status_code == 200
