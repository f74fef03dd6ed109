"""The token store: tokens belong to installs; SQLite survives a restart."""

from pathlib import Path

import pytest

from app_server.store import InboxItem, MemoryTokenStore, SqliteTokenStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path: Path):
    s = MemoryTokenStore() if request.param == "memory" else SqliteTokenStore(tmp_path / "a.db")
    yield s
    s.close()


def test_logout_then_other_login_moves_the_token_to_the_new_user(store) -> None:
    store.upsert("tablet", "chat", "android", "tok-1", "alice", 0.0)
    store.set_user("tablet", None, 1.0)
    assert store.for_user("alice") == []
    store.set_user("tablet", "bob", 2.0)
    assert [i.token for i in store.for_user("bob")] == ["tok-1"]
    assert store.for_user("alice") == []


def test_a_token_reaches_one_install_only(store) -> None:
    store.upsert("old-phone", "chat", "ios", "tok", "alice", 0.0)
    store.upsert("new-phone", "chat", "ios", "tok", "alice", 1.0)  # restored from backup
    assert [(i.device_id, i.token) for i in store.for_user("alice")] == [("new-phone", "tok")]
    assert store.by_token("tok").device_id == "new-phone"


def test_prune_and_replace(store) -> None:
    store.upsert("d", "chat", "android", "a", "u", 0.0)
    store.replace_token("a", "b", 1.0)
    assert store.by_token("a") is None and store.by_token("b").device_id == "d"
    store.prune_token("b")
    assert store.for_user("u") == [] and store.for_device("d")[0].token is None


def test_refresh_keeps_the_user_and_updates_the_token(store) -> None:
    store.upsert("d", "chat", "ios", "a", "u", 0.0)
    store.upsert("d", "chat", "ios", "b", "u", 5.0)
    assert [i.token for i in store.for_user("u")] == ["b"]
    assert len(store.all()) == 1


def test_user_binding_reproduces_the_2014_trap(tmp_path: Path) -> None:
    for store in (MemoryTokenStore("user"), SqliteTokenStore(tmp_path / "u.db", "user")):
        store.upsert("tablet", "chat", "android", "tok", "alice", 0.0)
        store.set_user("tablet", None, 1.0)
        store.set_user("tablet", "bob", 2.0)
        assert [i.token for i in store.for_user("alice")] == ["tok"]  # still filed under Alice
        assert [i.token for i in store.for_user("bob")] == ["tok"]
        store.close()


def test_inbox_is_per_install_and_read_once(store) -> None:
    store.push_inbox("u", "d1", "news", InboxItem("m1", 1.0, {"x": 1}))
    store.push_inbox("u", "d2", "news", InboxItem("m2", 1.0, {"x": 2}))
    assert [i.msg_id for i in store.take_inbox("u", "d1", "news")] == ["m1"]
    assert store.take_inbox("u", "d1", "news") == []
    assert [i.payload for i in store.take_inbox("u", "d2", "news")] == [{"x": 2}]


def test_sqlite_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    first = SqliteTokenStore(path)
    first.upsert("d", "chat", "ios", "tok", "alice", 0.0)
    first.add_subscription("d", "chat", "news")
    first.push_inbox("alice", "d", "chat", InboxItem("m", 2.0, {"k": "v"}))
    first.close()
    again = SqliteTokenStore(path)
    assert [(i.device_id, i.token, i.user) for i in again.for_user("alice")] == \
        [("d", "tok", "alice")]
    assert again.subscriptions("d", "chat") == ["news"]
    assert [i.msg_id for i in again.take_inbox("alice", "d", "chat")] == ["m"]
    again.close()
