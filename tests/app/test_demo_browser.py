"""``meddtfm serve`` in a real browser: headless Chromium (the system's, Debian ``chromium``) through Playwright.

The server runs as its own process on a free loopback port with a tiny model; the page gets a mask upload, two
seeds, a healthy reference, two bad inputs and, with a second page, two requests at once.
``MEDDTFM_DEMO_SCREENSHOT=docs/demo.png`` also saves the page there (the README's screenshot).
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
for module in ("gradio", "playwright"):
    pytest.importorskip(module, reason=f"{module} is not installed: pip install -e '.[demo]'")
if not Path(CHROMIUM).is_file():
    pytest.skip("no Chromium: apt-get install chromium (Debian package) to run the browser test",
                allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_flow_run: Path) -> Iterator[str]:
    """``meddtfm serve`` of the tiny run on a free port: its URL, once it answers."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "meddtfm", "serve", "--checkpoint", str(tiny_flow_run),
                                "--port", str(port), "--references", "2", "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"meddtfm serve exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("meddtfm serve did not answer within 120 s")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _upload(page: Page, element: str, path: Path) -> None:
    """Put ``path`` (a stem no label holds) into the file box ``#element``, clearing the file it holds."""
    clear = page.locator(f"#{element} button[aria-label='Clear']")
    if clear.count():
        clear.click()
    page.set_input_files(f"#{element} input[type=file]", str(path))
    page.wait_for_selector(f"#{element} :text('{path.stem}')", timeout=20_000)  # a long name shows split


def _generate(page: Page, expect: str) -> str:
    """Press Generate and wait until the status line holds ``expect``; the status text."""
    page.click("#generate")
    page.wait_for_selector(f"#status :text('{expect}')", timeout=60_000)
    return page.inner_text("#status")


def _image(page: Page, selector: str) -> Image.Image:
    src = page.get_attribute(selector, "src")
    return Image.open(io.BytesIO(page.request.get(src).body()))


def test_the_demo_in_a_browser(server: str, tmp_path: Path) -> None:
    start = time.monotonic()
    labels = np.zeros((32, 32), np.uint8)
    labels[8:20, 10:22], labels[12:16, 14:18] = 2, 3
    Image.fromarray(labels).save(tmp_path / "lesion-mask.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "empty-mask.png")
    colour = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour-slice.png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.wait_for_selector("#generate")
        _upload(page, "mask-file", tmp_path / "lesion-mask.png")
        assert "seed 0" in _generate(page, "noise-based, seed 0")
        first = _image(page, "#sample img")
        href = page.get_attribute("#download a", "href")
        download = Image.open(io.BytesIO(page.request.get(href).body()))
        assert first.size == download.size == (32, 32), "the model's size"
        page.fill("#seed input", "1")
        _generate(page, "noise-based, seed 1")
        second = _image(page, "#sample img")
        assert second.size == (32, 32) and np.asarray(first).tolist() != np.asarray(second).tolist()

        page.click("#reference input")
        page.locator("ul[role=listbox] li", has_text="healthy").first.click()
        page.wait_for_selector("#reference-preview img", timeout=20_000)
        _generate(page, "reference-guided")
        assert _image(page, "#difference img").size == (32, 32)
        if os.environ.get("MEDDTFM_DEMO_SCREENSHOT"):
            page.screenshot(path=os.environ["MEDDTFM_DEMO_SCREENSHOT"], full_page=True)

        _upload(page, "reference-file", tmp_path / "colour-slice.png")
        page.wait_for_function("document.querySelector('#reference input').value === 'uploaded file'")
        assert "colour-slice.png is a colour (RGB) image; this model takes one channel (flair)" in _generate(
            page, "Cannot generate")
        page.click("#reference input")
        page.locator("ul[role=listbox] li", has_text="none").first.click()
        _upload(page, "mask-file", tmp_path / "empty-mask.png")
        assert "the mask is empty" in _generate(page, "the mask is empty")
        _upload(page, "mask-file", tmp_path / "lesion-mask.png")
        _generate(page, "noise-based, seed 1")  # the server still answers

        other = browser.new_page()  # two requests at once: the second waits in the queue
        other.goto(server)
        other.wait_for_selector("#generate")
        _upload(other, "mask-file", tmp_path / "lesion-mask.png")
        page.fill("#seed input", "2")
        page.click("#generate")
        other.click("#generate")
        page.wait_for_selector("#status :text('noise-based, seed 2')", timeout=60_000)
        other.wait_for_selector("#status :text('noise-based, seed 0')", timeout=60_000)
        browser.close()
    print(f"browser steps took {time.monotonic() - start:.1f} s")
