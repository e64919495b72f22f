"""deploy.ipynb in a real browser: Debian's Chromium, driven by Playwright, on JupyterLab."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.conftest import ARTIFACTS, CHROMIUM
from workbench import lab as jupyter
from workbench import serving
from workbench.settings import Settings

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make chromium)")
    with sync_playwright() as playwright:
        # A profile of its own, so nothing of an earlier run (or the user's) leaks in.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def test_deploy_notebook_panel_deploys_version_2_in_chromium(
    page: Page, lab: Settings, fraud_model: str
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _run_all_cells(page, lab)
        panel = page.locator(".jp-OutputArea-output").filter(has_text="Send test events").last
        expect(panel.get_by_text("Serving version 1")).to_be_visible(timeout=60_000)

        # Pick version 2, deploy it through the gate, confirm.
        choice = panel.locator(".widget-dropdown select")
        label = next(t for t in choice.locator("option").all_inner_texts() if t.startswith("2"))
        choice.select_option(label=label)
        panel.get_by_role("button", name="Deploy", exact=True).click()
        panel.get_by_role("button", name="Confirm", exact=True).click()

        expect(panel.get_by_text("Serving version 2")).to_be_visible(timeout=180_000)
        expect(panel.get_by_text("Version 2 is champion")).to_be_visible()
        assert serving.endpoint(fraud_model, lab).version == "2"

        # Test events scored by the service, for the chart in the screenshot.
        panel.get_by_label("Score directly through the service").check()
        panel.get_by_role("button", name="Send test events").click()
        expect(panel.get_by_text("scores returned by the service")).to_be_visible(timeout=120_000)
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=ARTIFACTS / "panel.png")
    finally:
        page.screenshot(path=ARTIFACTS / "lab.png")


def _run_all_cells(page: Page, lab: Settings) -> None:
    page.goto(jupyter.url(lab, "deploy.ipynb"))
    expect(page.locator(".jp-NotebookPanel")).to_be_visible(timeout=120_000)
    # The kernel named in the notebook starts by itself; Run All waits until it is idle.
    expect(page.get_by_text("workbench (lab) | Idle")).to_be_visible(timeout=120_000)
    news = page.get_by_text("Would you like to get notified about official Jupyter news?")
    if news.is_visible():
        page.get_by_role("button", name="No", exact=True).click()
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
    # The last cell shows the panel once every cell before it ran without error.
    expect(page.get_by_role("button", name="Send test events")).to_be_visible(timeout=300_000)
