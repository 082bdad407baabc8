"""Opens the supervisor's dashboard in headless Chromium (Playwright over the system browser)
at a phone's width (390 px) and a desktop's (1280 px), and reports for each page whether it
is wider than the window (the page scrolls sideways) and where its screenshot went.

    python dashboard_check.py LOGIN_LINK BASE_URL OUT_DIR PAGE...

LOGIN_LINK is a one-time link from `ferry hub admin link`; it logs the browser in (a session
cookie), after which every PAGE (a path such as /dashboard?org=x) is opened at both widths.
Prints one JSON object: {"pages": [{"page", "width", "scroll_width", "overflows", "shot"}]}.
Run by DashboardBrowserTests.pagesFitAPhone; the virtualenv comes from scripts/setup.
"""
import json
import re
import sys

from playwright.sync_api import sync_playwright


def name(page: str, width: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", page.lower()).strip("-") or "root"
    return f"{slug}-{width}.png"


def main() -> int:
    link, base, out, pages = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3], sys.argv[4:]
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        tab = context.new_page()
        tab.goto(link)
        if "/login" in tab.url:
            print(json.dumps({"error": f"the login link did not log in; the browser is at {tab.url}"}))
            return 1
        for width in (390, 1280):
            tab.set_viewport_size({"width": width, "height": 900})
            for page in pages:
                tab.goto(base + page)
                scroll = tab.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
                shot = f"{out}/{name(page, width)}"
                tab.screenshot(path=shot, full_page=True)
                results.append({"page": page, "width": width, "scroll_width": scroll, "overflows": scroll > width + 1, "shot": shot})
        browser.close()
    print(json.dumps({"pages": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
