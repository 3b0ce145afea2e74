"""Drives two `jit console` instances in headless Chromium (run by tests/console.rs).

The requester submits a request for a manual-approval node in the form, using the keyboard; the
approver approves it with a comment in their own console (another browser, another profile); the
requester then sees `Approved` and the audit trail's timeline on the request's page. Screenshots
of each page go to --screenshots. Prints `request: <id>` for the Rust side to check through the API.
Any failed expectation raises, so the process exits non-zero.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WIDTH = 1280
# The browsers in use, for the page dump when something fails.
DRIVERS = []


def browser(args, profile_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in CI; the pages are the console's own
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        f"--window-size={WIDTH},900",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver), options=options)
    DRIVERS.append(driver)
    return driver


def dump_pages():
    """What each browser shows, to tell why an expectation failed."""
    for driver in DRIVERS:
        try:
            print(f"--- {driver.current_url}\n{driver.find_element(By.TAG_NAME, 'body').text[:4000]}", file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - a dump must not hide the failure
            print(f"--- (page unreadable: {e})", file=sys.stderr)


def origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def wait(driver, seconds=15):
    return WebDriverWait(driver, seconds)


def shot(driver, directory, name):
    """A screenshot of the whole page at the laptop width."""
    height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
    driver.set_window_size(WIDTH, min(max(int(height) + 120, 600), 4000))
    path = os.path.join(directory, f"console-{name}.png")
    driver.save_screenshot(path)
    driver.set_window_size(WIDTH, 900)
    print(f"screenshot: {path}")


def check_page(driver):
    """What every page must have: one h1, landmarks, a label for every input, no script."""
    assert len(driver.find_elements(By.TAG_NAME, "h1")) == 1, "one h1 per page"
    for landmark in ("header", "nav", "main", "footer"):
        assert driver.find_elements(By.TAG_NAME, landmark), f"no <{landmark}> on {driver.current_url}"
    unlabelled = driver.execute_script(
        "return Array.from(document.querySelectorAll('input:not([type=hidden]), textarea, select'))"
        ".filter(e => e.labels.length === 0).map(e => e.id || e.name)"
    )
    assert not unlabelled, f"inputs without a label on {driver.current_url}: {unlabelled}"
    assert not driver.find_elements(By.TAG_NAME, "script"), "the console has no script"
    skip = driver.find_element(By.CSS_SELECTOR, "a.skip")
    assert skip.get_attribute("href").endswith("#main"), "a skip link to the main content"


def focused(driver):
    return driver.switch_to.active_element


def submit_request(driver, args):
    """Fills and submits the new-request form with the keyboard only; returns the request id."""
    driver.find_element(By.LINK_TEXT, "New request").click()
    wait(driver).until(EC.presence_of_element_located((By.ID, "nodeId")))
    assert driver.find_element(By.TAG_NAME, "h1").text == "New request"
    check_page(driver)
    node = driver.find_element(By.ID, "nodeId")
    node.click()
    node.send_keys(args.node)
    node.send_keys(Keys.TAB)
    assert focused(driver).get_attribute("id") == "reason", "Tab moves from Node to Reason"
    focused(driver).send_keys(args.reason)
    focused(driver).send_keys(Keys.TAB)
    assert focused(driver).get_attribute("id") == "durationMinutes", "Tab moves on to Duration"
    focused(driver).send_keys("30")
    focused(driver).send_keys(Keys.TAB)
    assert focused(driver).get_attribute("id") == "startsAt", "Tab moves on to Starts at (left empty)"
    focused(driver).send_keys(Keys.TAB)
    assert focused(driver).get_attribute("id") == "breakGlass", "Tab moves on to Break-glass (left unticked)"
    focused(driver).send_keys(Keys.TAB)
    button = focused(driver)
    assert button.tag_name == "button" and button.text == "Submit request", "Tab reaches the submit button"
    shot(driver, args.screenshots, "new-request")
    button.send_keys(Keys.ENTER)
    wait(driver).until(EC.presence_of_element_located((By.ID, "request-id")))
    request_id = driver.find_element(By.ID, "request-id").text
    assert request_id.startswith("req-"), request_id
    assert "Your request was submitted." in driver.find_element(By.CSS_SELECTOR, "[role=status]").text
    # The console waits a moment for the decision; reload until the policies have decided.
    deadline = time.time() + 20
    while driver.find_element(By.ID, "request-status").text == "Submitted" and time.time() < deadline:
        time.sleep(0.5)
        driver.refresh()
    status = driver.find_element(By.ID, "request-status").text
    assert status == "Pending", f"a sensitive node waits for a DevOps approver, got {status}"
    check_page(driver)
    return request_id


def approve(driver, args, request_id):
    """Approves the request from the approver's Approvals page, with a comment, by keyboard."""
    driver.find_element(By.LINK_TEXT, "Approvals").click()
    card = wait(driver).until(EC.presence_of_element_located((By.ID, f"waiting-{request_id}")))
    check_page(driver)
    assert args.reason in card.text, "the approver sees the reason"
    comment = driver.find_element(By.ID, f"comment-{request_id}")
    comment.click()
    comment.send_keys(args.comment)
    comment.send_keys(Keys.TAB)
    button = focused(driver)
    assert button.text == "Approve", f"Tab moves from the comment to Approve, got {button.text!r}"
    shot(driver, args.screenshots, "approvals")
    button.send_keys(Keys.ENTER)
    notice = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[role=status]")))
    assert notice.text == "Your approval was recorded.", notice.text
    assert not driver.find_elements(By.ID, f"waiting-{request_id}"), "nothing waits on the approver any more"
    decided = driver.find_element(By.CSS_SELECTOR, "#decided + table")
    assert request_id in decided.text and "Approved" in decided.text, decided.text


def see_approved(driver, args, request_id):
    """The requester's page of the request: Approved, with the approval and the timeline."""
    driver.get(f"{origin(args.requester_url)}/requests/{request_id}")
    status = wait(driver).until(EC.presence_of_element_located((By.ID, "request-status")))
    assert status.text == "Approved", f"the requester sees {status.text}"
    check_page(driver)
    entries = driver.find_elements(By.CSS_SELECTOR, "#timeline > li")
    trail = "\n".join(e.text for e in entries)
    assert len(entries) >= 3, f"Submitted, Pending and Approved at least:\n{trail}"
    assert "Submitted created" in entries[0].text, trail
    assert "Submitted" in entries[1].text and "Pending" in entries[1].text, trail
    approved = [e.text for e in entries if "Pending" in e.text and "Approved" in e.text and "approver-a" in e.text]
    assert approved, f"no Pending to Approved entry by approver-a:\n{trail}"
    assert args.comment in approved[0], f"the approver's comment is on the timeline:\n{trail}"
    assert driver.find_element(By.ID, "s-connect"), "an Approved request shows how to connect"
    assert f"jit connect {request_id}" in driver.find_element(By.ID, "s-connect").find_element(By.XPATH, "..").text
    shot(driver, args.screenshots, "request")


def two_consoles_args(description, reason, comment):
    """The arguments of a script that drives a requester's and an approver's console."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--requester-url", required=True)
    parser.add_argument("--approver-url", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--reason", default=reason)
    parser.add_argument("--comment", default=comment)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    return args


def run(main, name):
    """Runs a script's main: a failed expectation exits 1 with its message."""
    try:
        main()
    except AssertionError as e:
        print(f"{name} failed: {e}", file=sys.stderr)
        sys.exit(1)


@contextlib.contextmanager
def consoles(args):
    """Two functions that open the requester's and the approver's console, each in a browser of its
    own (the approver's opens later, as a second person would); every page is dumped if something
    fails, and every browser quits."""
    with tempfile.TemporaryDirectory() as requester_dir, tempfile.TemporaryDirectory() as approver_dir:
        opened = []

        def open_console(url, profile_dir):
            driver = browser(args, profile_dir)
            opened.append(driver)
            driver.get(url)
            wait(driver).until(EC.title_contains("My requests"))
            return driver

        try:
            yield (
                lambda: open_console(args.requester_url, requester_dir),
                lambda: open_console(args.approver_url, approver_dir),
            )
        except Exception:
            dump_pages()
            raise
        finally:
            for driver in opened:
                driver.quit()


def main():
    args = two_consoles_args(__doc__, "Rotate the analytics export keys (CHG-1042)", "OK for the change window")

    with consoles(args) as (open_requester, open_approver):
        requester = open_requester()
        assert "?t=" not in requester.current_url, "the key leaves the address bar"
        check_page(requester)
        request_id = submit_request(requester, args)
        print(f"request: {request_id}", flush=True)
        shot(requester, args.screenshots, "pending")

        approver = open_approver()
        approve(approver, args, request_id)

        see_approved(requester, args, request_id)
        requester.get(origin(args.requester_url) + "/")
        wait(requester).until(EC.title_contains("My requests"))
        row = requester.find_element(By.XPATH, f"//tr[td//code[text()='{request_id}']]")
        assert "Approved" in row.text, row.text
        shot(requester, args.screenshots, "requests")

        # The other console's key does not open this one.
        requester.get(origin(args.requester_url) + "/?t=" + urlsplit(args.approver_url).query[2:])
        assert "Open the console with its link" in requester.find_element(By.TAG_NAME, "h1").text
    print("console test: passed")


if __name__ == "__main__":
    run(main, "console test")
