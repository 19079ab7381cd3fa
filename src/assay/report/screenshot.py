"""A full-page screenshot of a report in headless Chromium, as a person would see it.

    python -m assay.report.screenshot runs/<id>/report.html report.png

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium
chromium-driver``) and Selenium (``pip install 'assay[dev]'``). The browser test
and ``make screenshot`` both use this.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import MissingDependency, require

# Quiet, offline, reproducible: nothing should reach the network while a local file renders.
_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
_IMAGES_OK = "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"


def find_browser() -> tuple[str, str]:
    """Paths of ``chromium`` and ``chromedriver``.

    Raises:
        MissingDependency: naming the Debian packages to install.
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
        raise MissingDependency(f"{missing}: not found on PATH; install them with apt-get install chromium chromium-driver (as root)")
    return browser, driver


def screenshot(html: Path, png: Path, width: int = 1280) -> dict[str, Any]:
    """Render ``html`` in headless Chromium and save a full-page PNG.

    The window is ``width`` wide and as tall as the page, so the picture shows
    everything at the size a laptop screen would.

    Args:
        html: the report file.
        png: where to write the screenshot (folders are created).
        width: the window width in CSS pixels.

    Returns:
        ``{"png", "width", "height", "title", "text", "images"}``: the
        screenshot's path and size, the page title, its visible text, and for
        each ``<img>`` whether it loaded (complete, with a natural width > 0).

    Raises:
        MissingDependency: when Selenium, Chromium or chromedriver is missing.
        FileNotFoundError: when ``html`` does not exist.
    """
    html, png = Path(html).resolve(), Path(png)
    if not html.is_file():
        raise FileNotFoundError(f"{html}: no such report; write one first (assay report <run>)")
    webdriver = require("selenium.webdriver", "dev")
    browser, driver_path = find_browser()
    with tempfile.TemporaryDirectory(prefix="assay-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
        try:
            driver.set_window_size(width, 900)
            driver.get(html.as_uri())
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, height)
            # The window includes a little browser chrome even headless; grow by what the viewport lacks.
            inner = driver.execute_script("return window.innerHeight")
            if inner < height:
                driver.set_window_size(width, 2 * height - inner)
            png.parent.mkdir(parents=True, exist_ok=True)
            if not driver.save_screenshot(str(png)):
                raise OSError(f"{png}: Chromium could not write the screenshot")
            return {
                "png": png,
                "width": width,
                "height": height,
                "title": driver.title,
                "text": driver.execute_script("return document.body.innerText"),
                "images": driver.execute_script(_IMAGES_OK),
            }
        finally:
            driver.quit()


def main(argv: list[str] | None = None) -> int:
    """``python -m assay.report.screenshot REPORT.html OUT.png [WIDTH]``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m assay.report.screenshot REPORT.html OUT.png [WIDTH]", file=sys.stderr)
        return 2
    try:
        shot = screenshot(Path(args[0]), Path(args[1]), *(int(a) for a in args[2:]))
    except (MissingDependency, FileNotFoundError) as error:
        print(error, file=sys.stderr)
        return 2
    broken = shot["images"].count(False)
    print(f"{shot['png']}: {shot['width']}x{shot['height']}, {len(shot['images'])} images" + (f", {broken} BROKEN" if broken else ""))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
