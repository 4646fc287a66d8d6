"""Issue 17, item 8 (couriers): a courier finds the shipments they delivered (the list's
filter: under way, received, all) and is shown no link to a page they may not open (couriers
open no case page)."""

from __future__ import annotations

import re
from html import unescape

from coi.services import alarms
from tests.helpers import Flow, login

HREF = re.compile(r'href="(/[^"]*)"')


def test_a_courier_filters_shipments_under_way_received_or_all(app, client, session, world, clock):
    flow = Flow(app, session, world, clock)
    flow.until("deliver_manufacturing")  # the outbound leg is received
    shipment = flow.shipped["outbound"].id
    login(client, "courier")
    link = f'href="/shipments/{shipment}"'
    under_way = client.get("/shipments").get_data(as_text=True)
    assert "Shipments under way" in under_way and link not in under_way
    received = client.get("/shipments?shown=received").get_data(as_text=True)
    assert link in received and '<option value="received" selected' in received
    assert link in client.get("/shipments?shown=all").get_data(as_text=True)
    assert client.get("/shipments?shown=lost").status_code == 422


def test_a_courier_is_shown_no_link_they_may_not_open(app, client, session, world, clock):
    flow = Flow(app, session, world, clock)
    flow.until("deliver_manufacturing")
    shipment = flow.shipped["outbound"]
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="temperature",
                               code="excursion_single", severity="major", summary="warm",
                               rule={"rule": "test"}, case_id=flow.case.id,
                               shipment_id=shipment.id)
    session.commit()
    assert alarm is not None
    login(client, "courier")
    pages = ["/", "/shipments?shown=all", f"/shipments/{shipment.id}", "/alarms",
             f"/alarms/{alarm.id}", "/scan"]
    seen: set[str] = set()
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        for href in HREF.findall(response.get_data(as_text=True)):
            seen.add(unescape(href))
    assert not any(href.startswith("/cases") for href in seen), sorted(seen)
    for href in sorted(seen - {"/logout"}):
        if href.startswith("/static/"):
            continue
        assert client.get(href).status_code not in (403, 404), href
