"""The demo page at / in a real headless Chromium (Debian's `chromium`, driven by Playwright)."""

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

CHROMIUM = os.environ.get("KZOO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed "
                                                                 "(pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing; apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_demo_page_generates_and_transforms(page, server, tmp_path):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.rest_url + "/", timeout=30000)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert page.locator("#model option").all_inner_texts() == ["cgan", "fcn"]

    # a conditional generator: label + seed -> picture
    page.select_option("#model", "cgan")
    assert page.is_visible("#label-row") and page.is_visible("#seed-row")
    page.select_option("#label", "7")
    page.fill("#seed", "3")
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')", timeout=30000)
    out = page.locator("#outputs img.output")
    assert out.count() == 1
    assert page.evaluate("document.querySelector('#outputs img.output').naturalWidth") == 16
    assert "label = 7" in page.inner_text("#input-view")

    # an image model: upload a picture, see the output beside it
    photo = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    page.select_option("#model", "fcn")
    assert page.is_disabled("#run") and not page.is_visible("#label-row")
    page.set_input_files("input.image-file", str(path))
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')", timeout=30000)
    src = page.get_attribute("#outputs img.output", "src")
    assert src.startswith("data:image/png;base64,")
    shown = np.asarray(Image.open(io.BytesIO(__import__("base64").b64decode(src.split(",", 1)[1]))))
    assert shown.shape == (24, 40, 3)
    assert page.locator("#input-view img.input").count() == 1
    assert errors == []
