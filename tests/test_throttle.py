"""Guessing passwords is slowed, not turned into a lock anyone can hold: growing delays per
account and per address for logins and signatures, unknown usernames as slow as real ones,
every attempt recorded, an administrator's unlock; rate limits on the public verify pages
and per API token; the same counters shared through Redis."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, col, select
from werkzeug import security

import coi.passwords
from coi.app import create_app
from coi.core.workflow import Entry
from coi.models import AuditEntry, LoginAttempt, Signature, User, coi_of, serial_of
from coi.services import alarms, custody, enrolment
from coi.throttle import MemoryCounters, Policy, RedisCounters, Throttle
from tests.helpers import PASSWORD, START, api_token, bearer, login, make_case, post_form

ATTACKER, OFFICE = "192.0.2.66", "198.51.100.7"  # documentation addresses (RFC 5737)
DEVICE_AT = "2026-11-22T03:55:00-05:00"
WAIT = re.compile(r"Too many attempts: wait (\d+) seconds?\.")


def client_at(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def fail(client: FlaskClient, username: str, times: int = 1) -> None:
    for _ in range(times):
        assert login(client, username, "wrong password").status_code == 401


def waits(response: Any) -> int:
    """The seconds a 429 answer says to wait (page and Retry-After agree)."""
    assert response.status_code == 429
    found = WAIT.search(response.get_data(as_text=True))
    assert found, "the page does not say how long to wait"
    assert response.headers["Retry-After"] == found.group(1)
    return int(found.group(1))


def attempts(session: Session, username: str) -> list[tuple[bool, str]]:
    session.rollback()  # a fresh snapshot
    rows = session.exec(select(LoginAttempt).where(LoginAttempt.username == username)
                        .order_by(col(LoginAttempt.id))).all()
    return [(row.succeeded, row.kind) for row in rows]


# ---------------------------------------------------------------- growing delays

def test_four_failures_cost_no_wait(client, world):
    fail(client, "staff", 4)
    assert login(client, "staff").status_code == 302


def test_after_five_failures_the_next_attempt_waits_one_second_unchecked(client, world, clock,
                                                                        session):
    fail(client, "staff", 5)
    clock.advance(seconds=0.5)
    assert waits(login(client, "staff")) == 1  # the right password, not even checked
    clock.set(START + timedelta(seconds=1))  # exactly when the wait ends
    assert login(client, "staff").status_code == 302
    assert attempts(session, "staff") == [(False, "login")] * 6 + [(True, "login")]


def test_each_further_failure_doubles_the_wait_and_waiting_attempts_do_not_lengthen_it(
        client, world, clock):
    fail(client, "staff", 5)
    for expected in (1, 2, 4, 8, 16):
        assert waits(login(client, "staff", "wrong password")) == expected
        assert waits(login(client, "staff", "wrong password")) == expected  # refused unchecked
        clock.advance(seconds=expected)
        fail(client, "staff")  # checked: the next wait doubles
    assert waits(login(client, "staff")) == 32


def test_the_wait_never_exceeds_the_longest_delay(client, world, clock, app):
    longest = app.config["LOGIN_MAX_DELAY_SECONDS"]
    fail(client, "staff", 5)
    for _ in range(15):  # 2 ** 15 seconds, uncapped
        clock.advance(seconds=longest)
        fail(client, "staff")
    assert waits(login(client, "staff")) == longest == 900


def test_failures_are_forgotten_an_hour_after_the_last_one(client, world, clock):
    fail(client, "staff", 4)
    clock.advance(minutes=60, seconds=1)
    fail(client, "staff", 4)  # four again, not eight
    assert login(client, "staff").status_code == 302


def test_the_old_lockout_attack_holds_the_real_user_back_one_delay_at_most(app, world, clock,
                                                                          session):
    attacker, person = client_at(app, ATTACKER), client_at(app, OFFICE)
    sent = 0
    for _ in range(5 + 6 * 60):  # five failures, then one every 10 s for an hour
        status = login(attacker, "qa", "wrong password").status_code
        assert status in (401, 429)
        sent += 1
        clock.advance(seconds=10)
    wait = waits(login(person, "qa"))
    assert 0 < wait <= app.config["LOGIN_MAX_DELAY_SECONDS"]
    clock.advance(seconds=wait)
    assert login(person, "qa").status_code == 302
    assert person.get("/alarms").status_code == 200
    assert len(attempts(session, "qa")) == sent + 2  # every attempt recorded, refused or not


def test_an_address_spraying_many_usernames_is_delayed_but_not_the_accounts(app, world, clock):
    sprayer, person = client_at(app, ATTACKER), client_at(app, OFFICE)
    for number in range(20):  # one guess each: no account reaches its own limit
        assert login(sprayer, f"guess{number}", "password123456").status_code == 401
    assert waits(login(sprayer, "staff")) == 1  # even with a right password: unchecked
    assert login(person, "staff").status_code == 302  # the account itself is not delayed
    clock.advance(seconds=1)
    assert login(sprayer, "staff2").status_code == 302


def test_a_success_does_not_clear_the_count_of_the_address_it_came_from(app, world):
    sprayer = client_at(app, ATTACKER)
    for number in range(19):
        login(sprayer, f"guess{number}", "password123456")
    assert login(sprayer, "staff").status_code == 302  # the sprayer's own account
    login(sprayer, "guess19", "password123456")
    assert waits(login(sprayer, "guess20", "password123456")) == 1


# ---------------------------------------------------------------- unknown usernames

def test_an_unknown_username_costs_one_hash_check_with_the_same_method(client, world, session,
                                                                      monkeypatch):
    checked: list[str] = []
    real_check = security.check_password_hash

    def counting(password_hash: str, password: str) -> bool:
        checked.append(password_hash.split("$")[0])
        return real_check(password_hash, password)

    monkeypatch.setattr(coi.passwords, "check_password_hash", counting)
    user = session.exec(select(User).where(User.username == "staff2")).one()
    user.active = False
    session.add(user)
    session.commit()

    for username in ("nobody", "staff", "staff2"):  # unknown, wrong password, deactivated
        assert login(client, username, "wrong password").status_code == 401
    assert checked == [coi.passwords.METHOD] * 3
    assert user.password_hash.split("$")[0] == coi.passwords.METHOD


# ---------------------------------------------------------------- administrators

def test_an_administrator_unlocks_an_account_and_the_unlock_is_audited(app, world, clock,
                                                                      session):
    person, admin = client_at(app, OFFICE), client_at(app, OFFICE)
    fail(person, "staff", 5)
    for seconds in (1, 2, 4):
        clock.advance(seconds=seconds)
        fail(person, "staff")
    assert waits(login(person, "staff")) == 8
    assert login(admin, "admin").status_code == 302

    page = admin.get("/admin/users").get_data(as_text=True)
    assert "8 failed passwords; waits 8 s" in page and "/unlock" in page
    user_id = world.actor("staff").user_id
    refused = post_form(admin, "/admin/users", f"/admin/users/{user_id}/unlock", {"reason": " "})
    assert "Nothing was changed" in admin.get(refused.headers["Location"]).get_data(as_text=True)
    assert waits(login(person, "staff")) == 8  # still waiting: nothing was cleared

    post_form(admin, "/admin/users", f"/admin/users/{user_id}/unlock",
              {"reason": "locked out by a script, ticket 4711"})
    assert login(person, "staff").status_code == 302
    assert "failed passwords" not in admin.get("/admin/users").get_data(as_text=True)
    session.rollback()
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "unlock")
                         .order_by(col(AuditEntry.id))).all()
    assert {(e.entity, e.entity_id, e.field, e.old_value, e.new_value) for e in entry} == {
        ("user", str(user_id), "failed_attempts", "8", "0"),
        ("user", str(user_id), "wait_seconds", "8", "0")}
    assert {(e.actor_id, e.reason) for e in entry} == {
        (world.actor("admin").user_id, "locked out by a script, ticket 4711")}


# ---------------------------------------------------------------- signing passwords

@pytest.fixture
def bag_case(app, session, world, clock) -> dict[str, str]:
    made = make_case(app, session, world, clock)
    bag = enrolment.register_unit(session=session, now=clock.now(), actor=world.actor("staff"),
                                  coi_text=coi_of(made).text, kind="apheresis_bag")
    session.commit()
    return {"coi": coi_of(made).text, "bag": serial_of(bag).text}


def collect(client: FlaskClient, token: str, case: dict[str, str], password: str, key: str) -> Any:
    body = {"step": "collect", "scans": [{"text": case["coi"]}, {"text": case["bag"]}],
            "idempotency_key": key, "password": password, "device_at": DEVICE_AT,
            "verifiers": [{"username": "staff2", "password": PASSWORD}]}
    response = client.post("/api/v1/scans", json=body, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_eight_wrong_signing_passwords_are_recorded_and_the_ninth_waits(client, session, clock,
                                                                       world, bag_case):
    token = api_token(session, clock, world, "staff")
    for number in range(8):
        if number:
            clock.advance(minutes=1)  # past each wait (1, 2, 4 s ...): every one is checked
        answer = collect(client, token, bag_case, "wrong password", f"attempt-{number:04d}")
        assert [r["code"] for r in answer["refusals"]] == ["signature_failed"]
    # Right after the eighth failure, which set a wait of 8 s:
    answer = collect(client, token, bag_case, PASSWORD, "attempt-0008")
    assert [r["message"] for r in answer["refusals"]] == [
        "Too many attempts: wait 8 seconds. Nothing was signed (your signature)."]
    assert attempts(session, "staff") == [(False, "signing")] * 9

    clock.advance(seconds=8)
    answer = collect(client, token, bag_case, PASSWORD, "attempt-0009")
    assert answer["accepted"] and answer["recorded"]
    assert attempts(session, "staff")[-1] == (True, "signing")
    assert session.exec(select(Signature)).all()


def test_signing_failures_and_logins_share_the_accounts_count(client, session, clock, world,
                                                              bag_case):
    token = api_token(session, clock, world, "staff")
    for number in range(5):
        collect(client, token, bag_case, "wrong password", f"attempt-{number:04d}")
    assert waits(login(client, "staff")) == 1


def test_a_failed_signature_is_recorded_even_when_its_scan_is_rolled_back(app, session, clock,
                                                                         world, bag_case, engine):
    outcome = custody.scan(session=session, now=clock.now(), actor=world.actor("staff"),
                           entries=[Entry(bag_case["coi"]), Entry(bag_case["bag"])],
                           step_name="collect", own_password="wrong password",
                           verifiers=[custody.Credential("staff2", PASSWORD)])
    assert "signature_failed" in [r.code for r in outcome.verdict.refusals]
    session.rollback()  # the scan is gone ...
    with Session(engine) as other:  # ... its failed password is not, nor the verifier's success
        rows = other.exec(select(LoginAttempt).order_by(col(LoginAttempt.id))).all()
    assert [(r.username, r.succeeded, r.kind) for r in rows] == [
        ("staff", False, "signing"), ("staff2", True, "signing")]


def test_a_scan_sent_again_with_its_key_still_records_the_password_it_carried(
        client, session, clock, world, bag_case):
    token = api_token(session, clock, world, "staff")
    collect(client, token, bag_case, "wrong password", "resent-key-0001")
    again = collect(client, token, bag_case, "another wrong one", "resent-key-0001")
    assert again["replayed"]  # answered from the first; its own transaction was rolled back
    assert attempts(session, "staff") == [(False, "signing")] * 2


def test_a_wrong_password_at_an_alarm_resolution_is_recorded_and_throttled(app, session, clock,
                                                                         world):
    case = make_case(app, session, world, clock)
    alarm = alarms.raise_alarm(session=session, now=clock.now(), kind="custody", code="late",
                               severity="major", summary="late", rule={"rule": "custody.late"},
                               case_id=case.id)
    assert alarm is not None
    alarms.acknowledge(session=session, now=clock.now(), actor=world.actor("qa"),
                       alarm_id=alarm.id, comment="looking")
    session.commit()
    qa = app.test_client()
    assert login(qa, "qa").status_code == 302

    def resolve(password: str) -> str:
        response = post_form(qa, f"/alarms/{alarm.id}", f"/alarms/{alarm.id}/resolve",
                             {"outcome": "accepted", "comment": "within stability data",
                              "password": password})
        return qa.get(response.headers["Location"]).get_data(as_text=True)

    for _ in range(5):
        assert "Not resolved: The password does not match" in resolve("wrong password")
    assert "Not resolved: Too many attempts: wait 1 second." in resolve(PASSWORD)
    assert attempts(session, "qa") == [(True, "login")] + [(False, "signing")] * 6
    clock.advance(seconds=1)
    assert "Alarm resolved and signed" in resolve(PASSWORD)


# ---------------------------------------------------------------- rate limits

@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return app_config | {"VERIFY_REQUESTS_PER_MINUTE": 3, "API_TOKEN_REQUESTS_PER_MINUTE": 6}


def too_many(response: Any) -> int:
    assert response.status_code == 429
    assert "Too many requests" in response.get_data(as_text=True)
    return int(response.headers["Retry-After"])


def test_the_public_verify_pages_answer_429_with_retry_after_past_the_limit_per_address(
        app, clock):
    phone, other = client_at(app, ATTACKER), client_at(app, OFFICE)
    clock.advance(seconds=45)
    for path in ("/verify", "/V/NOTALABELTOKEN", "/verify"):
        assert phone.get(path).status_code == 200
    assert too_many(phone.get("/V/NOTALABELTOKEN")) == 15  # the rest of the minute
    assert too_many(phone.get("/verify")) == 15
    assert other.get("/verify").status_code == 200  # another address has its own count
    clock.advance(seconds=15)
    assert phone.get("/verify").status_code == 200


def test_a_token_over_its_rate_gets_429_with_retry_after(client, session, clock, world):
    busy, quiet = (api_token(session, clock, world, persona) for persona in ("staff", "qa"))
    for _ in range(6):
        assert client.get("/api/v1/cases", headers=bearer(busy)).status_code == 200
    answer = client.get("/api/v1/cases", headers=bearer(busy))
    assert too_many(answer) == 60
    assert answer.get_json()["code"] == "throttled"
    assert client.get("/api/v1/cases", headers=bearer(quiet)).status_code == 200
    clock.advance(seconds=60)
    assert client.get("/api/v1/cases", headers=bearer(busy)).status_code == 200


# ---------------------------------------------------------------- Redis

@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real Redis (COI_TEST_REDIS_URL, default the machine's); skipped where there is none,
    unless COI_REQUIRE_REDIS=1 (CI)."""
    url = os.environ.get("COI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        if os.environ.get("COI_REQUIRE_REDIS") == "1":
            raise
        pytest.skip(f"no Redis at {url}: {error}")
    finally:
        client.close()
    yield url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards, pass or fail."""
    prefix = f"coi-test-{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def two_apps(app_config, redis_url, redis_prefix) -> Iterator[tuple[Flask, Flask]]:
    shared = app_config | {"RATE_LIMIT_STORAGE": redis_url, "RATE_LIMIT_KEY_PREFIX": redis_prefix}
    made = (create_app(dict(shared)), create_app(dict(shared)))
    yield made
    for application in made:
        application.extensions["coi.engine"].dispose()


def test_two_app_instances_share_the_counters_through_redis(two_apps, world, clock, redis_url,
                                                            redis_prefix):
    one, two = (client_at(application, OFFICE) for application in two_apps)
    fail(one, "staff", 5)
    assert waits(login(two, "staff")) == 1  # the other worker knows
    clock.advance(seconds=1)
    assert login(two, "staff").status_code == 302
    assert login(one, "staff2").status_code == 302

    for client in (one, two, one):
        assert client.get("/verify").status_code == 200
    assert too_many(two.get("/verify")) == 59  # the clock is at 09:00:01

    client = redis.Redis.from_url(redis_url)
    try:  # the counters are in Redis, under this installation's prefix
        assert list(client.scan_iter(match=redis_prefix + "pw:address:*"))
        assert list(client.scan_iter(match=redis_prefix + "rate:verify:*"))
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis"])
def counters(request) -> Any:
    if request.param == "memory":
        return MemoryCounters()
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return RedisCounters(redis.Redis.from_url(url), prefix)


def test_memory_and_redis_count_alike(counters):
    guard = Throttle(counters, Policy(account_free=2, address_free=3, max_delay=5, forget=60))
    at = START
    waits_seen = []
    for _ in range(6):
        guard.failed(now=at, username="someone", address="192.0.2.1")
        waits_seen.append(guard.wait(now=at, username="someone", address=None))
    assert waits_seen == [0, 1, 2, 4, 5, 5]  # from the second failure, doubling, capped
    assert guard.wait(now=at, username="nobody", address="192.0.2.1") == 5  # the address's
    assert guard.accounts(["someone", "nobody"], now=at)["someone"].failures == 6
    assert guard.wait(now=at + timedelta(seconds=61), username="someone", address=None) == 0
    guard.failed(now=at + timedelta(seconds=61), username="someone", address=None)
    assert guard.accounts(["someone"], now=at + timedelta(seconds=61))["someone"].failures == 1
    guard.clear_account("someone")
    assert guard.accounts(["someone"], now=at + timedelta(seconds=61)) == {}


def test_while_redis_cannot_be_reached_each_worker_counts_on_its_own(app_config, world, caplog):
    # Port 1 on this machine: nothing listens there, the connection is refused at once.
    application = create_app(app_config | {"RATE_LIMIT_STORAGE": "redis://127.0.0.1:1/0"})
    try:
        client = client_at(application, OFFICE)
        fail(client, "staff", 5)
        assert waits(login(client, "staff")) == 1
        assert "cannot be reached" in caplog.text
    finally:
        application.extensions["coi.engine"].dispose()
