"""The built smoke book as a reader gets it: every link inside it resolves, and in headless Chromium
(Debian's `chromium`, driven by Playwright for Python) the claims page and an ablation page render
their glance table, forest plot, headline and run links without one request leaving the book."""

import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LINK = re.compile(r'(?:href|src)="([^"]+)"')


def html_dir(smoke_book):
    work, code = smoke_book
    assert code == 0
    return work / "book" / "_build" / "html"


def inside_links(page: Path):
    """(target file, fragment) of every link and source of `page` that stays inside the book."""
    for target in LINK.findall(page.read_text()):
        parsed = urlparse(target)
        if parsed.scheme or target.startswith(("//", "mailto:", "javascript:")):
            continue
        path = (page.parent / unquote(parsed.path)).resolve() if parsed.path else page
        yield path, parsed.fragment


def test_every_link_inside_the_book_resolves_to_a_file_and_its_anchor(smoke_book):
    root = html_dir(smoke_book)
    broken = []
    pages = [p for p in root.rglob("*.html") if not {"_static", "_sources"} & set(p.relative_to(root).parts)]
    assert len(pages) > 5
    for page in pages:  # the book's pages (the theme's _static holds templates, not pages)
        for path, fragment in inside_links(page):
            if not path.exists():
                broken.append(f"{page.relative_to(root)} -> {path}")
            elif fragment and path.suffix == ".html" and f'id="{fragment}"' not in path.read_text():
                broken.append(f"{page.relative_to(root)} -> {path.name}#{fragment}")
    assert not broken, broken[:20]


def test_the_claims_page_and_an_ablation_page_render_in_chromium(smoke_book):
    if CHROMIUM is None:
        pytest.skip("no Chromium here (Debian package chromium): .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python not installed "
                                                                   "(pip install .[test]; .ci/run does)")
    root = html_dir(smoke_book)
    outside, failed = [], []

    def keep_inside(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.route("**/*", keep_inside)
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto((root / "generated" / "claims.html").as_uri())
        glance = page.evaluate("""[...document.querySelectorAll('table')].filter(t =>
            [...t.querySelectorAll('th')].some(th => th.textContent.trim() === 'decided at')).length""")
        assert glance == 1  # the glance table
        forest = page.locator("img[src*='forest-smoke']")
        assert forest.count() == 1 and forest.evaluate("img => img.complete && img.naturalWidth > 0")
        layout = page.evaluate("""(() => {
            const article = document.querySelector('article').getBoundingClientRect().width;
            const tables = [...document.querySelectorAll('article table')].map(t => {
                const box = t.parentElement.getBoundingClientRect().width, own = t.getBoundingClientRect().width;
                const scrolls = getComputedStyle(t.parentElement).overflowX;
                return {fits: own <= article + 1 || (box <= article + 1 && ['auto', 'scroll'].includes(scrolls))};
            });
            return {article, forest: document.querySelector("img[src*='forest-smoke']").getBoundingClientRect().width,
                    tables, text: document.querySelector('article').innerText};
        })()""")
        assert layout["forest"] >= 0.85 * layout["article"], layout["forest"]  # the figure at the page's width
        assert all(table["fits"] for table in layout["tables"])  # every table fits its column, or scrolls in it
        assert not re.search(r"\u2013[a-z]", layout["text"])  # a flag as typed: --data-dir, never an en dash
        assert re.search(r"Preset smoke, \d+ claims:", layout["text"])  # the tally opens the page
        page.locator("section[id^='c3-'] details.sd-dropdown").first.evaluate("details => details.open = true")  # C3's fold
        run_link = page.locator("main a[href*='runs/c3-smoke']").first  # C3's runs, from its section
        run_link.click()
        assert "/runs/" in page.url and page.locator("h1").first.inner_text().startswith("C")
        assert page.locator("a[href$='.json']").count() >= 1  # each record downloadable
        page.goto((root / "generated" / "smoke" / "lrn.html").as_uri())
        assert "Verdict:" in page.locator("main").inner_text()
        figures = page.locator("main img")
        assert figures.count() >= 2 and all(figures.nth(i).evaluate("img => img.naturalWidth > 0")
                                             for i in range(figures.count()))
        browser.close()
    assert not outside, outside
    assert not failed, failed
