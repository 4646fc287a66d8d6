"""Scan judging: a pure function, tested rule by rule and exhaustively over the route."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from coi.identifiers import CoiId
from coi.models import ROLES, SITE_KINDS
from coi.route import parse_route
from coi.workflow import CaseState, ScanAttempt, UnitState, judge
from tests.conftest import ROUTE

R = parse_route(ROUTE)
COI = CoiId.issue("A9998", 2026, 1)
OTHER = CoiId.issue("A9998", 2026, 2)
BAG = COI.unit("apheresis_bag", 1)
SAMPLE = COI.unit("sample", 1)
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
CLINIC, FACTORY = 1, 2


def state(*completed: str, at: datetime | None = T0, custodian: int = CLINIC) -> CaseState:
    return CaseState(coi=COI, completed=completed or ("enrol",), last_step_at=at,
                     units={BAG.compact: UnitState("apheresis_bag", custodian),
                            SAMPLE.compact: UnitState("sample", custodian)})


def attempt(step: str = "collect", *texts: str, roles=("site_staff",), site: int = CLINIC,
            kinds=("collection", "treatment"), verifiers=(8,), now: datetime = T0,
            actor: int = 7) -> ScanAttempt:
    return ScanAttempt(step=step, texts=texts or (COI.text, BAG.text), actor_id=actor,
                       actor_roles=frozenset(roles), site_id=site, site_kinds=frozenset(kinds),
                       verifier_ids=tuple(verifiers), now=now)


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
        rights = role in step.roles and kind == step.site_kind
        codes_ = set(codes(verdict))
        assert ("out_of_order" in codes_ or "already_done" in codes_) == (not turn)
        assert ("wrong_role" in codes_) == (role not in step.roles)
        assert ("wrong_site" in codes_) == (kind != step.site_kind)
        if turn and rights:
            assert codes_ <= {"missing_scan", "wrong_kind"}, (step.name, codes_)


def test_a_step_needing_a_unit_kind_the_case_lacks_is_refused():
    done = tuple(s.name for s in R.steps[:5])  # up to receipt at manufacturing
    verdict = judge(R, state(*done, custodian=FACTORY),
                    attempt("manufacture", BAG.text, roles=("coordinator",), site=FACTORY,
                            kinds=("manufacturing",)))
    assert codes(verdict) == ["missing_scan"]
    assert "drug product bag" in verdict.refusals[0].message
