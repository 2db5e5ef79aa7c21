"""Log-in throttling per client address (no browser, no model): the client that fails waits longer
and longer, every other client logs in as usual, and the tables stay small whatever arrives."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from assistant import auth, throttle
from assistant.auth import Users, add_user
from assistant.throttle import FIRST_DELAY_S, FREE_FAILURES, MAX_DELAY_S, LoginThrottle, delay_after
from ui.clients import Clients

RIGHT = {"amina": "correct horse battery", "joseph": "maize and beans"}


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("users") / "users.json"
    for name, password in RIGHT.items():
        add_user(path, name, "trainer" if name == "amina" else "farmer", password)
    return path


@pytest.fixture
def users(users_file):
    return Users.load(users_file)


# Each case: attempts (time, client, name, password) and whether each one lets the user in.
CASES = {
    "another client's right password works while one client fails against the same name": [
        *[(float(t), "10.0.0.66", "amina", "guess") for t in range(20)],
        (20.0, "10.0.0.7", "amina", RIGHT["amina"]),
        (20.0, "10.0.0.8", "AMINA", RIGHT["amina"]),
    ],
    "the failing client waits even with the right password, then gets in": [
        *[(0.0, "10.0.0.66", "amina", "guess") for _ in range(FREE_FAILURES)],
        (0.5, "10.0.0.66", "amina", RIGHT["amina"]),  # refused: waiting, not even checked
        (FIRST_DELAY_S, "10.0.0.66", "amina", RIGHT["amina"]),
    ],
    "a few typos cost nothing": [
        *[(0.0, "10.0.0.9", "joseph", "maize and bean") for _ in range(FREE_FAILURES - 1)],
        (0.0, "10.0.0.9", "joseph", RIGHT["joseph"]),
    ],
    "unknown and invalid names fail, and count against the client only": [
        (0.0, "10.0.0.66", "nobody", "guess"),
        (0.0, "10.0.0.66", "../etc/passwd", "guess"),
        (0.0, "10.0.0.66", "x" * 5000, "guess"),
        (0.0, "10.0.0.66", "amina", RIGHT["amina"]),  # the client must wait now
        (0.0, "10.0.0.5", "amina", RIGHT["amina"]),
    ],
    "a success does not reset the count (an insider cannot guess between log-ins)": [
        *[(0.0, "10.0.0.66", "amina", "guess") for _ in range(FREE_FAILURES - 1)],
        (0.0, "10.0.0.66", "joseph", RIGHT["joseph"]),
        (0.0, "10.0.0.66", "amina", "guess"),
        (0.1, "10.0.0.66", "amina", "guess"),  # refused unchecked: the third failure made it wait
    ],
    "a client forgotten after a quiet while starts afresh": [
        *[(0.0, "10.0.0.66", "amina", "guess") for _ in range(FREE_FAILURES + 4)],
        (throttle.FORGET_S + 1.0, "10.0.0.66", "amina", RIGHT["amina"]),
    ],
}
EXPECTED = {
    "another client's right password works while one client fails against the same name": [False] * 20 + [True, True],
    "the failing client waits even with the right password, then gets in": [False] * FREE_FAILURES + [False, True],
    "a few typos cost nothing": [False] * (FREE_FAILURES - 1) + [True],
    "unknown and invalid names fail, and count against the client only": [False, False, False, False, True],
    "a success does not reset the count (an insider cannot guess between log-ins)":
        [False] * (FREE_FAILURES - 1) + [True, False, False],
    "a client forgotten after a quiet while starts afresh": [False] * (FREE_FAILURES + 4) + [True],
}


@pytest.mark.parametrize("case", list(CASES))
def test_log_in_outcomes(users, case):
    got = [users.check(name, password, client=client, now=t) for t, client, name, password in CASES[case]]
    assert got == EXPECTED[case]


def test_delays_grow_with_each_failure_up_to_the_cap():
    assert [delay_after(n) for n in range(FREE_FAILURES)] == [0.0] * FREE_FAILURES
    grown = [delay_after(FREE_FAILURES + i) for i in range(12)]
    assert grown[:4] == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S, 8 * FIRST_DELAY_S]
    assert grown == sorted(grown) and grown[-1] == MAX_DELAY_S
    table, now = LoginThrottle(), 0.0
    waits = []
    for _ in range(FREE_FAILURES + 3):
        assert table.begin("10.0.0.66", now) == 0.0
        table.end("10.0.0.66", False, now)
        waits.append(table.wait_s("10.0.0.66", now))
        now += waits[-1]  # the next attempt comes as soon as it is allowed
    assert waits == [0.0] * (FREE_FAILURES - 1) + [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S, 8 * FIRST_DELAY_S]


def test_refused_attempts_are_not_checked_and_do_not_extend_the_wait(users, monkeypatch):
    for _ in range(FREE_FAILURES):
        users.check("amina", "guess", client="10.0.0.66", now=0.0)
    checked = []
    monkeypatch.setattr(auth, "verify_password", lambda *a: checked.append(a) or False)
    for t in (0.1, 0.5, 1.0, 1.9):
        assert not users.check("amina", RIGHT["amina"], client="10.0.0.66", now=t)
    assert checked == [] and users.throttle.wait_s("10.0.0.66", 1.9) == pytest.approx(FIRST_DELAY_S - 1.9)


def test_invalid_or_overlong_names_are_refused_unhashed(users, monkeypatch):
    checked = []
    monkeypatch.setattr(auth, "verify_password", lambda *a: checked.append(a) or False)
    for i, name in enumerate(("x" * 65, "../amina", "ami\nna", "", "Ämina", "a b")):  # a client each: none waits
        assert not users.check(name, "guess", client=f"10.0.1.{i}", now=0.0)
    assert not users.check("amina", "p" * (auth.MAX_PASSWORD + 1), client="10.0.0.67", now=0.0)
    assert checked == []
    assert users.check("nobody", "guess", client="10.0.0.68", now=0.0) is False
    assert len(checked) == 1  # a valid but unknown name costs the same check as a real one


def test_the_tables_keep_nothing_of_huge_names_and_stay_bounded(users):
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(25):  # the probe that kept 27 MB before: 25 failures with 1,000 KB names
        users.check("n" * 1_000_000 + str(i), "guess", client="10.0.0.66", now=float(i) * 1000)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert kept < 100_000, f"{kept} bytes kept"
    table = LoginThrottle(max_clients=100)
    for i in range(1000):
        table.begin(f"10.0.{i // 256}.{i % 256}", 0.0)
        table.end(f"10.0.{i // 256}.{i % 256}", False, 0.0)
    assert len(table) == 100
    assert table.failures("10.0.3.231") == 1 and table.failures("10.0.0.0") == 0  # the oldest went first
    table.wait_s("anyone", throttle.FORGET_S + 1.0)
    assert len(table) == 0  # aged out


def test_one_attempt_at_a_time_per_client():
    table = LoginThrottle()
    assert table.begin("10.0.0.66", 0.0) == 0.0
    assert table.begin("10.0.0.66", 0.0) > 0  # a parallel burst is not checked in parallel
    assert table.begin("10.0.0.7", 0.0) == 0.0  # other clients are not held up
    table.end("10.0.0.66", False, 0.0)
    assert table.begin("10.0.0.66", 0.0) == 0.0


@pytest.mark.parametrize("trusted, peer, forwarded, client", [
    ((), "203.0.113.9", None, "203.0.113.9"),
    ((), "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # no trusted proxy: the header is ignored
    (("127.0.0.1",), "127.0.0.1", "198.51.100.1", "198.51.100.1"),
    (("127.0.0.1",), "127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a client-written hop is not believed
    (("127.0.0.1", "10.0.0.0/8"), "127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),
    (("127.0.0.1",), "203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not from the proxy: ignored
    (("127.0.0.1",), "127.0.0.1", "not-an-address", "127.0.0.1"),
    (("127.0.0.1",), "127.0.0.1", "x" * 10_000, "127.0.0.1"),
    (("127.0.0.1",), "::ffff:127.0.0.1", "2001:db8::1", "2001:db8::1"),
    ((), None, None, "unknown"),
])
def test_the_client_address_believes_x_forwarded_for_only_from_a_trusted_proxy(trusted, peer, forwarded, client):
    assert Clients(trusted).address(peer, forwarded) == client


def test_a_bad_trusted_proxy_is_refused_clearly():
    with pytest.raises(ValueError, match="is not an IP address or network"):
        Clients(["proxy.local"])
