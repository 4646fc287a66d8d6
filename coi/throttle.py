"""Counters that slow guessing down: growing delays after failed passwords, per account and
per address, and fixed-window rate limits (the public verify pages per address, the API per
token).

An account or address that has failed `free` times must wait 1 s before its next attempt is
even checked, then 2, 4, 8 ... seconds after each further failure, up to `max_delay`; an
attempt during the wait is refused unchecked and does not lengthen it, so nobody can hold an
account shut for longer than one delay by sending a failure now and then (the lock this
replaces could be held forever). A success clears the account's counter, not the address's.

The counters live in this process's memory (development, tests) or in Redis, shared by every
web worker (`counters_from_url`). Time is passed in, as epoch seconds of the app's clock; a
counter is forgotten `forget` seconds after its last failure, judged by that clock (Redis's
own expiry only collects what is left over).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import redis
from sqlmodel import Session

MEMORY = "memory://"
THROTTLE_KEY = "coi.throttle"  # where a session carries the throttle (attach / of)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Penalty:
    """What a counter holds: failures since it was last cleared or forgotten, and until when
    (epoch seconds) attempts are refused unchecked."""

    failures: int = 0
    until: float = 0.0

    def wait(self, now: float) -> int:
        """Whole seconds still to wait at `now` (0: an attempt is checked)."""
        return max(0, math.ceil(self.until - now))


NONE = Penalty()


def seconds(count: int) -> str:
    """'1 second', '8 seconds': how long a refusal says to wait."""
    return f"{count} second{'' if count == 1 else 's'}"


def delay(failures: int, free: int, max_delay: float) -> float:
    """Seconds to wait after the `failures`-th failure: none before `free`, then 1, 2, 4 ..."""
    if failures < free:
        return 0.0
    return min(2.0 ** min(failures - free, 64), float(max_delay))


class Counters(Protocol):
    def fail(self, key: str, *, now: float, free: int, max_delay: float,
             forget: float) -> Penalty:
        """Count one more failure of `key` (atomically) and return its new penalty."""
        ...

    def penalties(self, keys: list[str], *, now: float, forget: float) -> list[Penalty]:
        ...

    def clear(self, key: str) -> None:
        ...

    def hit(self, key: str, *, expires_in: float) -> int:
        """Count a request under `key` (a window's key); the count so far, this one included."""
        ...


class MemoryCounters:
    """One process's counters: right for development and the tests, and for production only
    with a single web worker (each worker would count on its own)."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._penalties: dict[str, tuple[Penalty, float]] = {}  # key -> (penalty, last failure)
        self._hits: dict[str, tuple[int, float]] = {}  # key -> (count, monotonic expiry)
        self._max_keys = max_keys  # sprayed usernames must not grow memory without bound

    def fail(self, key: str, *, now: float, free: int, max_delay: float,
             forget: float) -> Penalty:
        with self._lock:
            failures = self._current(key, now, forget).failures + 1
            penalty = Penalty(failures, now + delay(failures, free, max_delay))
            self._penalties[key] = (penalty, now)
            if len(self._penalties) > self._max_keys:
                self._prune(now, forget)
            return penalty

    def penalties(self, keys: list[str], *, now: float, forget: float) -> list[Penalty]:
        with self._lock:
            return [self._current(key, now, forget) for key in keys]

    def clear(self, key: str) -> None:
        with self._lock:
            self._penalties.pop(key, None)

    def hit(self, key: str, *, expires_in: float) -> int:
        now = time.monotonic()  # only collects old windows: the window itself is in `key`
        with self._lock:
            count, expiry = self._hits.get(key, (0, 0.0))
            if expiry <= now:
                count, expiry = 0, now + expires_in
            self._hits[key] = (count + 1, expiry)
            if len(self._hits) > self._max_keys:
                self._hits = {k: v for k, v in self._hits.items() if v[1] > now}
            return count + 1

    def _current(self, key: str, now: float, forget: float) -> Penalty:
        found = self._penalties.get(key)
        if found is None or now - found[1] > forget:
            return NONE
        return found[0]

    def _prune(self, now: float, forget: float) -> None:
        kept = {k: v for k, v in self._penalties.items() if now - v[1] <= forget}
        if len(kept) > self._max_keys // 2:  # still full of recent failures: keep the newest
            newest = sorted(kept.items(), key=lambda item: item[1][1])[-(self._max_keys // 2):]
            kept = dict(newest)
        self._penalties = kept


# KEYS[1]: the counter; ARGV: now, free, max_delay, forget, seconds Redis keeps the key.
_FAIL = """
local now, free = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_delay, forget = tonumber(ARGV[3]), tonumber(ARGV[4])
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if now - last > forget then failures = 0 end
failures = failures + 1
local wait = 0
if failures >= free then wait = math.min(2 ^ math.min(failures - free, 64), max_delay) end
local until_ = string.format('%.6f', now + wait)
redis.call('HSET', KEYS[1], 'failures', failures, 'last', ARGV[1], 'until', until_)
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {failures, until_}
"""


class RedisCounters:
    """Counters in Redis, shared by every worker and process that uses the same server and
    prefix. A failure is counted by one Lua script, so two workers never lose one.

    While Redis cannot be reached, this worker counts in its own memory and logs an error:
    passwords stay throttled (per worker) and logins, signed scans and the API stay up."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.fallback = MemoryCounters()
        self._fail = client.register_script(_FAIL)
        self._logged_at = -math.inf

    def fail(self, key: str, *, now: float, free: int, max_delay: float,
             forget: float) -> Penalty:
        keep = math.ceil(forget + max_delay) + 60
        try:
            failures, until = self._fail(keys=[self.prefix + key],
                                         args=[f"{now:.6f}", free, max_delay, forget, keep])
        except redis.RedisError as error:
            self._unreachable(error)
            return self.fallback.fail(key, now=now, free=free, max_delay=max_delay, forget=forget)
        return Penalty(int(failures), float(until))

    def penalties(self, keys: list[str], *, now: float, forget: float) -> list[Penalty]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self.prefix + key, ["failures", "last", "until"])
        try:
            rows = pipe.execute()
        except redis.RedisError as error:
            self._unreachable(error)
            return self.fallback.penalties(keys, now=now, forget=forget)
        found: list[Penalty] = []
        for failures, last, until in rows:
            if failures is None or now - float(last) > forget:
                found.append(NONE)
            else:
                found.append(Penalty(int(failures), float(until)))
        return found

    def clear(self, key: str) -> None:
        self.fallback.clear(key)
        try:
            self.client.delete(self.prefix + key)
        except redis.RedisError as error:
            self._unreachable(error)

    def hit(self, key: str, *, expires_in: float) -> int:
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(self.prefix + key)
        pipe.expire(self.prefix + key, math.ceil(expires_in), nx=True)
        try:
            count, _expiry_set = pipe.execute()
        except redis.RedisError as error:
            self._unreachable(error)
            return self.fallback.hit(key, expires_in=expires_in)
        return int(count)

    def _unreachable(self, error: redis.RedisError) -> None:
        if time.monotonic() - self._logged_at >= 60:  # once a minute, not once a request
            self._logged_at = time.monotonic()
            log.error("Redis (%s) cannot be reached, this worker counts on its own meanwhile: %s",
                      self.prefix, error)


def counters_from_url(url: str, prefix: str) -> Counters:
    """`memory://` or a Redis URL (`redis://host:6379/0`, `rediss://...`, `unix://...`).
    Nothing is connected until the first count."""
    if not url or url == MEMORY:
        return MemoryCounters()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCounters(redis.Redis.from_url(url, socket_timeout=2.0,
                                                  socket_connect_timeout=2.0), prefix)
    raise ValueError(f"{url!r} is neither {MEMORY} nor a redis:// URL")


@dataclass(frozen=True)
class Policy:
    account_free: int = 5  # failures of one account, from anywhere, before delays start
    address_free: int = 20  # failures from one address, for any accounts, before delays start
    max_delay: int = 900  # seconds: the longest wait
    forget: int = 3600  # seconds without a failure after which a counter starts again


class Throttle:
    """The password throttle: logins and signatures share its counters."""

    def __init__(self, counters: Counters, policy: Policy) -> None:
        self.counters = counters
        self.policy = policy

    def wait(self, *, now: datetime, username: str, address: str | None) -> int:
        """Seconds the account or the address must still wait (0: check the attempt)."""
        at = now.timestamp()
        keys = [_account(username)] + ([_address(address)] if address else [])
        penalties = self.counters.penalties(keys, now=at, forget=self.policy.forget)
        return max(penalty.wait(at) for penalty in penalties)

    def failed(self, *, now: datetime, username: str, address: str | None) -> None:
        at, policy = now.timestamp(), self.policy
        self.counters.fail(_account(username), now=at, free=policy.account_free,
                           max_delay=policy.max_delay, forget=policy.forget)
        if address:
            self.counters.fail(_address(address), now=at, free=policy.address_free,
                               max_delay=policy.max_delay, forget=policy.forget)

    def succeeded(self, *, username: str) -> None:
        # The address keeps its count: one good password of the sprayer's own must not
        # wipe out the failures it sent for everybody else.
        self.counters.clear(_account(username))

    def accounts(self, usernames: list[str], *, now: datetime) -> dict[str, Penalty]:
        """The counters of these accounts that hold failures (for the administrators)."""
        found = self.counters.penalties([_account(name) for name in usernames],
                                        now=now.timestamp(), forget=self.policy.forget)
        return {name: penalty for name, penalty in zip(usernames, found, strict=True)
                if penalty.failures}

    def clear_account(self, username: str) -> None:
        self.counters.clear(_account(username))


def _account(username: str) -> str:
    return f"pw:account:{username}"


def _address(address: str) -> str:
    return f"pw:address:{address}"


class RateLimit:
    """At most `per_minute` requests per caller in each minute of the clock (0: no limit)."""

    def __init__(self, counters: Counters, name: str, per_minute: int) -> None:
        self.counters = counters
        self.name = name
        self.per_minute = per_minute

    def hit(self, caller: str, *, now: datetime) -> int:
        """Count a request; 0 if it may go on, else the seconds until the next window."""
        if self.per_minute <= 0:
            return 0
        at = now.timestamp()
        window = math.floor(at / 60)
        count = self.counters.hit(f"rate:{self.name}:{caller}:{window}", expires_in=60)
        if count <= self.per_minute:
            return 0
        return max(1, math.ceil((window + 1) * 60 - at))


def attach(session: Session, throttle: Throttle) -> None:
    """Hand `throttle` to the services that check passwords in `session`'s unit of work
    (the request's; see coi.ratelimits)."""
    session.info[THROTTLE_KEY] = throttle


def of(session: Session) -> Throttle:
    """The throttle attached to `session`. A session nobody attached one to (a command, the
    demo loader, a test calling a service) gets one of its own in memory, with the default
    policy: it counts for as long as the session lives."""
    found: Any = session.info.get(THROTTLE_KEY)
    if found is None:
        found = session.info[THROTTLE_KEY] = Throttle(MemoryCounters(), Policy())
    assert isinstance(found, Throttle)
    return found
