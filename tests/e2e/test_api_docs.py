"""The API docs and the start page work with the network off: Swagger UI and ReDoc come from our own static files."""
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def offline_page(browser_context_factory, live_server):
    """A page that can reach only the live server: any other request is refused and kept in page.refused."""
    context = browser_context_factory()
    own = urlsplit(live_server.url).netloc
    refused = []

    def route(route):
        if urlsplit(route.request.url).netloc == own or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.refused = refused
    return page


def test_swagger_ui_renders_the_schema_offline(offline_page, live_server):
    offline_page.goto(f"{live_server.url}/api/docs/")
    offline_page.locator(".swagger-ui .opblock-summary-path", has_text="/api/exports/").first.wait_for()
    assert "LUAB annotation backend API" in offline_page.locator(".swagger-ui .title").inner_text()
    assert offline_page.refused == []


def test_redoc_renders_the_schema_offline(offline_page, live_server):
    offline_page.goto(f"{live_server.url}/api/redoc/")
    offline_page.get_by_role("heading", name="LUAB annotation backend API").first.wait_for()
    offline_page.get_by_text("/api/exports/").first.wait_for(state="attached")
    assert offline_page.refused == []
    # The one thing the page would fetch from elsewhere, ReDoc's "API docs by Redocly" logo, is stopped by the page's
    # own policy before any request is made (the logo then hides itself).
    violations = offline_page.context.csp_violations
    assert all("cdn.redoc.ly" in violation for violation in violations), violations
    violations.clear()


def test_the_start_page_says_where_each_user_goes(offline_page, live_server):
    offline_page.goto(f"{live_server.url}/")
    links = offline_page.locator("#home-links li")
    titles = [links.nth(i).locator("a").inner_text() for i in range(links.count())]
    assert titles == ["Review console", "Byproduct reports", "Admin", "Training", "API docs (Swagger UI)",
                      "API docs (ReDoc)"]
    for i in range(links.count()):
        assert links.nth(i).locator("span").inner_text().strip(), titles[i]  # each says what it is for
    offline_page.get_by_role("link", name="API docs (Swagger UI)").click()
    offline_page.locator(".swagger-ui").wait_for()
    assert offline_page.refused == []
