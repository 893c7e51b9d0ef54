"""Browser tests: headless Chromium (Debian's `chromium` package) driven by Playwright. Playwright's own
browser downloads are never used: the tests launch the system executable.

Outside CI a machine without Chromium (or without the playwright package) skips these tests with the reason;
in CI (CI=true) a missing browser fails them, so the browser tests can never silently stop running."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CUTOVER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives headless Chromium through Playwright (tests/browser/)")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _unavailable(why: str) -> None:
    if _in_ci():
        pytest.fail(f"{why}; CI must run the browser tests (install Debian's chromium package and the dev extra)")
    pytest.skip(f"{why} (install Debian's `chromium` and `pip install -e '.[dev]'`; required when CI=true)")


@pytest.fixture
def chromium(transactional_db):
    """A headless Chromium for one test. Playwright's sync API runs an event loop in this thread while it is
    open, and Django refuses database work next to a running loop, so it is opened after the test database
    is set up and closed before the database is flushed (never kept for the session)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _console_error(message, errors: list[str]) -> None:
    # The browser asks every site for /favicon.ico by itself; the admin has none.
    if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
        errors.append(f"{message.text} ({message.location.get('url', '')})")


@pytest.fixture
def page_errors() -> list[str]:
    """Console errors and uncaught exceptions of the test's page."""
    return []


@pytest.fixture
def page(chromium, page_errors, monkeypatch):
    """A fresh browser context and page.

    Playwright's sync API keeps an event loop in this thread, which Django's ORM takes for async code: the
    test's own service calls are synchronous, so say so."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    context = chromium.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.on("console", lambda message: _console_error(message, page_errors))
    yield page
    context.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    """Where screenshots go: $CUTOVER_ARTIFACTS_DIR/screenshots, else var/artifacts/screenshots in the repo."""
    base = Path(os.environ.get("CUTOVER_ARTIFACTS_DIR") or REPO / "var" / "artifacts")
    directory = base / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory
