"""The Dagster UI in a real browser: what an engineer opening `make dev` after `make demo` sees.

Playwright drives Debian's Chromium against `dagster dev` serving a freshly materialized demo (one
per module: the demo and the server start are most of the cost). Each test leaves a screenshot of
its last view in ``test-artifacts/ui/<test name>.png``, the demo's and the server's logs beside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Error, Page, expect, sync_playwright

from aiops_assets.core.registry import MODEL_NAME
from aiops_assets.core.telemetry import NullInjection, default_scenario
from aiops_assets.reference.definitions import build_definitions
from aiops_assets.reference.settings import PipelineSettings
from aiops_assets_tests.ui.served_demo import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    ServedDemo,
    chromium_or_fail,
    serve_demo,
)

# A subprocess demo served by `dagster dev`, seen through Chromium.
pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

# Generous because the machine is shared; every wait is bounded by one of these.
UI_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 300_000
# A line through at least two points of a 700-pixel-wide chart; one lone point draws ~20 pixels.
MIN_LINE_PIXELS = 300


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_fail()


@pytest.fixture(scope="module")
def served(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDemo]:
    for stale in ARTIFACTS.glob("*.png"):
        stale.unlink()
    with serve_demo(tmp_path_factory.mktemp("ui")) as served_demo:
        yield served_demo


@pytest.fixture(scope="module")
def browser(chromium: str, served: ServedDemo) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            _dismiss_community_dialog(launched, served.url)
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, served: ServedDemo, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(base_url=served.url, viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.set_default_navigation_timeout(UI_TIMEOUT_MS)
    opened = context.new_page()
    try:
        yield opened
    finally:
        try:
            opened.screenshot(path=ARTIFACTS / f"{request.node.name}.png")
        except Error as error:  # a crashed page must not hide the test's own failure
            print(f"no screenshot for {request.node.name}: {error}")
        context.close()


def _dismiss_community_dialog(browser: Browser, url: str) -> None:
    """A fresh instance greets its first visitor with "Join the Dagster community"; the answer
    is kept in the instance, so skipping it once clears the way for every later page."""
    context = browser.new_context(base_url=url)
    try:
        first = context.new_page()
        first.goto("/", timeout=UI_TIMEOUT_MS)
        skip = first.get_by_role("button", name="Skip")
        try:
            skip.click(timeout=UI_TIMEOUT_MS)
        except Error:
            print("no community dialog to skip: the instance has seen one before")
            return
        expect(skip).to_be_hidden(timeout=UI_TIMEOUT_MS)
    finally:
        context.close()


def test_asset_graph_shows_every_reference_asset(page: Page, served: ServedDemo) -> None:
    expected = sorted(
        key.to_user_string() for key in build_definitions(served.settings).resolve_all_asset_keys()
    )
    page.goto("/asset-groups")
    nodes = page.locator("svg foreignObject")
    for name in expected:
        node = nodes.filter(has=page.get_by_text(name, exact=True))
        expect(node, f"asset graph node {name}").to_have_count(1, timeout=UI_TIMEOUT_MS)
        expect(node).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(nodes).to_have_count(len(expected), timeout=UI_TIMEOUT_MS)


def test_quality_check_of_null_injection_day_is_shown_failed(
    page: Page, served: ServedDemo
) -> None:
    day = _null_injection_day(served.settings)
    check = _failed_check(served.demo, "telemetry_snapshot", day)
    clean_day = served.settings.start.isoformat()
    page.goto(f"/assets/telemetry_snapshot?view=checks&checkDetail={check}")
    page.get_by_role("tab", name="Execution history").click()
    rows = page.get_by_role("row")
    failed = rows.filter(has_text=day)
    expect(failed).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(failed).to_contain_text("Failed")
    passed = rows.filter(has_text=clean_day)
    expect(passed).to_have_count(1)
    expect(passed).to_contain_text("Passed")


def test_drift_score_is_plotted_over_time(page: Page, served: ServedDemo) -> None:
    drift_evaluations = [
        label for label in served.demo["checks"] if label.startswith("features.drift[")
    ]
    assert len(drift_evaluations) >= 2, f"the demo evaluated drift only for {drift_evaluations}"
    page.goto("/assets/features?view=checks&checkDetail=drift")
    # The Plots section graphs each float metadata entry of the check over the evaluations' times.
    score_plots = page.locator(
        "xpath=//span[starts-with(normalize-space(.), 'score/')]/../following-sibling::div//canvas"
    )
    expect(score_plots.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    plot = score_plots.first
    plot.scroll_into_view_if_needed()
    label = plot.locator("xpath=../../preceding-sibling::div").inner_text()
    try:
        page.wait_for_function(
            f"canvas => ({_COUNT_LINE_PIXELS})(canvas) >= {MIN_LINE_PIXELS}",
            arg=plot.element_handle(),
            timeout=UI_TIMEOUT_MS,
        )
    except Error:
        drawn = plot.evaluate(_COUNT_LINE_PIXELS)
        pytest.fail(
            f"the plot of {label} has {drawn} line pixels, fewer than {MIN_LINE_PIXELS}: no line"
        )


# Pixels of the plot's line colour (the theme's accent blue, which the UI's plots draw with).
_COUNT_LINE_PIXELS = """canvas => {
  const probe = document.createElement('canvas').getContext('2d');
  const accent = getComputedStyle(document.documentElement).getPropertyValue('--color-accent-blue');
  if (!accent.trim()) return -1;
  probe.fillStyle = accent.trim();
  probe.fillRect(0, 0, 1, 1);
  const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i] === r && pixels[i + 1] === g && pixels[i + 2] === b && pixels[i + 3] === 255) count++;
  }
  return count;
}"""


def test_incident_report_markdown_renders(page: Page, served: ServedDemo) -> None:
    partition = _failed_partition(served.demo, "anomaly_scores.performance")
    page.goto("/assets/anomaly_scores?view=checks&checkDetail=performance")
    page.get_by_role("tab", name="Execution history").click()
    row = page.get_by_role("row").filter(has_text=partition)
    expect(row).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(row).to_contain_text("Failed")
    row.get_by_role("button", name="metadata").click()
    metadata = page.get_by_role("dialog").filter(has_text="incident_report")
    metadata.get_by_role("row").filter(has_text="incident_report").get_by_text(
        "[Show Markdown]"
    ).click()
    title = page.get_by_role("heading", name=f"Incident: {MODEL_NAME}", exact=True)
    report = page.get_by_role("dialog").filter(has=title)
    expect(title).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(report.get_by_role("heading", name="Timeline", exact=True)).to_be_visible()
    expect(report.get_by_role("heading", name="Suspects", exact=True)).to_be_visible()
    expect(report.get_by_role("columnheader", name="rank", exact=True)).to_be_visible()
    # Rendered, not shown as source: no markdown syntax survives as text.
    expect(report.get_by_text(re.compile(r"^#+ |\| --- \|"))).to_have_count(0)
    title.scroll_into_view_if_needed()


def test_rollout_stages_are_shown_on_the_champion(page: Page, served: ServedDemo) -> None:
    """Each verdict of the demo's staged rollout is an observation of champion_model: the
    engineer sees every stage, its services and its status on the model's own page."""
    [rollout] = served.demo["registry"]["rollouts"]
    wanted = {(stage["name"], stage["status"]) for stage in rollout["stages"]}
    page.goto("/assets/champion_model?view=events")
    entries = page.get_by_text(re.compile(r"^\w{3} \d+, \d+:\d+ (AM|PM)$"))
    expect(entries.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    seen: set[tuple[str, str]] = set()
    for index in range(entries.count()):
        entries.nth(index).click()
        kind = page.get_by_text(re.compile(r"^(Observed|Materialized in run)")).first
        expect(kind).to_be_visible(timeout=UI_TIMEOUT_MS)
        if kind.inner_text().strip() != "Observed":
            continue
        seen.add((_metadata_value(page, "stage"), _metadata_value(page, "stage_status")))
        if "completed" in _metadata_value(page, "rollout_status"):
            # The last verdict's summary renders every stage as a table.
            for name, status in wanted:
                table_row = (
                    page.get_by_role("row")
                    .filter(has=page.get_by_role("cell", name=name, exact=True))
                    .filter(has=page.get_by_role("cell", name=status, exact=True))
                )
                expect(table_row.first).to_be_visible()
    assert seen == wanted


def _metadata_value(page: Page, key: str) -> str:
    row = page.get_by_role("row").filter(has=page.get_by_text(key, exact=True)).first
    expect(row).to_be_visible(timeout=UI_TIMEOUT_MS)
    return row.inner_text().split(key, 1)[1].strip()


def test_materialization_launched_from_the_ui_completes(page: Page) -> None:
    page.goto("/assets/drift_baseline")
    page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$")).click()
    toast = page.locator("[data-sonner-toast]").filter(has_text="Launched run")
    expect(toast).to_be_visible(timeout=UI_TIMEOUT_MS)
    run_path = toast.get_by_role("link", name="View").get_attribute("href")
    assert run_path is not None and run_path.startswith("/runs/"), run_path
    page.goto(run_path)
    # Wait for the run to end either way, so a failed run fails the test at once.
    outcome = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(outcome).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(outcome).to_have_text("Success")
    expect(page.get_by_text("ASSET_MATERIALIZATION", exact=True).first).to_be_visible()


def _null_injection_day(settings: PipelineSettings) -> str:
    scenario = default_scenario(settings.start, settings.days, settings.seed)
    days = [event.day for event in scenario.events if isinstance(event, NullInjection)]
    assert len(days) == 1, f"the reference scenario should inject nulls on one day: {days}"
    return days[0].isoformat()


def _failed_check(demo: dict[str, Any], asset: str, partition: str) -> str:
    """The one check of ``asset`` that failed at ERROR on ``partition``, as the demo recorded it."""
    pattern = re.compile(rf"^{re.escape(asset)}\.(\w+)\[{re.escape(partition)}\]$")
    failed = [
        match.group(1)
        for label, outcome in demo["checks"].items()
        if (match := pattern.match(label))
        and not outcome["passed"]
        and outcome["severity"] == "ERROR"
    ]
    assert len(failed) == 1, f"the demo should fail one check of {asset}[{partition}]: {failed}"
    return failed[0]


def _failed_partition(demo: dict[str, Any], check: str) -> str:
    pattern = re.compile(rf"^{re.escape(check)}\[([\d-]+)\]$")
    failed = [
        match.group(1)
        for label, outcome in demo["checks"].items()
        if (match := pattern.match(label)) and not outcome["passed"]
    ]
    assert len(failed) == 1, f"the demo should fail {check} on one partition: {failed}"
    return failed[0]
