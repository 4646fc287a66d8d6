"""Scan judging: a pure function, tested rule by rule and exhaustively over the route."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from coi.core.identifiers import CoiId
from coi.core.route import parse_route
from coi.core.workflow import CaseState, Entry, Pending, Person, ScanAttempt, UnitState, judge
from coi.models import ROLES, SITE_KINDS
from tests.helpers import ROUTE

R = parse_route(ROUTE)
COI = CoiId.issue("A9998", 2026, 1)
OTHER = CoiId.issue("A9998", 2026, 2)
BAG = COI.unit("apheresis_bag", 1)
SAMPLE = COI.unit("sample", 1)
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
CLINIC, FACTORY = 1, 2


def state(*completed: str, at: datetime | None = T0, custodian: int = CLINIC,
          pending: Pending | None = None) -> CaseState:
    return CaseState(coi=COI, completed=completed or ("enrol",), last_step_at=at,
                     units={BAG.compact: UnitState("apheresis_bag", custodian),
                            SAMPLE.compact: UnitState("sample", custodian)}, pending=pending)


def attempt(step: str = "collect", *texts: str | Entry, roles=("site_staff",), site: int = CLINIC,
            kinds=("collection", "treatment"), verifiers=(8,), now: datetime = T0,
            actor: int = 7, verifier_roles=None) -> ScanAttempt:
    entries = tuple(t if isinstance(t, Entry) else Entry(t) for t in texts or (COI.text, BAG.text))
    people = tuple(Person(v, frozenset(verifier_roles or roles)) for v in verifiers)
    return ScanAttempt(step=step, entries=entries, actor_id=actor, actor_roles=frozenset(roles),
                       site_id=site, site_kinds=frozenset(kinds), verifiers=people, now=now)


def codes(verdict) -> list[str]:
    return [reason.code for reason in verdict.refusals]


def test_a_correct_collection_is_accepted_and_names_its_unit():
    verdict = judge(R, state(), attempt())
    assert verdict.accepted and verdict.alarms == () and verdict.units == (BAG.compact,)


def test_a_unit_of_another_case_is_refused():
    verdict = judge(R, state(), attempt("collect", COI.text, OTHER.unit("apheresis_bag", 1).text))
    assert "other_case" in codes(verdict)
    assert OTHER.display in verdict.refusals[0].message


def test_another_patients_wristband_is_refused():
    assert "other_case" in codes(judge(R, state(), attempt("collect", OTHER.text, BAG.text)))


def test_a_wrong_unit_kind_is_refused():
    verdict = judge(R, state(), attempt("collect", COI.text, BAG.text, SAMPLE.text))
    assert codes(verdict) == ["wrong_kind"]


def test_a_missing_wristband_is_refused():
    assert codes(judge(R, state(), attempt("collect", BAG.text))) == ["missing_scan"]


def test_a_skipped_step_is_refused_naming_the_next_one():
    verdict = judge(R, state(), attempt("pack", BAG.text))
    assert "out_of_order" in codes(verdict)
    assert "Apheresis collection" in verdict.refusals[0].message


def test_a_step_done_twice_is_refused():
    assert codes(judge(R, state("enrol", "collect"), attempt())) == ["already_done"]


def test_the_wrong_role_and_the_wrong_site_are_refused():
    verdict = judge(R, state(), attempt(roles=("courier",), kinds=("manufacturing",)))
    assert set(codes(verdict)) >= {"wrong_role", "wrong_site"}


def test_a_unit_not_in_this_sites_custody_is_refused():
    assert "not_in_custody" in codes(judge(R, state(custodian=FACTORY), attempt()))


def test_the_scanner_cannot_be_their_own_verifier():
    assert codes(judge(R, state(), attempt(verifiers=(7,)))) == ["self_verified"]


def test_a_missing_verifier_is_refused():
    assert codes(judge(R, state(), attempt(verifiers=()))) == ["missing_verifier"]


def test_a_wrong_check_character_is_refused_with_the_parsers_reason():
    wrong = BAG.text[:-1] + ("0" if BAG.text[-1] != "0" else "1")
    assert "bad_check" in codes(judge(R, state(), attempt("collect", COI.text, wrong)))


@pytest.mark.parametrize(("after", "late"), [(timedelta(hours=720) - timedelta(seconds=1), False),
                                             (timedelta(hours=720), False),
                                             (timedelta(hours=720, seconds=1), True)])
def test_a_step_past_its_limit_is_accepted_with_a_late_alarm(after, late):
    verdict = judge(R, state(), attempt(now=T0 + after))
    assert verdict.accepted
    assert [a.code for a in verdict.alarms] == (["late"] if late else [])


def test_a_refused_scan_raises_no_late_alarm():
    verdict = judge(R, state(), attempt(verifiers=(), now=T0 + timedelta(days=60)))
    assert not verdict.accepted and verdict.alarms == ()


def test_an_unknown_step_is_refused():
    assert codes(judge(R, state(), attempt("dance"))) == ["unknown_step"]


def _valid_texts(step_name: str) -> tuple[str, ...]:
    step = R.step(step_name)
    return tuple(COI.text if item == "wristband" else BAG.text if item == "apheresis_bag"
                 else SAMPLE.text for item in step.scan if item in ("wristband", "apheresis_bag",
                                                                     "sample"))


def _rights(step, role: str, kind: str, receiving: bool) -> bool:
    if receiving:
        return role in step.to_roles and kind == step.to_site_kind
    return role in step.roles and kind == step.site_kind


@pytest.mark.parametrize("index", range(1, len(R.steps)))
def test_exhaustively_each_step_passes_only_for_its_roles_and_site_kind_in_its_turn(index):
    """Every (completed prefix, step, role, site kind): accepted exactly when the step is the
    next one, the role is one of the step's and the site is of the step's kind."""
    step = R.steps[index]
    for done, role, kind in itertools.product(range(1, len(R.steps)), ROLES, SITE_KINDS):
        completed = tuple(s.name for s in R.steps[:done])
        texts = _valid_texts(step.name) or (COI.text,)
        verdict = judge(R, state(*completed), attempt(step.name, *texts, roles=(role,),
                                                      kinds=(kind,), verifiers=(8, 9)))
        turn = done == index
        rights = _rights(step, role, kind, receiving=False)
        codes_ = set(codes(verdict))
        assert ("out_of_order" in codes_ or "already_done" in codes_) == (not turn)
        assert ("wrong_role" in codes_) == (role not in step.roles)
        assert ("wrong_site" in codes_) == (kind != step.site_kind)
        if turn and rights:
            assert codes_ <= {"missing_scan", "wrong_kind", "not_in_custody", "verifier_role"}, \
                (step.name, codes_)


def test_a_step_needing_a_unit_kind_the_case_lacks_is_refused():
    done = tuple(s.name for s in R.steps[:5])  # up to receipt at manufacturing
    verdict = judge(R, state(*done, custodian=FACTORY),
                    attempt("manufacture", BAG.text, roles=("coordinator",), site=FACTORY,
                            kinds=("manufacturing",)))
    assert codes(verdict) == ["missing_scan"]
    assert "drug product bag" in verdict.refusals[0].message


# Handoffs: the giver scans, custody passes only when a receiver has scanned the same units.
DEPOT = 3
PACKED = ("enrol", "collect", "pack")
GIVEN = Pending(step="pickup", giver_id=7, giver_site_id=CLINIC, units=(BAG.compact,), at=T0)


def courier(*texts, actor=20, **kwargs):
    kwargs = {"roles": ("courier",), "site": DEPOT, "kinds": ("courier_depot",), "verifiers": (),
              "actor": actor, **kwargs}
    return attempt("pickup", *(texts or (BAG.text,)), **kwargs)


def test_the_givers_scan_offers_the_handoff_without_completing_the_step():
    verdict = judge(R, state(*PACKED), attempt("pickup", BAG.text, verifiers=()))
    assert verdict.accepted and verdict.phase == "give" and not verdict.completes_step
    assert verdict.units == (BAG.compact,)


def test_the_receivers_scan_of_the_same_units_completes_the_handoff():
    verdict = judge(R, state(*PACKED, pending=GIVEN), courier())
    assert verdict.accepted and verdict.phase == "receive" and verdict.completes_step


def test_the_giver_cannot_also_be_the_receiver():
    verdict = judge(R, state(*PACKED, pending=GIVEN), courier(actor=7))
    assert "wrong_person" in codes(verdict)
    assert [a.code for a in verdict.alarms] == ["wrong_person"]


def test_the_receiver_must_have_the_receiving_role_and_site():
    verdict = judge(R, state(*PACKED, pending=GIVEN),
                    courier(roles=("site_staff",), kinds=("collection",)))
    assert {"wrong_role", "wrong_site"} <= set(codes(verdict))
    assert "received by courier" in verdict.refusals[0].message


def test_the_receiver_confirms_each_unit_handed_over():
    two = Pending("pickup", 7, CLINIC, (BAG.compact, SAMPLE.compact), T0)
    verdict = judge(R, state(*PACKED, pending=two), courier(BAG.text))
    assert codes(verdict) == ["missing_scan"]
    partial = judge(R, state(*PACKED, pending=two), courier(BAG.text), partial=True)
    assert partial.accepted and partial.missing == (SAMPLE.compact,)


def test_a_unit_that_was_not_handed_over_is_refused_at_receipt():
    verdict = judge(R, state(*PACKED, pending=GIVEN), courier(BAG.text, SAMPLE.text))
    assert codes(verdict) == ["not_handed_over"]


def test_the_giver_cannot_verify_the_receipt():
    step = R.step("deliver_manufacturing")
    given = Pending(step.name, 20, DEPOT, (BAG.compact,), T0)
    done = tuple(s.name for s in R.steps[:4])
    verdict = judge(R, state(*done, custodian=DEPOT, pending=given),
                    attempt(step.name, BAG.text, roles=("coordinator",), site=FACTORY,
                            kinds=("manufacturing",), verifiers=(20,), actor=30))
    assert "wrong_person" in codes(verdict)


def test_units_must_still_be_with_the_giver_at_receipt():
    verdict = judge(R, state(*PACKED, custodian=FACTORY, pending=GIVEN), courier())
    assert codes(verdict) == ["not_in_custody"]


def test_while_a_handoff_waits_no_other_step_can_be_done():
    verdict = judge(R, state(*PACKED, pending=GIVEN),
                    attempt("deliver_manufacturing", BAG.text, roles=("courier",), site=DEPOT,
                            kinds=("courier_depot",), verifiers=()))
    assert codes(verdict)[0] == "handoff_pending"
    assert "Courier pickup at the clinic" in verdict.refusals[0].message


def test_a_late_giver_raises_one_alarm_and_a_late_receipt_after_an_in_time_give_another():
    late = T0 + timedelta(hours=5)
    assert [a.code for a in judge(R, state(*PACKED), attempt("pickup", BAG.text, verifiers=(),
                                                             now=late)).alarms] == ["late"]
    late_give = Pending("pickup", 7, CLINIC, (BAG.compact,), late)
    assert judge(R, state(*PACKED, pending=late_give), courier(now=late)).alarms == ()
    assert [a.code for a in judge(R, state(*PACKED, pending=GIVEN), courier(now=late)).alarms] \
        == ["late"]


@pytest.mark.parametrize("index", [i for i, s in enumerate(R.steps) if s.handoff])
def test_exhaustively_a_handoff_is_received_only_by_its_receiving_roles_at_their_site_kind(index):
    step = R.steps[index]
    done = tuple(s.name for s in R.steps[:index])
    given = Pending(step.name, 7, CLINIC, (BAG.compact,), T0)
    for role, kind in itertools.product(ROLES, SITE_KINDS):
        verdict = judge(R, state(*done, pending=given),
                        attempt(step.name, BAG.text, roles=(role,), kinds=(kind,), actor=40,
                                verifiers=(), site=DEPOT))
        codes_ = set(codes(verdict))
        assert ("wrong_role" in codes_) == (role not in step.to_roles), (step.name, role)
        assert ("wrong_site" in codes_) == (kind != step.to_site_kind), (step.name, kind)
        assert codes_ <= {"wrong_role", "wrong_site", "wrong_kind"}, codes_


# Scans judged one by one (the scan page): what is missing is listed, not refused.
def test_a_partial_scan_lists_what_is_missing_and_refuses_nothing():
    verdict = judge(R, state(), attempt("collect", BAG.text, verifiers=()), partial=True)
    assert verdict.accepted and verdict.missing == ("wristband",)
    assert verdict.expected == ("wristband", "apheresis_bag")


def test_the_same_unit_scanned_twice_in_one_step_is_refused():
    verdict = judge(R, state(), attempt("collect", COI.text, BAG.text, BAG.text))
    assert codes(verdict) == ["scanned_twice"]


def test_a_typed_code_must_be_typed_twice_the_same():
    good = Entry(BAG.text, "typed", BAG.text)
    assert judge(R, state(), attempt("collect", COI.text, good)).accepted
    once = Entry(BAG.text, "typed", None)
    slip = Entry(BAG.text, "typed", BAG.text.replace("A01", "A07"))
    for entry in (once, slip):
        assert "typed_mismatch" in codes(judge(R, state(), attempt("collect", COI.text, entry)))


def test_another_patients_wristband_raises_a_custody_alarm_as_well_as_a_refusal():
    verdict = judge(R, state(), attempt("collect", OTHER.text, BAG.text))
    assert [a.code for a in verdict.alarms] == ["other_case"]


def test_a_slip_of_the_hand_raises_no_alarm():
    wrong = BAG.text[:-1] + ("0" if BAG.text[-1] != "0" else "1")
    assert judge(R, state(), attempt("collect", COI.text, wrong)).alarms == ()


def test_a_verifier_without_a_role_of_the_step_is_refused():
    verdict = judge(R, state(), attempt(verifier_roles=("courier",)))
    assert codes(verdict) == ["verifier_role"]


def test_a_consumed_unit_cannot_be_scanned_again():
    done = tuple(s.name for s in R.steps[:6])
    st = CaseState(coi=COI, completed=done, last_step_at=T0,
                   units={BAG.compact: UnitState("apheresis_bag", FACTORY, consumed=True)})
    verdict = judge(R, st, attempt("release", BAG.text, roles=("qa",), site=FACTORY,
                                   kinds=("manufacturing",), verifiers=()))
    assert "wrong_kind" in codes(verdict)
