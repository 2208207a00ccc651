"""The task page in a real browser (Debian Chromium via Playwright): rounds, winner, heat map,
live update while a round runs, no request leaves the explorer (works offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.explorer.conftest import BAD, new_task, play_round

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium chromium-driver")


def test_task_page_shows_rounds_winner_heat_map_and_updates_live(server, deployment, run):
    from playwright.sync_api import expect, sync_playwright

    failed_tx = run.failed_tx
    task = new_task(deployment)
    t = task.task_id
    play_round(deployment, task, 1)
    metrics = deployment.metrics / f"task-{t}.json"  # what the simulation writes after each round
    deployment.metrics.mkdir(exist_ok=True)
    metrics.write_text(json.dumps({"rounds": [{"round": 1, "accuracy": 0.861}]}))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            outside, errors = [], []
            page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/task/{t}")

            r1 = page.locator("#round-1")
            expect(r1).to_have_attribute("data-status", "finalised")
            winner = deployment.fl.round_info(t, 1).winner - 1
            expect(r1.locator(".badge.winner").first).to_contain_text(f"#{winner}")
            heat = page.locator("#heatmap-1")
            expect(heat.locator("td.cell")).to_have_count(4 * 4 + 4)  # 4 validators x 4 models + mean row
            expect(r1.locator("table.subs .badge.rejected")).to_have_count(1)
            expect(r1.locator("table.subs tr").nth(BAD + 1)).to_contain_text("rejected")
            expect(page.locator("#round-2")).to_have_attribute("data-status", "open")
            expect(page.locator("#live.on")).to_be_visible()  # the SSE stream is connected

            play_round(deployment, task, 2)  # while the page is open: it must update by itself
            metrics.write_text(
                json.dumps({"rounds": [{"round": 1, "accuracy": 0.861}, {"round": 2, "accuracy": 0.902}]})
            )
            deployment.fl.w3.provider.make_request("evm_mine", [])  # a new block makes the page refresh
            expect(page.locator("#round-2")).to_have_attribute("data-status", "finalised", timeout=15_000)
            expect(page.locator("#heatmap-2 td.cell")).to_have_count(20)
            expect(page.locator("h1 .badge")).to_have_text("finished")
            expect(page.locator("svg.chart")).to_have_count(2)  # reputation and accuracy charts
            expect(page.locator("#round-2 .badge.accuracy")).to_have_text("accuracy 90.20%")

            # the heat map's low scores are visibly red, the high ones green
            bad_cell = heat.locator("tr").nth(1).locator("td.cell").nth(BAD)
            assert "hsl(" in bad_cell.get_attribute("style")
            page.screenshot(path=str(ARTIFACTS / "explorer-task.png"), full_page=True)

            # search box: a tx hash leads to the decoded transaction page
            sub = deployment.fl.submissions(t, 2)[0]
            page.fill("input[name=q]", sub.tx_hash)
            page.press("input[name=q]", "Enter")
            expect(page.locator("main")).to_contain_text("submitModel")
            expect(page.locator("main")).to_contain_text("ModelSubmitted")
            page.screenshot(path=str(ARTIFACTS / "explorer-tx.png"), full_page=True)

            # a reverted transaction shows its decoded custom error
            page.goto(f"{server.url}/tx/{failed_tx}")
            expect(page.locator(".revert")).to_contain_text("reverted with ")
            page.screenshot(path=str(ARTIFACTS / "explorer-failed-tx.png"), full_page=True)
            page.goto(server.url + "/")
            expect(page.locator("main")).to_contain_text(f"Task {t}")
            page.screenshot(path=str(ARTIFACTS / "explorer-home.png"), full_page=True)
            assert not outside, f"the page fetched outside the explorer: {outside}"
            assert not errors, errors
        finally:
            browser.close()
