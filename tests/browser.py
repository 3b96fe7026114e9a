"""The headless Chromium of the visualizer's browser test and of docs/make_visualizer_image.py:
Debian's ``chromium`` and ``chromium-driver`` packages (``make test`` installs them when run as
root), driven by Selenium with explicit paths, so nothing is downloaded at run time."""

import os
import time

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing():
    """Why the browser cannot run here (a sentence), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; the test extra has it)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return (f"{path} is missing (apt-get install chromium chromium-driver; "
                    "make test does this when run as root)")
    return None


def chrome(width=1400, height=1000):
    """A headless Chromium session (``--no-sandbox``: tests run as root in CI)."""
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    return drv


def set_control(drv, element_id, value):
    """Set a control's value as a user would and fire its input and change events."""
    drv.execute_script(
        "const el = document.getElementById(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('input', {bubbles: true}));"
        "el.dispatchEvent(new Event('change', {bubbles: true}));", element_id, str(value))


def shown_query(drv):
    """The query of the picture on show (``#view``'s ``data-query``), or ''."""
    return drv.execute_script("return document.getElementById('view').dataset.query || ''")


def wait_shown(drv, words, timeout=120):
    """Wait (bounded) until the picture on show was rendered for a query holding every
    ``words`` item and no request is running; returns that query."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        q = shown_query(drv)
        if q and all(w in q.split("&") for w in words):
            return q
        time.sleep(0.1)
    raise TimeoutError(f"the page did not show {words} within {timeout} s (shows {q!r}; "
                       f"error: {drv.find_element('id', 'error').text!r})")

