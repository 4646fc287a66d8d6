"""Product routes as versioned TOML data."""

from __future__ import annotations

import pytest

from coi.core.errors import Conflict, InvalidInput
from coi.core.route import RouteError, parse_route
from coi.services import masterdata
from tests.helpers import ROUTE


def test_the_demo_route_reads_needle_to_needle():
    route = parse_route(ROUTE)
    assert (route.product, route.version) == ("CARTX", 1)
    assert [s.name for s in route.steps][:2] == ["enrol", "collect"]
    assert route.steps[-1].name == "infuse"
    infuse = route.step("infuse")
    assert infuse.scan == ("wristband", "drug_product_bag") and infuse.verifiers == 1
    assert infuse.max_hours == 1.5


@pytest.mark.parametrize(("change", "message"), [
    (("version = 1", "version = 0"), "version = N"),
    (('name = "collect"', 'name = "enrol"'), "repeated: enrol"),
    (('site_kind = "manufacturing"', 'site_kind = "moon"'), "site_kind"),
    (('roles = ["qa"]', 'roles = ["janitor"]'), "roles"),
    (("verifiers = 1", "verifiers = 9"), "verifiers"),
    (("max_hours = 1.5", "max_hours = -1"), "max_hours"),
    (('title = "Thaw"', 'title = "Thaw"\ncolour = "red"'), "unknown keys: colour"),
    (("[[step]]", "[[step"), "not valid TOML"),
])
def test_a_broken_route_is_refused_with_where_and_why(change, message):
    with pytest.raises(RouteError, match=message):
        parse_route(ROUTE.replace(*change, 1))


def test_route_versions_follow_one_another_and_are_never_replaced(session, world, clock):
    with pytest.raises(Conflict, match="must be 2"):
        masterdata.add_route_version(session=session, now=clock.now(), actor=None,
                                     definition=ROUTE, reason="again")
    v2 = ROUTE.replace("version = 1", "version = 2").replace("max_hours = 1.5", "max_hours = 2")
    row = masterdata.add_route_version(session=session, now=clock.now(), actor=None,
                                       definition=v2, reason="infusion window widened")
    assert row.version == 2
    with pytest.raises(InvalidInput, match="not stored"):
        masterdata.add_route_version(session=session, now=clock.now(), actor=None,
                                     definition="product = 1", reason="broken")


def test_a_case_keeps_the_route_version_it_started_with(app, session, world, clock):
    from datetime import date

    from coi.core.phi import PatientIdentity
    from coi.services import enrolment

    def enrol(mrn: str) -> int:
        return enrolment.enrol(session=session, now=clock.now(), actor=world.actor("staff"),
                               cipher=app.extensions["coi.phi"], site_code="BOS",
                               product_code="CARTX", manufacturing_site_code="MFG",
                               identity=PatientIdentity("P", date(1980, 1, 1), mrn)).route_id

    first = enrol("R-1")
    v2 = ROUTE.replace("version = 1", "version = 2")
    masterdata.add_route_version(session=session, now=clock.now(), actor=None, definition=v2,
                                 reason="new version")
    second = enrol("R-2")
    assert first != second
    from coi.models import ProductRoute

    assert session.get(ProductRoute, first).version == 1
    assert session.get(ProductRoute, second).version == 2
