"""Breaks glass in one `jit console` and reviews it in another, in headless Chromium (run by
tests/console.rs).

The requester (a member of the break-glass group) ticks "Break-glass (emergency)" in the
new-request form, using the keyboard, and lands on an Approved request with a break-glass banner
whose review is open and no review buttons (the requester never reviews). The approver (named by
the node's approval plan) opens it by id from the Approvals page, the way the BREAK-GLASS mail
leads there, in two tabs; in the first they type a comment and press Flag, and the banner turns
flagged, naming them and the comment; in the second, loaded before the flag, Acknowledge is
refused by the API (AlreadyReviewed), and the console shows that refusal. The requester's page and
list then show the flag. Prints `request: <id>` for the Rust side to check through the API. Any
failed expectation raises, so the process exits non-zero.
"""

import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from console_test import check_page, consoles, focused, origin, run, shot, two_consoles_args, wait


def banner_class(driver):
    return driver.find_element(By.ID, "break-glass").get_attribute("class")


def break_glass(driver, args):
    """Fills the new-request form with Break-glass ticked, by keyboard; returns the request id."""
    driver.find_element(By.LINK_TEXT, "New request").click()
    wait(driver).until(EC.presence_of_element_located((By.ID, "breakGlass")))
    check_page(driver)
    hint = driver.find_element(By.ID, "breakGlass-hint").text
    assert "Granted at once" in hint and "review" in hint, hint
    node = driver.find_element(By.ID, "nodeId")
    node.click()
    node.send_keys(args.node)
    node.send_keys(Keys.TAB)
    focused(driver).send_keys(args.reason)
    focused(driver).send_keys(Keys.TAB)
    assert focused(driver).get_attribute("id") == "durationMinutes"
    focused(driver).send_keys("30")
    focused(driver).send_keys(Keys.TAB)
    assert focused(driver).get_attribute("id") == "startsAt", "Starts at stays empty: break-glass is now"
    focused(driver).send_keys(Keys.TAB)
    box = focused(driver)
    assert box.get_attribute("id") == "breakGlass", f"Tab reaches the break-glass box, got {box.get_attribute('id')}"
    box.send_keys(Keys.SPACE)
    assert box.is_selected(), "Space ticks it"
    box.send_keys(Keys.TAB)
    button = focused(driver)
    assert button.tag_name == "button" and button.text == "Submit request", "Tab reaches the submit button"
    button.send_keys(Keys.ENTER)
    wait(driver).until(EC.presence_of_element_located((By.ID, "request-id")))
    request_id = driver.find_element(By.ID, "request-id").text
    assert request_id.startswith("req-"), request_id
    # The console waits a moment for the decision; reload until the policies have decided.
    deadline = time.time() + 20
    while driver.find_element(By.ID, "request-status").text == "Submitted" and time.time() < deadline:
        time.sleep(0.5)
        driver.refresh()
    status = driver.find_element(By.ID, "request-status").text
    assert status == "Approved", f"break-glass is granted at once, got {status}"
    assert "glass-open" in banner_class(driver), banner_class(driver)
    assert driver.find_element(By.ID, "review-state").text == "review open"
    assert "BreakGlass" in driver.find_element(By.ID, "s-decision").find_element(By.XPATH, "..").text
    assert not driver.find_elements(By.ID, "s-review"), "the requester is not offered the review"
    check_page(driver)
    return request_id


def open_by_id(driver, args, request_id):
    """From the Approvals page's "Break-glass to review", by keyboard."""
    driver.find_element(By.LINK_TEXT, "Approvals").click()
    field = wait(driver).until(EC.presence_of_element_located((By.ID, "open-id")))
    check_page(driver)
    assert "Break-glass to review" in driver.find_element(By.ID, "break-glass-review").text
    field.click()
    field.send_keys(request_id)
    field.send_keys(Keys.ENTER)
    wait(driver).until(EC.presence_of_element_located((By.ID, "break-glass")))
    assert driver.find_element(By.ID, "request-id").text == request_id
    assert "glass-open" in banner_class(driver), banner_class(driver)
    assert driver.find_element(By.ID, "s-review"), "an approver of the plan is offered the review"
    check_page(driver)


def flag(driver, args):
    """Types a comment and presses Flag, by keyboard."""
    comment = driver.find_element(By.ID, "review-comment")
    comment.click()
    comment.send_keys(args.comment)
    comment.send_keys(Keys.TAB)
    assert focused(driver).text == "Acknowledge", f"Tab reaches Acknowledge, got {focused(driver).text!r}"
    focused(driver).send_keys(Keys.TAB)
    button = focused(driver)
    assert button.text == "Flag", f"then Flag, got {button.text!r}"
    button.send_keys(Keys.ENTER)
    notice = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[role=status]")))
    assert "You flagged this break-glass access" in notice.text, notice.text
    assert "glass-flagged" in banner_class(driver), banner_class(driver)
    assert driver.find_element(By.ID, "review-state").text == "flagged"
    assert driver.find_element(By.ID, "review-by").text == "user/approver-a"
    assert driver.find_element(By.ID, "review-comment-text").text == args.comment
    assert not driver.find_elements(By.ID, "s-review"), "reviewed once: no more buttons"
    # Flagged stands out: the banner's frame is the alarm red, not the open review's amber.
    colour = driver.find_element(By.ID, "break-glass").value_of_css_property("border-top-color")
    assert colour in ("rgb(164, 22, 26)", "rgba(164, 22, 26, 1)"), colour
    check_page(driver)
    shot(driver, args.screenshots, "break-glass")


def second_review_refused(driver):
    """The tab loaded before the flag still shows the buttons: the API refuses the second review."""
    driver.find_element(By.ID, "review-comment").send_keys("Looks fine to me")
    driver.find_element(By.CSS_SELECTOR, "button[value=acknowledge]").click()
    alert = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
    assert "The review was not recorded" in alert.text and "AlreadyReviewed" in alert.text, alert.text
    assert "glass-flagged" in banner_class(driver), "the page shows the review that stands"
    assert not driver.find_elements(By.ID, "s-review")
    check_page(driver)


def requester_sees_the_flag(driver, args, request_id):
    driver.get(f"{origin(args.requester_url)}/requests/{request_id}")
    wait(driver).until(EC.presence_of_element_located((By.ID, "break-glass")))
    assert "glass-flagged" in banner_class(driver), banner_class(driver)
    assert args.comment in driver.find_element(By.ID, "break-glass").text
    driver.get(origin(args.requester_url) + "/")
    row = wait(driver).until(EC.presence_of_element_located((By.XPATH, f"//tr[td//code[text()='{request_id}']]")))
    assert "Break-glass: flagged" in row.text, row.text


def main():
    args = two_consoles_args(__doc__, "Disk full on analytics-dev, INC-5150", "No incident was open at that time")

    with consoles(args) as (open_requester, open_approver):
        requester = open_requester()
        request_id = break_glass(requester, args)
        print(f"request: {request_id}", flush=True)

        approver = open_approver()
        open_by_id(approver, args, request_id)
        first = approver.current_window_handle
        approver.switch_to.new_window("tab")
        approver.get(f"{origin(args.approver_url)}/requests/{request_id}")
        wait(approver).until(EC.presence_of_element_located((By.ID, "s-review")))
        second = approver.current_window_handle
        approver.switch_to.window(first)
        flag(approver, args)
        approver.switch_to.window(second)
        second_review_refused(approver)

        requester_sees_the_flag(requester, args, request_id)
    print("console break-glass test: passed")


if __name__ == "__main__":
    run(main, "console break-glass test")
