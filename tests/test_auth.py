"""Users file, password hashing, login rate limits and role checks (no browser, no model)."""

from __future__ import annotations

import json
import stat

import pytest

from assistant import auth
from assistant.auth import Access, AuthError, Users, add_user


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "users.json"
    add_user(path, "Amina", "trainer", "correct horse battery")
    add_user(path, "joseph", "farmer", "maize and beans")
    return path


def test_passwords_are_stored_hashed_salted_and_private(users_file):
    raw = users_file.read_text()
    assert "correct horse" not in raw and "maize and beans" not in raw
    entries = json.loads(raw)["users"]
    assert set(entries) == {"amina", "joseph"}
    assert entries["amina"]["password"] != entries["joseph"]["password"]
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert auth.verify_password("correct horse battery", entries["amina"]["password"])
    assert not auth.verify_password("correct horse batterY", entries["amina"]["password"])


def test_login_and_roles(users_file):
    users = Users.load(users_file)
    assert users.check("amina", "correct horse battery")
    assert users.check("AMINA ", "correct horse battery")  # names are case-insensitive
    assert not users.check("amina", "maize and beans")
    assert not users.check("nobody", "maize and beans")
    access = Access(users)
    assert access.allows("amina", "trainer") and access.allows("joseph", "farmer")
    assert not access.allows("joseph", "trainer")
    assert "may not train" in access.denial("joseph", "trainer", "train")
    assert access.denial(None, "farmer", "chat") == "Please log in first."
    assert Access(None).allows(None, "trainer")  # no users file: local single-user use


def test_a_name_in_any_case_is_the_same_user_for_every_check(users_file):
    users = Users.load(users_file)
    access = Access(users)
    assert users.check("JOSEPH", "maize and beans") and users.role("JOSEPH") == "farmer"
    assert access.allows(" Joseph ", "farmer") and not access.allows("JOSEPH", "trainer")
    assert "(joseph, farmer) may not train" in access.denial("JOSEPH", "trainer", "train")


@pytest.mark.parametrize("content, message", [
    ("", "not readable JSON"),
    ('{"users": {}}', "lists no users"),
    ('{"users": {"ann": {"role": "admin", "password": "scrypt$1"}}}', "role 'admin'"),
    ('{"users": {"ann": {"role": "farmer", "password": "hunter22"}}}', "plain-text passwords are refused"),
    ('{"users": {"../x": {"role": "farmer", "password": "scrypt$1"}}}', "bad entry"),
])
def test_bad_users_files_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "users.json"
    path.write_text(content)
    with pytest.raises(AuthError, match=message.replace("$", r"\$")):
        Users.load(path)
    with pytest.raises(AuthError, match="does not exist"):
        Users.load(tmp_path / "missing.json")


def test_bad_user_requests(tmp_path):
    with pytest.raises(AuthError, match="at least 8"):
        add_user(tmp_path / "u.json", "ann", "farmer", "short")
    with pytest.raises(AuthError, match="role"):
        add_user(tmp_path / "u.json", "ann", "admin", "long enough pw")
    with pytest.raises(AuthError, match="user name"):
        add_user(tmp_path / "u.json", "../ann", "farmer", "long enough pw")
    assert not (tmp_path / "u.json").exists()


def test_cli_user_add_and_serve_refuses_the_network_without_auth(tmp_path, capsys, monkeypatch):
    import io

    from assistant.cli import main

    path = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["user", "add", "grace", "--role", "trainer", "--file", str(path), "--password-stdin"]) == 0
    assert Users.load(path).check("grace", "a long password")
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "without --auth" in capsys.readouterr().err
    assert main(["serve", "--auth", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", "--trusted-proxy", "the-proxy"]) == 2
    assert "--trusted-proxy 'the-proxy' is not an IP address or network" in capsys.readouterr().err


# API keys ---------------------------------------------------------------------------------------

def test_an_api_key_is_random_shown_once_and_stored_only_as_its_hash(users_file):
    key = auth.issue_key(users_file, "JOSEPH")
    raw = users_file.read_text()
    assert key.startswith(auth.KEY_PREFIX) and len(key) >= 40 and key not in raw
    assert json.loads(raw)["users"]["joseph"]["api_key"] == auth.hash_key(key)
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    users = Users.load(users_file)
    assert users.by_key(key).name == "joseph" and users.by_key(key).role == "farmer"
    assert users.by_key(key + "x") is None and users.by_key("") is None and users.by_key(None) is None
    assert auth.issue_key(users_file, "amina") != key  # random, one per user


def test_reissuing_replaces_the_key_revoking_removes_it_and_a_new_password_keeps_it(users_file):
    old = auth.issue_key(users_file, "joseph")
    new = auth.issue_key(users_file, "joseph")
    users = Users.load(users_file)
    assert users.by_key(old) is None and users.by_key(new).name == "joseph"
    add_user(users_file, "joseph", "farmer", "a new password")  # the key survives a password change
    assert Users.load(users_file).by_key(new).name == "joseph"
    assert auth.revoke_key(users_file, "joseph") is True
    assert Users.load(users_file).by_key(new) is None
    assert auth.revoke_key(users_file, "joseph") is False
    with pytest.raises(AuthError, match="no user"):
        auth.issue_key(users_file, "nobody")


def test_a_running_app_takes_new_and_revoked_keys_at_the_next_check(users_file):
    users = Users.load(users_file)  # as the app holds it from its start
    key = auth.issue_key(users_file, "amina")
    assert users.check_key(key, "198.51.100.1") == (users.users["amina"], 0.0)
    auth.revoke_key(users_file, "amina")
    assert users.check_key(key, "198.51.100.1") == (None, 0.0)


def test_failed_keys_make_the_client_wait_as_failed_log_ins_do(users_file):
    from assistant.throttle import FREE_FAILURES

    key = auth.issue_key(users_file, "amina")
    users = Users.load(users_file)
    for _ in range(FREE_FAILURES):
        assert users.check_key("fa-guess", "203.0.113.5", now=100.0) == (None, 0.0)
    user, wait = users.check_key(key, "203.0.113.5", now=100.0)  # the right key, but this client waits
    assert user is None and wait > 0
    assert users.check_key(key, "203.0.113.6", now=100.0)[0].name == "amina"  # another client: as usual
    assert not users.check("amina", "correct horse battery", client="203.0.113.5", now=100.0)  # one throttle


def test_a_malformed_key_hash_in_the_file_is_refused(users_file):
    data = json.loads(users_file.read_text())
    data["users"]["joseph"]["api_key"] = "the-key-itself"
    users_file.write_text(json.dumps(data))
    with pytest.raises(AuthError, match="malformed api_key"):
        Users.load(users_file)


def test_cli_user_key_prints_only_the_key_and_revokes(users_file, capsys):
    from assistant.cli import main

    assert main(["user", "key", "joseph", "--file", str(users_file)]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert Users.load(users_file).by_key(key).name == "joseph" and "shown only now" in out.err
    assert main(["user", "key", "joseph", "--file", str(users_file), "--revoke"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert Users.load(users_file).by_key(key) is None
    assert main(["user", "key", "nobody", "--file", str(users_file)]) == 2
    assert "no user 'nobody'" in capsys.readouterr().err


def test_failed_keys_from_a_flood_of_addresses_cost_bounded_memory(users_file):
    users = Users.load(users_file)
    users.throttle.max_clients = 50
    for i in range(200):
        users.check_key("fa-guess", f"2001:db8::{i:x}", now=100.0)
    assert len(users.throttle) <= 50


def test_the_running_app_sees_users_file_changes_at_once_and_a_bad_edit_changes_nothing(users_file, capsys):
    users = Users.load(users_file)  # as the app holds it from start
    access = Access(users)
    add_user(users_file, "wanjiru", "farmer", "sorghum in the dry season")  # added while the app runs
    assert users.check("wanjiru", "sorghum in the dry season") and access.allows("wanjiru", "farmer")
    key = auth.issue_key(users_file, "wanjiru")
    assert users.check_key(key, "10.0.0.7")[0].name == "wanjiru"
    add_user(users_file, "joseph", "trainer", "maize and beans")  # promoted
    assert access.allows("joseph", "trainer")
    add_user(users_file, "amina", "trainer", "a new password")  # a password reset: the old one stops working
    assert not users.check("amina", "correct horse battery", client="amina-pc")
    assert users.check("amina", "a new password", client="amina-pc")
    good = users_file.read_text()
    users_file.write_text(good.replace('"role": "trainer"', '"role": "boss"', 1))  # a bad hand edit
    assert access.allows("joseph", "trainer") and users.check_key(key, "10.0.0.7")[0].name == "wanjiru"
    assert "not reloaded" in capsys.readouterr().err
    users_file.write_text(good.replace('"role": "trainer"', '"role": ["trainer"]', 1))  # not even a string
    assert access.allows("joseph", "trainer") and "not reloaded" in capsys.readouterr().err
    users_file.write_text('{"users": {}}')  # emptied: nobody is locked out, nobody let in
    assert users.check("wanjiru", "sorghum in the dry season") and "lists no users" in capsys.readouterr().err
    users_file.write_text(good)  # mended
    assert access.allows("joseph", "trainer") and users.check("wanjiru", "sorghum in the dry season")
    auth.revoke_key(users_file, "wanjiru")
    assert users.check_key(key, "10.0.0.7")[0] is None
