"""The server-rendered pages over HTTP, on SQLite and PostgreSQL: sign-in and sign-out with
CSRF, redirects for visitors without a session, access confined to the user's projects,
the interaction browser's filters and pages, and escaping of user text."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from feedbackloop.access import create_user, grant
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class World:
    store: Store
    settings: Settings
    shop: Project
    other: Project
    stamps: dict[str, datetime]


def _fill(store: Store, settings: Settings) -> World:
    """Two projects, and alice, a viewer of one. Other users are made by the tests that
    need them: each password hash costs a noticeable fraction of a second."""
    shop = create_project(store, "shop", description="Support assistant", risk_tier="high")
    other = create_project(store, "other-team", risk_tier="low")
    create_signal(store, shop, SignalIn(name="thumbs", type="binary"))
    create_signal(store, shop, SignalIn(name="rating", type="ordinal", scale_min=1,
                                        scale_max=5))
    create_signal(store, other, SignalIn(name="thumbs", type="binary"))
    create_user(store, "alice", PASSWORD)
    grant(store, "alice", shop.id, "viewer")

    stamps = {f"i{k}": NOW - timedelta(hours=7 * k) for k in range(8)}
    stamps["old"] = NOW - timedelta(days=40)
    stamps["xss"] = NOW - timedelta(minutes=3)
    stamps["a/b?c#d"] = NOW - timedelta(minutes=5)
    records = [{"id": cid, "timestamp": ts.isoformat(), "input": f"question {cid}",
                "output": f"answer {cid}", "model_version": "v2" if k % 2 else "v1",
                "attributes": {"locale": "de" if k < 3 else "en", "tier": "pro"},
                "latency_ms": 120.5 + k}
               for k, (cid, ts) in enumerate(stamps.items()) if cid.startswith("i")]
    records += [
        {"id": "old", "timestamp": stamps["old"].isoformat(), "input": "old question",
         "output": "old answer", "model_version": "v0"},
        {"id": "xss", "timestamp": stamps["xss"].isoformat(), "input": XSS,
         "output": "fine", "model_version": "v1", "attributes": {"locale": "fr"},
         "context": {"doc": XSS}, "reference": "ref text"},
        {"id": "a/b?c#d", "timestamp": stamps["a/b?c#d"].isoformat(), "input": "odd id",
         "output": "odd", "model_version": "v1"},
    ]
    ing = Ingestor(store, settings, shop)
    assert ing.interactions(records).rejected == 0
    fb = ing.feedback([
        {"id": "f1", "interaction_id": "i1", "signal": "thumbs", "value": False,
         "source": "expert", "rater_id": "rater-7", "comment": "wrong refund policy",
         "correction": "Refunds take 14 days."},
        {"id": "f2", "interaction_id": "i1", "signal": "rating", "value": 2,
         "source": "annotator", "rater_id": "rater-9"},
        {"id": "f3", "interaction_id": "i2", "signal": "thumbs", "value": True},
        {"id": "f4", "interaction_id": "xss", "signal": "thumbs", "value": False,
         "comment": XSS},
    ])
    assert fb.rejected == 0
    Ingestor(store, settings, other).interactions(
        [{"id": "secret-1", "input": "other team's input", "output": "x"}])
    return World(store, settings, shop, other, stamps)


def _user(world: World, name: str, role: str | None = None, superuser: bool = False) -> str:
    create_user(world.store, name, PASSWORD, superuser=superuser)
    if role is not None:
        grant(world.store, name, world.shop.id, role)
    return name


@pytest.fixture
def world(store: Store, settings: Settings) -> World:
    return _fill(store, settings)


class PortalTransport(httpx.BaseTransport):
    """A synchronous transport into the ASGI app through an anyio portal: starlette's
    httpx.Client warns that its httpx backend is deprecated, an error under our filters."""

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self.asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        clone = httpx.Request(request.method, request.url, headers=request.headers,
                              content=request.read())

        async def run() -> tuple[int, httpx.Headers, bytes]:
            response = await self.asgi.handle_async_request(clone)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = self.portal.call(run)
        return httpx.Response(status, headers=headers, content=content, request=request)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


def _client(app: FastAPI, portal: BlockingPortal,
            base_url: str = "http://testserver") -> httpx.Client:
    return httpx.Client(transport=PortalTransport(app, portal), base_url=base_url,
                        follow_redirects=False)


@pytest.fixture
def client(world: World, portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(world.settings, world.store), portal) as c:
        yield c


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def _sign_in(client: httpx.Client, username: str, password: str = PASSWORD,
             next_url: str = "/") -> httpx.Client:
    form = client.get("/sign-in")
    assert form.status_code == 200
    r = client.post("/sign-in", data={"username": username, "password": password,
                                      "csrf": _csrf(form.text), "next": next_url})
    assert r.status_code == 303, r.text
    return client


def _ids_in(page: str) -> list[str]:
    """Interaction ids of the browser table, in page order."""
    table = page.split('id="interactions"', 1)
    if len(table) == 1:
        return []
    return [html.unescape(m) for m in re.findall(r'<a class="id" href="[^"]+">([^<]+)</a>',
                                                 table[1])]


# -- signed out -------------------------------------------------------------------------
def test_every_page_sends_a_visitor_without_session_to_sign_in(client: httpx.Client) -> None:
    r = client.get("/")
    assert (r.status_code, r.headers["location"]) == (303, "/sign-in")
    r = client.get("/projects/shop/interactions?model_version=v1")
    assert r.status_code == 303
    parts = urlsplit(r.headers["location"])
    assert parts.path == "/sign-in"
    assert parse_qs(parts.query) == {"next": ["/projects/shop/interactions?model_version=v1"]}
    for path in ("/projects/shop", "/projects/shop/feedback", "/projects/shop/interactions/i1",
                 "/projects/nope"):
        assert client.get(path).headers["location"].startswith("/sign-in?next=")


def test_a_forged_session_cookie_is_no_session(client: httpx.Client) -> None:
    client.cookies.set("fl_session", "fl_not-a-real-token")
    r = client.get("/projects/shop")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/sign-in")
    assert 'fl_session=""' in r.headers["set-cookie"]


# -- sign-in ----------------------------------------------------------------------------
def test_sign_in_sets_a_protected_cookie_and_returns_to_next(client: httpx.Client) -> None:
    form = client.get("/sign-in?next=/projects/shop/feedback")
    assert 'name="next" value="/projects/shop/feedback"' in form.text
    assert "HttpOnly" in form.headers["set-cookie"]  # the pre-session CSRF cookie
    r = client.post("/sign-in", data={"username": "alice", "password": PASSWORD,
                                      "csrf": _csrf(form.text),
                                      "next": "/projects/shop/feedback"})
    assert (r.status_code, r.headers["location"]) == (303, "/projects/shop/feedback")
    cookie = next(c for c in r.headers.get_list("set-cookie")
                  if c.startswith("fl_session="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "secure" not in flags
    assert f"max-age={12 * 3600}" in flags
    page = client.get("/projects/shop/feedback")
    assert page.status_code == 200
    assert "wrong refund policy" in page.text
    assert client.get("/sign-in").headers["location"] == "/"  # signed in already


def test_secure_cookies_setting_marks_the_session_cookie_secure(
        world: World, portal: BlockingPortal) -> None:
    conf = world.settings.model_copy(update={"secure_cookies": True})
    # Secure cookies come back over HTTPS only, the CSRF cookie included.
    with _client(create_app(conf, world.store), portal, "https://testserver") as c:
        form = c.get("/sign-in")
        r = c.post("/sign-in", data={"username": "alice", "password": PASSWORD,
                                     "csrf": _csrf(form.text)})
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("fl_session="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_failed_sign_in_says_the_same_thing_and_sets_no_session(
        client: httpx.Client) -> None:
    for username, password in (("alice", "wrong password"), ("nobody", PASSWORD), ("", ""),
                               ("al\x00ice", PASSWORD)):
        form = client.get("/sign-in")
        r = client.post("/sign-in", data={"username": username, "password": password,
                                          "csrf": _csrf(form.text)})
        assert r.status_code == 401, username
        assert "Wrong username or password." in r.text
        assert "fl_session=" not in r.headers.get("set-cookie", "")
        assert client.get("/").status_code == 303


def test_sign_in_without_the_csrf_token_is_refused(client: httpx.Client) -> None:
    client.get("/sign-in")
    for data in ({"username": "alice", "password": PASSWORD},
                 {"username": "alice", "password": PASSWORD, "csrf": "forged" * 8}):
        r = client.post("/sign-in", data=data)
        assert r.status_code == 403
        assert "The form expired" in r.text
        assert "fl_session=" not in r.headers.get("set-cookie", "")
    client.cookies.clear()  # no CSRF cookie at all
    r = client.post("/sign-in", data={"username": "alice", "password": PASSWORD,
                                     "csrf": "x" * 43})
    assert r.status_code == 403


def test_sign_in_never_redirects_off_site(client: httpx.Client) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example",
                   "javascript:alert(1)", "evil.example", "/\x09/evil.example"):
        form = client.get("/sign-in", params={"next": target})
        assert 'name="next" value="/"' in form.text, target
        r = client.post("/sign-in", data={"username": "alice", "password": PASSWORD,
                                          "csrf": _csrf(form.text), "next": target})
        assert (r.status_code, r.headers["location"]) == (303, "/"), target
        client.cookies.clear()


def test_sign_out_needs_the_form_token_and_revokes_the_session(client: httpx.Client) -> None:
    _sign_in(client, "alice")
    token = client.cookies.get("fl_session")
    assert token
    refused = client.post("/sign-out", data={"csrf": "nope"})
    assert refused.status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    r = client.post("/sign-out", data={"csrf": _csrf(client.get("/").text)})
    assert (r.status_code, r.headers["location"]) == (303, "/sign-in")
    assert client.get("/").status_code == 303
    client.cookies.set("fl_session", token)  # a copy of the old cookie is worthless now
    assert client.get("/projects/shop").headers["location"] == "/sign-in?next=%2Fprojects%2Fshop"


# -- access -----------------------------------------------------------------------------
def test_the_project_list_shows_only_the_users_projects(client: httpx.Client) -> None:
    page = _sign_in(client, "alice").get("/").text
    assert 'href="/projects/shop"' in page
    assert "other-team" not in page
    assert re.search(r'tier-high">high<', page)
    # shop has 11 interactions and 4 feedback items
    assert re.search(r'<td class="num">11</td>\s*<td class="num">4</td>', page)


def test_a_superuser_sees_every_project(client: httpx.Client, world: World) -> None:
    page = _sign_in(client, _user(world, "root", superuser=True)).get("/").text
    assert 'href="/projects/shop"' in page and 'href="/projects/other-team"' in page
    assert client.get("/projects/other-team").status_code == 200
    assert client.get("/projects/missing").status_code == 404


def test_a_user_without_projects_is_told_how_to_get_one(client: httpx.Client,
                                                        world: World) -> None:
    page = _sign_in(client, _user(world, "bob")).get("/").text
    assert "You have no projects yet" in page
    assert "feedbackloop users grant bob" in page


def test_other_projects_answer_like_missing_ones(client: httpx.Client) -> None:
    _sign_in(client, "alice")
    for suffix in ("", "/interactions", "/feedback", "/interactions/secret-1"):
        hidden = client.get(f"/projects/other-team{suffix}")
        missing = client.get(f"/projects/no-such{suffix}")
        assert hidden.status_code == missing.status_code == 404
        assert "other team&#39;s input" not in hidden.text
        assert hidden.text.replace("other-team", "X") == missing.text.replace("no-such", "X")
    assert client.get("/projects/shop/interactions/secret-1").status_code == 404


def test_a_role_without_read_access_gets_403(client: httpx.Client, world: World) -> None:
    r = _sign_in(client, _user(world, "ivan", "ingest")).get("/projects/shop/interactions")
    assert r.status_code == 403
    assert "You have no projects yet" in client.get("/").text
    assert "may not read" in r.text
    assert "question i1" not in r.text


def test_error_pages_use_the_layout(client: httpx.Client) -> None:
    _sign_in(client, "alice")
    r = client.get("/projects/no-such")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert '<link rel="stylesheet" href="/static/style.css">' in r.text
    assert "no project &#39;no-such&#39; among the projects you can see" in r.text
    assert ">alice<" in r.text.replace("</span>", "<")  # the user bar is there
    unknown = client.get("/no/such/page")
    assert unknown.status_code == 404
    assert '<link rel="stylesheet" href="/static/style.css">' in unknown.text


# -- overview ---------------------------------------------------------------------------
def test_the_overview_counts_and_charts_the_last_30_days(client: httpx.Client,
                                                         world: World) -> None:
    page = _sign_in(client, "alice").get("/projects/shop").text
    assert '<span class="value" id="count-interactions">11</span>' in page
    assert '<span class="value" id="count-feedback">4</span>' in page
    bars = dict(re.findall(r'data-day="([0-9-]+)" data-count="(\d+)"', page))
    assert len(bars) == 30
    expected: dict[str, int] = {}
    for ts in world.stamps.values():
        expected[ts.date().isoformat()] = expected.get(ts.date().isoformat(), 0) + 1
    assert max(bars) == NOW.date().isoformat()
    for day, n in bars.items():
        assert int(n) == expected.get(day, 0), day
    assert sum(int(n) for n in bars.values()) == 10  # "old" is 40 days back
    by_version = page.split('id="by-version"', 1)[1].split("</table>", 1)[0]
    assert re.search(r'model_version=v1">v1</a></td>\s*<td class="num">6<', by_version)
    assert re.search(r'model_version=v0">v0</a></td>\s*<td class="num">1<', by_version)
    assert re.search(r'source=expert">expert</a></td>\s*<td class="num">1<', page)
    assert re.search(r'signal=thumbs">thumbs</a></td>\s*<td class="num">3<', page)
    assert 'aria-current="page">Status<' in page
    assert "<h2>Measure</h2>" in page and 'href="/projects/shop/measure' not in page


# -- the interaction browser --------------------------------------------------------------
def _browse(client: httpx.Client, **params: str) -> str:
    r = client.get("/projects/shop/interactions", params=params)
    assert r.status_code == 200, r.text
    return r.text


def test_the_browser_lists_newest_first(client: httpx.Client, world: World) -> None:
    ids = _ids_in(_browse(_sign_in(client, "alice")))
    newest_first = sorted(world.stamps, key=lambda k: world.stamps[k], reverse=True)
    assert ids == newest_first


FILTERED = [
    ({"model_version": "v2"}, ["i1", "i3", "i5", "i7"]),
    ({"attribute": "locale=de"}, ["i0", "i1", "i2"]),
    ({"attribute": " locale = fr "}, ["xss"]),
    ({"model_version": "v1", "attribute": "locale=en"}, ["i4", "i6"]),
    ({"signal": "thumbs"}, ["xss", "i1", "i2"]),
    ({"signal": "rating", "source": "annotator"}, ["i1"]),
    ({"source": "end_user"}, ["xss", "i2"]),
]


def test_the_browser_filters(client: httpx.Client, world: World) -> None:
    _sign_in(client, "alice")
    for params, expected in FILTERED:
        page = _browse(client, **params)
        newest_first = sorted(expected, key=lambda k: world.stamps[k], reverse=True)
        assert _ids_in(page) == newest_first, params
        for value in params.values():
            assert f'value="{value.strip()}"' in page  # the form keeps what was asked


def test_the_browser_filters_by_day(client: httpx.Client, world: World) -> None:
    day = world.stamps["old"].date().isoformat()
    page = _browse(_sign_in(client, "alice"), **{"from": day, "to": day})
    assert _ids_in(page) == ["old"]
    start = (NOW - timedelta(days=1)).date().isoformat()
    recent = _ids_in(_browse(client, **{"from": start}))
    assert recent == [k for k in sorted(world.stamps, key=lambda k: world.stamps[k],
                                        reverse=True)
                      if world.stamps[k].date().isoformat() >= start]


BAD_FILTERS = [
    ({"from": "yesterday"}, "From: &#39;yesterday&#39; is not a date; use YYYY-MM-DD."),
    ({"to": "2024-02-30"}, "To: &#39;2024-02-30&#39; is not a date"),
    ({"from": "2024-05-02", "to": "2024-05-01"}, "From is after To."),
    ({"signal": "nope"}, "Signal: this project has no signal &#39;nope&#39;."),
    ({"source": "robot"}, "Source: &#39;robot&#39; is not one of"),
    ({"attribute": "no-equals-sign"}, "Cohort attribute: write it as key=value"),
    ({"attribute": "=x"}, "Cohort attribute: write it as key=value"),
    ({"model_version": "v9"}, "Model version: no interactions of version &#39;v9&#39;."),
    ({"model_version": "v1\x00"}, "Model version: not a usable value."),
    ({"attribute": "k=\x00"}, "Cohort attribute: not a usable value."),
    ({"cursor": "garbage!"}, "malformed cursor"),
    ({"cursor": "é"}, "The page link is damaged"),
    ({"limit": "0"}, "Rows per page: a whole number from 1 to 200."),
    ({"limit": "many"}, "Rows per page"),
]


def test_bad_filters_are_explained_on_the_page(client: httpx.Client) -> None:
    _sign_in(client, "alice")
    for params, message in BAD_FILTERS:
        r = client.get("/projects/shop/interactions", params=params)
        assert r.status_code == 200, params
        assert 'role="alert"' in r.text, params
        assert message in r.text, params
        assert _ids_in(r.text) == [], params


def test_older_pages_walk_every_interaction_once(client: httpx.Client, world: World) -> None:
    _sign_in(client, "alice")
    seen: list[str] = []
    url: str | None = "/projects/shop/interactions?limit=3&model_version=v1"
    pages = 0
    while url:
        page = client.get(url).text
        ids = _ids_in(page)
        assert 1 <= len(ids) <= 3
        seen += ids
        pages += 1
        older = re.search(r'rel="next" href="([^"]+)">Older', page)
        url = html.unescape(older.group(1)) if older else None
        if url:
            assert "model_version=v1" in url and "limit=3" in url
    v1 = [k for k in world.stamps if k in ("i0", "i2", "i4", "i6", "xss", "a/b?c#d")]
    assert pages == 2
    assert seen == sorted(v1, key=lambda k: world.stamps[k], reverse=True)


# -- one interaction ----------------------------------------------------------------------
def test_the_interaction_page_shows_the_record_and_its_feedback(client: httpx.Client) -> None:
    page = _sign_in(client, "alice").get("/projects/shop/interactions/i1").text
    assert '<pre class="text" id="input">question i1</pre>' in page
    assert '<pre class="text" id="output">answer i1</pre>' in page
    assert "121.5 ms" in page
    assert ">locale=de</a>" in page and ">tier=pro</a>" in page
    feedback = page.split('id="feedback"', 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", feedback, flags=re.S)[1:]
    assert len(rows) == 2
    by_signal = {re.search(r"<td>(\w+)", r).group(1): r for r in rows}  # type: ignore[union-attr]
    assert "false" in by_signal["thumbs"] and "expert" in by_signal["thumbs"]
    assert "rater-7" in by_signal["thumbs"] and "wrong refund policy" in by_signal["thumbs"]
    assert "Refunds take 14 days." in by_signal["thumbs"]
    assert ">2" in by_signal["rating"] and "annotator" in by_signal["rating"]


def test_an_interaction_id_with_url_characters_links_and_opens(client: httpx.Client) -> None:
    listing = _browse(_sign_in(client, "alice"))
    assert 'href="/projects/shop/interactions/a%2Fb%3Fc%23d"' in listing
    page = client.get("/projects/shop/interactions/a%2Fb%3Fc%23d")
    assert page.status_code == 200
    assert '<pre class="text" id="input">odd id</pre>' in page.text
    assert client.get("/projects/shop/interactions/nope").status_code == 404


def test_user_text_is_escaped_everywhere(client: httpx.Client) -> None:
    _sign_in(client, "alice")
    escaped = html.escape(XSS, quote=True)
    for path in ("/projects/shop/interactions", "/projects/shop/interactions/xss",
                 "/projects/shop/feedback"):
        page = client.get(path).text
        assert XSS not in page
        assert "<script>" not in page and "onerror=alert" not in page.replace(
            "onerror=alert(2)&gt;", "")
        assert escaped in page or html.escape(XSS, quote=False) in page, path
    detail = client.get("/projects/shop/interactions/xss")
    assert detail.headers["content-security-policy"].startswith("default-src 'self'")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail.text
    r = client.get("/projects/shop/interactions", params={"attribute": f"x={XSS}"})
    assert XSS not in r.text and "&lt;script&gt;" in r.text


def test_the_feedback_list_filters_and_links_to_interactions(client: httpx.Client) -> None:
    page = _sign_in(client, "alice").get("/projects/shop/feedback",
                                         params={"source": "expert"}).text
    table = page.split('id="feedback"', 1)[1]
    assert table.count("<tr>") == 2  # header and one row
    assert 'href="/projects/shop/interactions/i1"' in table
    bad = client.get("/projects/shop/feedback", params={"signal": "nope"})
    assert bad.status_code == 200 and "no signal &#39;nope&#39;" in bad.text
