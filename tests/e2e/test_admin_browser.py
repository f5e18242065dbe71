"""A person's path through the console, in headless Chromium (Debian's `chromium` and
`chromium-driver`): sign in, open a failed execution, retry it through the confirmation page,
and see the new execution with its parent link and an audit event naming the user."""

import shutil
from pathlib import Path

import pytest

from tests.conftest import missing_service

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "browser-test-password"  # noqa: S105


@pytest.fixture
def browser(tmp_path, monkeypatch):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        missing_service("needs Debian's chromium and chromium-driver (apt-get install)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1400,2400",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


@pytest.mark.browser
@pytest.mark.slow
def test_operator_retries_a_failed_execution_in_the_console(
    live_server, browser, role_user, recording_backend
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from executions import dispatcher, runner
    from executions.models import Execution

    role_user("operator", username="alice", password=PASSWORD)
    failed = dispatcher.dispatch(
        "diagnostics.sleep", {"permanent_failure": True}, trigger_source="cli"
    ).execution
    # Run it here, synchronously, so the test does not race a worker thread; sends of this test
    # (this one and the retry's) go to the recording backend.
    assert runner.run_execution(failed.id) == "failed"
    wait = WebDriverWait(browser, 20)
    change_url = f"/admin/executions/execution/{failed.id}/change/"

    browser.get(f"{live_server.url}/admin/login/?next={change_url}")
    browser.find_element(By.ID, "id_username").send_keys("alice")
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "action-retry"))).click()

    wait.until(ec.presence_of_element_located((By.ID, "confirm-count")))
    assert browser.find_element(By.ID, "confirm-count").text == "1"
    browser.find_element(By.ID, "id_reason").send_keys("fixed the input")
    browser.find_element(By.ID, "confirm-submit").click()

    wait.until(lambda d: str(failed.id) not in d.current_url and "/change/" in d.current_url)
    child = Execution.objects.get(parent=failed)
    assert f"/admin/executions/execution/{child.id}/change/" in browser.current_url
    parent_link = browser.find_element(By.CSS_SELECTOR, f".spine-lineage a[href='{change_url}']")
    assert parent_link.is_displayed()
    rows = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#event-timeline tbody tr")
    ]
    created = next(row for row in rows if row[1] == "created")
    assert (created[3], created[4]) == ("alice", "admin")  # actor and source

    out = ROOT / "test-results"
    out.mkdir(exist_ok=True)
    browser.save_screenshot(str(out / "admin-retry.png"))
    assert (out / "admin-retry.png").stat().st_size > 10_000

    retried = failed.events.get(kind="retried")
    assert (retried.actor, retried.source, retried.reason) == ("alice", "admin", "fixed the input")
    assert retried.request_id
    assert recording_backend.submitted[-1] == (str(child.id), "normal", 0.0)  # sent to run
