"""The admin page in headless Chromium, against a host app behind a real HTTP server.

Debian's ``chromium`` package provides the browser; Playwright drives it through
``executable_path`` because its own browser download is not used here. Locally a
missing browser skips these tests; under CI (``CI`` set) it fails them.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from conftest import testdata as installed_test_file
from test_admin import create_admin_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
ADMIN_PATH = "/admin/dicom-mappings/"
WIDE = {"width": 1366, "height": 900}
NARROW = {"width": 390, "height": 844}

#: Runs before any page script; Chrome reports every blocked script or style here.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def _require_chromium():
    if os.path.exists(CHROMIUM):
        return
    message = f"{CHROMIUM} is missing; install Debian's chromium package (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run the browser tests")
    pytest.skip(message)


@pytest.fixture
def server(tmp_path_factory):
    """Serve a host app with an empty rule database on 127.0.0.1; yield its base URL."""
    app = create_admin_app(tmp_path_factory.mktemp("admin-browser"))
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()

    yield f"http://127.0.0.1:{http.server_port}"

    http.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport=WIDE, base_url=server, accept_downloads=True)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    context.set_default_timeout(15_000)

    # Every request must stay on the test server.
    outside: list[str] = []

    def keep_local(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", keep_local)

    page = context.new_page()
    # Chrome logs every non-2xx fetch as "Failed to load resource"; the expected
    # 400 of a validation error is one, so those lines are not counted.
    page.console_errors = []
    page.on(
        "console",
        lambda message: message.type == "error"
        and not message.text.startswith("Failed to load resource")
        and page.console_errors.append(message.text),
    )
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))

    yield page

    assert outside == [], f"requests outside 127.0.0.1: {outside}"
    context.close()


def screenshot(page, name: str, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def log_in(page, username: str, *, wait_ready: bool = True):
    page.goto(ADMIN_PATH)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-password")
    page.get_by_role("button", name="Log in").click()
    if wait_ready:
        # The page's script attaches its handlers after the first rules load.
        page.wait_for_selector("html[data-ready=true]", state="attached")


def csp_violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations")


def rule_row(page, field_name: str):
    return page.locator("#rules-body tr", has=page.locator(f'td[data-label="Field"]:text-is("{field_name}")'))


def test_admin_workflow(page, tmp_path):
    from playwright.sync_api import expect

    # Log in: the login page sends the administrator back to the admin page.
    log_in(page, "admin")
    expect(page.get_by_role("heading", name="Rules", exact=True)).to_be_visible()
    expect(page.locator("#rule-count")).to_have_text("0 rules shown: 0 site, 0 project.")

    # A validation error from the server shows beside its field.
    page.get_by_role("button", name="New rule").click()
    expect(page.get_by_role("heading", name="New rule", exact=True)).to_be_visible()
    page.get_by_label("Schema element").nth(1).select_option("xnat:mrSessionData")
    page.get_by_label("Field name").nth(1).fill("Weight!")
    page.get_by_label("Field type").select_option("float")
    page.locator("#rule-dicom-tag").fill("(0010,1030)")
    expect(page.locator("#tag-info")).to_have_text(
        "0x00101030 \u00b7 PatientWeight \u00b7 Patient's Weight \u00b7 VR DS \u00b7 VM 1"
    )
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#error-fieldName")).to_be_visible()
    expect(page.locator("#error-fieldName")).to_contain_text("Weight!")
    expect(page.locator("#rule-field-name")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "editor-validation-error-wide")

    # A tag that is not a DICOM keyword is flagged as it is typed.
    page.locator("#rule-dicom-tag").fill("PatientWait")
    expect(page.locator("#tag-info")).to_contain_text("'PatientWait' is not a DICOM keyword")
    page.locator("#rule-dicom-tag").fill("PatientWeight")
    expect(page.locator("#tag-info")).to_contain_text("0x00101030")

    # Create.
    page.locator("#rule-field-name").fill("weight")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#status")).to_contain_text("Created rule")
    expect(page.locator("#editor")).to_be_hidden()
    row = rule_row(page, "weight")
    expect(row).to_have_count(1)
    expect(row.locator('td[data-label="DICOM tag"]')).to_have_text("0x00101030")

    # A project rule, so filters and sorting have something to work on.
    page.get_by_role("button", name="New rule").click()
    page.locator("#rule-scope").select_option("Project")
    page.locator("#rule-project").select_option("ProjectB")
    page.locator("#rule-schema-element").select_option("xnat:mrScanData")
    page.locator("#rule-field-name").fill("repetition")
    page.locator("#rule-dicom-tag").fill("0x00180080")
    page.get_by_role("button", name="Save rule").click()
    expect(rule_row(page, "repetition")).to_have_count(1)
    expect(page.locator("#rule-count")).to_have_text("2 rules shown: 1 site, 1 project.")

    # Sort by field name, descending.
    field_sort = page.locator('.sort[data-key="fieldName"]')
    field_sort.click()
    field_sort.click()
    expect(page.locator("#rules-table th", has=field_sort)).to_have_attribute("aria-sort", "descending")
    expect(page.locator('#rules-body td[data-label="Field"]')).to_have_text(["weight", "repetition"])

    # Filter by scope, then clear.
    page.locator("#filter-scope").select_option("Project")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#rule-count")).to_have_text("1 rule of 2 shown: 0 site, 1 project.")
    expect(page.locator('#rules-body td[data-label="Field"]')).to_have_text(["repetition"])
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#rule-count")).to_have_text("2 rules shown: 1 site, 1 project.")
    screenshot(page, "rules-wide")

    # Edit: the form opens with the stored values, and the change is saved.
    rule_row(page, "weight").get_by_role("button", name="Edit").click()
    expect(page.locator("#editor-title")).to_contain_text("Edit rule")
    expect(page.locator("#rule-field-name")).to_have_value("weight")
    expect(page.locator("#rule-field-type")).to_have_value("float")
    page.locator("#rule-field-name").fill("patient_weight")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#status")).to_contain_text("Saved rule")
    expect(rule_row(page, "patient_weight")).to_have_count(1)
    expect(rule_row(page, "weight")).to_have_count(0)

    # History of the edited rule: its creation and the rename.
    rule_row(page, "patient_weight").get_by_role("button", name="History").click()
    history = page.locator("#history-dialog")
    expect(history).to_be_visible()
    expect(history.locator("tbody tr")).to_have_count(2)
    expect(history).to_contain_text("admin")
    expect(history.locator("ins")).to_contain_text(["patient_weight"])
    screenshot(page, "history-wide", full_page=False)
    history.get_by_role("button", name="Close").click()
    expect(history).to_be_hidden()

    # Narrow screen: the table becomes stacked cards and nothing overflows sideways.
    page.set_viewport_size(NARROW)
    page.evaluate("window.scrollTo(0, 0)")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    screenshot(page, "rules-narrow")
    page.get_by_role("button", name="New rule").click()
    page.locator("#editor").scroll_into_view_if_needed()
    screenshot(page, "editor-narrow", full_page=False)
    page.get_by_role("button", name="Cancel").click()
    page.set_viewport_size(WIDE)

    # Export, then check the exported set back in as a dry run.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export rules").click()
    exported = tmp_path / "exported.json"
    download_info.value.save_as(exported)
    bundle = json.loads(exported.read_text())
    assert "patient_weight" in exported.read_text(), bundle
    page.locator("#import-file").set_input_files(str(exported))
    page.get_by_role("button", name="Check import").click()
    expect(page.locator("#import-results .status")).to_contain_text("nothing was changed")
    screenshot(page, "import-check-wide")

    # Delete, cancelling once first.
    rule_row(page, "patient_weight").get_by_role("button", name="Delete").click()
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("0x00101030")
    screenshot(page, "delete-confirm-wide", full_page=False)
    dialog.get_by_role("button", name="Cancel").click()
    expect(rule_row(page, "patient_weight")).to_have_count(1)
    rule_row(page, "patient_weight").get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#status")).to_contain_text("Deleted rule")
    expect(rule_row(page, "patient_weight")).to_have_count(0)
    expect(page.locator("#rule-count")).to_have_text("1 rule shown: 0 site, 1 project.")

    assert csp_violations(page) == []
    assert page.console_errors == []


def test_preview_real_dicom_file(page):
    from playwright.sync_api import expect

    log_in(page, "admin")
    page.get_by_role("button", name="New rule").click()
    page.locator("#rule-schema-element").select_option("xnat:mrSessionData")
    page.locator("#rule-field-name").fill("patient_weight")
    page.locator("#rule-field-type").select_option("float")
    page.locator("#rule-dicom-tag").fill("PatientWeight")
    page.get_by_role("button", name="Save rule").click()
    expect(rule_row(page, "patient_weight")).to_have_count(1)

    # Preview MR_small.dcm with the saved rules and an unsaved one from the editor.
    page.get_by_role("button", name="New rule").click()
    page.locator("#rule-schema-element").select_option("xnat:mrScanData")
    page.locator("#rule-field-name").fill("echo_time")
    page.locator("#rule-field-type").select_option("float")
    page.locator("#rule-dicom-tag").fill("EchoTime")
    page.locator("#preview-files").set_input_files(installed_test_file("MR_small.dcm"))
    expect(page.locator("#preview-file-list")).to_have_text("1 file: MR_small.dcm")
    page.get_by_role("button", name="Run preview").click()
    session = page.locator(".preview-session")
    expect(session).to_have_count(1)
    expect(session.locator("h3")).to_contain_text("xnat:mrSessionData")
    weight = session.locator("tr", has=page.locator('th:text-is("patient_weight")'))
    expect(weight.locator("td")).to_have_text("80.0")
    echo = session.locator("tr", has=page.locator('th:has-text("echo_time")'))
    expect(echo.locator("td")).to_have_text("240.0")
    expect(echo.locator(".badge")).to_have_text("editor")
    page.locator("#preview").scroll_into_view_if_needed()
    screenshot(page, "preview-wide")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#editor")).to_be_hidden()
    expect(rule_row(page, "echo_time")).to_have_count(0)

    assert csp_violations(page) == []
    assert page.console_errors == []


def test_admin_keyboard_only(page):
    from playwright.sync_api import expect

    log_in(page, "admin")
    expect(page.get_by_role("heading", name="Rules", exact=True)).to_be_visible()

    # Tab to "New rule" from the top of the page and open the editor with Enter.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "new-rule":
            break
        page.keyboard.press("Tab")
    expect(page.locator("#new-rule")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#rule-scope")).to_be_focused()

    # Fill the form with the keyboard and submit it with Enter from a text field.
    page.keyboard.press("Tab")  # project, disabled for site scope, is skipped
    expect(page.locator("#rule-schema-element")).to_be_focused()
    page.locator("#rule-schema-element").select_option("xnat:ctSessionData")
    page.keyboard.press("Tab")
    page.keyboard.type("kvp")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type("KVP")
    expect(page.locator("#tag-info")).to_contain_text("0x00180060")
    page.keyboard.press("Enter")
    expect(rule_row(page, "kvp")).to_have_count(1)

    # Escape closes the editor.
    rule_row(page, "kvp").get_by_role("button", name="Edit").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#editor")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#editor")).to_be_hidden()
    expect(page.locator("#new-rule")).to_be_focused()

    assert csp_violations(page) == []
    assert page.console_errors == []


def test_regular_user_is_refused(page):
    from playwright.sync_api import expect

    response_codes = []
    page.on("response", lambda response: response.url.endswith(ADMIN_PATH) and response_codes.append(response.status))

    log_in(page, "user", wait_ready=False)

    expect(page.get_by_role("heading", name="Administrators only")).to_be_visible()
    assert response_codes[-1] == 403
    expect(page.locator("#rules-table")).to_have_count(0)
    screenshot(page, "forbidden-wide")


def test_anonymous_gets_login_page(page):
    from playwright.sync_api import expect

    page.goto(ADMIN_PATH)

    expect(page.get_by_label("Username")).to_be_visible()
    assert "/login" in page.url
