"""The login page sends people on only to paths of this site."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import CSRF, PASSWORD

# ---------------------------------------------------------------- where the login sends people


@pytest.mark.parametrize("target", [
    "/%09/evil.example",  # "/", tab, "/evil.example": browsers drop the tab
    "/%0a/evil.example",
    "//evil.example",
    "/\\evil",
    "/%5Cevil.example",
    "https://evil.example",
    "evil.example",
    "javascript:alert(1)",
    "/ok%0d%0aSet-Cookie:x",  # CR/LF: would split the Location header
    "/ok%00",
    "/%E2%80%8B/evil.example",  # a zero-width space
    "/%C2%A0/evil.example",  # a no-break space
])
def test_after_login_a_target_off_the_site_leads_home(client, world, target):
    form = client.get(f"/login?next={target}")
    assert form.status_code == 200
    assert 'name="next"' not in form.get_data(as_text=True)  # not carried into the form

    response = login_to(client, f"/login?next={target}")  # as an attacker's link has it

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert not [cookie for cookie in response.headers.getlist("Set-Cookie") if cookie.startswith("x")]


@pytest.mark.parametrize("target", ["/cases", "/cases?state=enrolled&site=2", "/shipments/7"])
def test_after_login_a_path_of_the_site_is_where_people_land(client, world, target):
    response = login_to(client, f"/login?next={quote(target, safe='/')}")

    assert response.status_code == 302
    assert response.headers["Location"] == target


def test_a_page_asked_for_before_login_is_shown_after_it(client, world):
    asked = f"/cases?site={world.sites['BOS'].id}"
    to_login = client.get(asked)
    assert to_login.status_code == 302

    response = login_to(client, to_login.headers["Location"])

    assert response.headers["Location"] == asked
    assert client.get(response.headers["Location"]).status_code == 200


def login_to(client: Any, login_url: str) -> Any:
    """Log in as staff on the login page at `login_url` (with its `next`), as a browser would
    after following a link to it."""
    page = client.get(login_url)
    token = CSRF.search(page.get_data(as_text=True))
    assert token
    return client.post(login_url, data={"username": "staff", "password": PASSWORD,
                                        "csrf_token": token.group(1)})
