"""The demo page at / in a real headless Chromium (Debian's `chromium`, driven by Playwright)."""

import base64
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


def _shown(page):
    """The sample pictures on the page, decoded: (n, H, W) uint8."""
    srcs = page.eval_on_selector_all("#outputs img.sample", "imgs => imgs.map(i => i.src)")
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1])))) for s in srcs])


def _sample(page, steps, eta, seed, count):
    page.eval_on_selector("#steps", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                          str(steps))
    assert page.inner_text("#steps-value") == str(steps)
    page.fill("#eta", str(eta))
    page.fill("#seed", str(seed))
    page.fill("#count", str(count))
    page.click("#sample")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')", timeout=30000)


def test_demo_page_samples_ddim_from_the_sampler_endpoint_in_one_request(page, ddpm_server):
    """The DDIM view of a served sampler endpoint: steps slider (1..T, 20), eta, seed, a
    number of images; ONE predict request whose seeded noise gives the pictures shown (the
    same feeds through the ONNX sampler here give the same pixels)."""
    from kzoo.infer import OnnxModel

    errors, posts = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    page.goto(ddpm_server.rest_url + "/", timeout=30000)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert page.locator("#model option").all_inner_texts() == ["ddpm", "ddpm_sampler"]

    page.select_option("#model", "ddpm")  # the eps-network points to its sampler endpoint
    assert page.is_visible("#to-sampler") and not page.is_visible("#sampler-view")
    page.click("#to-sampler")
    assert page.input_value("#model") == "ddpm_sampler"
    assert page.is_visible("#sampler-view") and page.is_visible("#seed-row") and page.is_visible("#sample")
    assert not page.is_visible("#run")
    assert (page.get_attribute("#steps", "min"), page.get_attribute("#steps", "max")) == ("1", "50")
    assert page.input_value("#steps") == "20"

    model = OnnxModel(ddpm_server.repo.root / "ddpm_sampler" / "1")
    sent = {}
    for steps, eta in ((5, 0), (7, 0.5)):
        posts.clear()
        _sample(page, steps, eta, seed=3, count=3)
        assert len(posts) == 1 and posts[0].url.endswith("/v1/models/ddpm_sampler:predict")
        body = posts[0].post_data_json
        assert body["signature_name"] == "serving_images"
        feeds = {k: np.asarray(v, model.inputs[k]["dtype"]) for k, v in body["inputs"].items()}
        assert feeds["noise"].shape == (3, 8, 8, 1)
        assert feeds["steps"].tolist() == [steps] * 3 and feeds["sampler"].tolist() == [0] * 3
        np.testing.assert_allclose(feeds["eta"], eta)
        if eta == 0:  # K = 0: one draw of zeros, the spelling TF Serving's JSON parser accepts too
            assert feeds["step_noise"].shape == (3, 1, 8, 8, 1) and not feeds["step_noise"].any()
        else:  # one N(0, I) draw per step and image
            assert feeds["step_noise"].shape == (3, steps, 8, 8, 1)
            assert abs(feeds["step_noise"].mean()) < 0.1 and abs(feeds["step_noise"].std() - 1) < 0.1
        shown = _shown(page)
        assert shown.shape == (3, 8, 8)
        want = model.postprocess(model.run(**feeds))["images"][..., 0]
        np.testing.assert_array_equal(shown, want)
        sent[eta] = feeds
    np.testing.assert_array_equal(sent[0]["noise"], sent[0.5]["noise"])  # the seed gives x_T
    assert "η = 0.5" in page.inner_text("#input-view") and "(one request, 7 steps)" in page.inner_text("#status")

    # bad settings are refused on the page, without a request
    posts.clear()
    page.fill("#eta", "2")
    page.click("#sample")
    assert "η must be in [0, 1]" in page.inner_text("#status") and posts == []
    assert errors == []


def _mix(page, seed_a, rows, seed_b, cols, crossover, psi):
    page.fill("#seed-a", str(seed_a))
    page.fill("#rows", str(rows))
    page.fill("#seed-b", str(seed_b))
    page.fill("#cols", str(cols))
    if ":" in crossover:
        page.select_option("#crossover", "range")
        page.fill("#crossover-range", crossover)
    else:
        page.select_option("#crossover", crossover)
    page.eval_on_selector("#psi", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(psi))
    assert float(page.input_value("#psi-value")) == psi  # the slider drives the number box
    page.click("#mix")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')", timeout=30000)


def test_demo_page_style_mixing_view_maps_once_and_synthesizes_once(page, stylegan2_server):
    """The style-mixing view of a served StyleGAN2 (synthesis beside mapping): ONE mapping
    request for z_A and z_B, the mixed ws built on the page (A's ws with B's in the
    crossover range of kzoo.latent.crossover_range), ONE synthesis request for the grid
    (B sources, A sources, then the A x B cells, noise inputs zeros); the pixels shown
    are the synthesis endpoint's (onnxruntime) on those ws within 1/255."""
    from kzoo.infer import OnnxModel
    from kzoo.latent import crossover_range

    errors, posts = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
    page.goto(stylegan2_server.rest_url + "/", timeout=30000)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert page.locator("#model option").all_inner_texts() == ["sg_generator", "sg_mapping", "sg_synthesis"]

    page.select_option("#model", "sg_generator")  # the z -> image endpoint keeps its seed view
    assert page.is_visible("#to-mix") and page.is_visible("#seed-row") and not page.is_visible("#mix-view")
    page.click("#run")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')", timeout=30000)
    assert page.locator("#outputs img.output").count() == 1
    page.select_option("#model", "sg_mapping")  # the mapping endpoint points to the view
    assert page.is_visible("#to-mix") and not page.is_visible("#mix-view")
    page.click("#to-mix")
    assert page.input_value("#model") == "sg_synthesis"
    assert page.is_visible("#mix-view") and page.is_visible("#mix") and not page.is_visible("#run")
    # 4 ws: coarse 0:1, middle 1:4, no fine layers at 8x8
    assert page.eval_on_selector_all("#crossover option", "os => os.map(o => [o.value, o.disabled])") == [
        ["coarse", False], ["middle", False], ["fine", True], ["range", False]]

    root = stylegan2_server.repo.root
    mapping, synthesis = OnnxModel(root / "sg_mapping" / "1"), OnnxModel(root / "sg_synthesis" / "1")
    for crossover, psi, (rows, cols) in (("middle", 0.7, (2, 3)), ("2:4", 1.0, (3, 1))):
        posts.clear()
        _mix(page, 4, rows, 9, cols, crossover, psi)
        assert [p.url.rsplit("/", 1)[1] for p in posts] == ["sg_mapping:predict", "sg_synthesis:predict"]
        z = np.asarray(posts[0].post_data_json["inputs"]["z"], "float32")
        assert z.shape == (rows + cols, 8)
        w = mapping.run(z=z)["w"]
        body = posts[1].post_data_json
        feeds = {k: np.asarray(v, synthesis.inputs[k]["dtype"]) for k, v in body["inputs"].items()}
        start, stop = crossover_range(crossover, 4)
        wa, wb = w[:rows], w[rows:]
        want_ws = [np.repeat(v[None], 4, 0) for v in (*wb, *wa)]
        for a in wa:
            for b in wb:
                cell = np.repeat(a[None], 4, 0)
                cell[start:stop] = b
                want_ws.append(cell)
        np.testing.assert_allclose(feeds["ws"], np.stack(want_ws), atol=1e-5)
        np.testing.assert_allclose(feeds["truncation_psi"], np.full((len(want_ws), 1), psi))
        noise = [k for k in feeds if k.startswith("noise_")]
        assert len(noise) == 3 and not any(feeds[k].any() for k in noise)
        want = synthesis.postprocess(synthesis.run(**feeds))["image"][..., 0]
        srcs = page.eval_on_selector_all("#mix-grid img", "imgs => imgs.map(i => i.src)")
        shown = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1])))) for s in srcs])
        assert shown.shape == (cols + rows + rows * cols, 8, 8)
        order = [*range(cols)]  # the grid reads row by row: B sources, then each A source and its cells
        for i in range(rows):
            order += [cols + i, *(cols + rows + i * cols + j for j in range(cols))]
        assert np.abs(shown.astype(int) - want[order].astype(int)).max() <= 1
    assert "one mapping + one synthesis request" in page.inner_text("#status")

    # psi outside [0, 1] (or a bad range) is refused on the page, without a request
    for field, value, message in (("#psi-value", "1.5", "ψ must be in [0, 1]"),
                                  ("#psi-value", "-0.1", "ψ must be in [0, 1]"),
                                  ("#crossover-range", "3:9", "START < STOP <= 4")):
        posts.clear()
        page.fill("#psi-value", "0.5")
        page.fill(field, value)
        page.click("#mix")
        assert message in page.inner_text("#status") and posts == []
    assert errors == []
