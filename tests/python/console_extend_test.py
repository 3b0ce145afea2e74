"""Extends a granted request from its page in `jit console`, in headless Chromium (run by
tests/console.rs).

The requester opens the page of their Approved, granted request, fills the Extend form (minutes and
reason) with the keyboard and submits it; the console posts it to the API's extend route and opens
the extension, which names the request it extends. The script reloads until the lifecycle applied
it (the extension ends Expired, "applied to ..."), then follows the link back to the original,
whose Grant section lists the extension and its new deadline. Prints `extension: <id>` and
`deadline: <new deadline>` for the Rust side to check through the API. Any failed expectation
raises, so the process exits non-zero.
"""

import argparse
import tempfile
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from console_test import browser, check_page, dump_pages, focused, origin, run, wait


def reload_until(driver, condition, what, seconds=30):
    """Reloads the page (it has no live updates) until `condition(driver)` holds."""
    deadline = time.time() + seconds
    while not condition(driver):
        assert time.time() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.5)
        driver.refresh()


def extend(driver, args):
    """Fills and submits the Extend form by keyboard; returns the extension's id."""
    driver.get(f"{origin(args.requester_url)}/requests/{args.request}")
    wait(driver).until(EC.presence_of_element_located((By.ID, "s-extend")))
    check_page(driver)
    minutes = driver.find_element(By.ID, "extend-minutes")
    minutes.click()
    minutes.send_keys(str(args.minutes))
    minutes.send_keys(Keys.TAB)
    assert focused(driver).get_attribute("id") == "extend-reason", "Tab moves from the minutes to the reason"
    focused(driver).send_keys(args.reason)
    focused(driver).send_keys(Keys.TAB)
    button = focused(driver)
    assert button.tag_name == "button" and button.text == "Extend", f"Tab reaches Extend, got {button.text!r}"
    button.send_keys(Keys.ENTER)
    wait(driver).until(EC.presence_of_element_located((By.ID, "extends")))
    extension = driver.find_element(By.ID, "request-id").text
    assert extension.startswith("req-") and extension != args.request, extension
    said = driver.find_element(By.ID, "extends").text
    assert f"Extension of {args.request} by {args.minutes} minutes" in said, said
    notice = driver.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert "You asked for more time" in notice, notice
    check_page(driver)
    return extension


def see_applied(driver, args, extension):
    """The extension ends Expired once applied; the original lists it with its new deadline."""
    reload_until(driver, lambda d: d.find_element(By.ID, "request-status").text == "Expired", "applying the extension")
    trail = driver.find_element(By.ID, "timeline").text
    assert f"applied to {args.request}" in trail, trail
    assert not driver.find_elements(By.ID, "s-extend"), "an extension is not extended itself"
    driver.find_element(By.ID, "extends-link").click()
    listed = wait(driver).until(EC.presence_of_element_located((By.ID, "extensions")))
    assert driver.find_element(By.ID, "request-id").text == args.request
    assert driver.find_element(By.ID, "request-status").text == "Approved"
    assert extension in listed.text and f"{args.minutes} minutes more" in listed.text, listed.text
    deadline = listed.find_element(By.CSS_SELECTOR, "li time").get_attribute("datetime")
    trail = driver.find_element(By.ID, "timeline").text
    assert "Extended" in trail and extension in trail, trail
    assert driver.find_element(By.ID, "s-extend"), "still live: it can be extended again"
    check_page(driver)
    return deadline


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requester-url", required=True)
    parser.add_argument("--request", required=True)
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--reason", default="The hotfix rollout needs longer (CHG-1043)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as profile_dir:
        driver = browser(args, profile_dir)
        try:
            driver.get(args.requester_url)
            wait(driver).until(EC.title_contains("My requests"))
            extension = extend(driver, args)
            print(f"extension: {extension}", flush=True)
            deadline = see_applied(driver, args, extension)
            print(f"deadline: {deadline}", flush=True)
        except Exception:
            dump_pages()
            raise
        finally:
            driver.quit()
    print("console extend test: passed")


if __name__ == "__main__":
    run(main, "console extend test")
