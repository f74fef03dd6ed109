"""Where the app server keeps installs, their tokens, who is logged in, and inboxes.

A token belongs to an install (device + app), never to a user: a user is only
attached to an install while logged in on it. Logging out detaches it; another
user's login on the same phone attaches the same token to them instead. That is
the fix for the logout/login trap of the 2014 design, where tokens were filed
under users and a phone that changed hands kept receiving the first user's mail.

Two stores offer the same synchronous methods (:class:`TokenStore`):
:class:`MemoryTokenStore` and :class:`SqliteTokenStore` (stdlib ``sqlite3`` on a
file, so it survives a restart). They are synchronous on purpose: sim mode runs
on a virtual-time loop that allows no threads, which rules out aiosqlite there,
and one interface must serve both modes. Every call is a few local-file
statements, short enough for the live REST server's event loop too.

``binding="user"`` reproduces the 2014 model for the shared-phone lesson: a
token stays filed under every user who ever registered it and logout detaches
nothing.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

Binding = Literal["install", "user"]


@dataclass(slots=True)
class Install:
    device_id: str
    app_id: str
    platform: str
    token: str | None
    user: str | None
    updated_at: float


@dataclass(slots=True)
class InboxItem:
    msg_id: str
    created_at: float
    payload: dict[str, Any]


class TokenStore(Protocol):
    """The store interface the app server and its REST API use."""

    binding: Binding

    def upsert(self, device_id: str, app_id: str, platform: str, token: str | None,
               user: str | None, now: float) -> Install:
        """Create or update an install; a None ``token`` or ``user`` keeps the stored one."""

    def set_user(self, device_id: str, user: str | None, now: float) -> list[Install]: ...

    def for_user(self, user: str) -> list[Install]: ...

    def for_device(self, device_id: str) -> list[Install]: ...

    def by_token(self, token: str) -> Install | None: ...

    def prune_token(self, token: str) -> Install | None: ...

    def replace_token(self, old: str, new: str, now: float) -> Install | None: ...

    def all(self) -> list[Install]: ...

    def add_subscription(self, device_id: str, app_id: str, topic: str) -> None: ...

    def subscriptions(self, device_id: str, app_id: str) -> list[str]: ...

    def push_inbox(self, user: str, device_id: str, app_id: str, item: InboxItem) -> None: ...

    def take_inbox(self, user: str, device_id: str, app_id: str) -> list[InboxItem]: ...

    def close(self) -> None: ...


class MemoryTokenStore:
    """Installs keyed by (device, app), in memory: sim runs and tests.

    Indexed by token and by user, so a city of installs costs no scans.
    """

    def __init__(self, binding: Binding = "install") -> None:
        self.binding = binding
        self._installs: dict[tuple[str, str], Install] = {}
        self._by_token: dict[str, Install] = {}
        self._by_device: dict[str, list[Install]] = {}
        self._filed: dict[str, dict[str, None]] = {}  # binding="user": user -> tokens
        self._subs: dict[tuple[str, str], list[str]] = {}
        self._inbox: dict[tuple[str, str, str], list[InboxItem]] = {}

    def _set_token(self, inst: Install, token: str | None) -> None:
        if inst.token is not None and self._by_token.get(inst.token) is inst:
            del self._by_token[inst.token]
        inst.token = token
        if token is not None:
            other = self._by_token.get(token)
            if other is not None and other is not inst:  # a token reaches one install only
                other.token = None
            self._by_token[token] = inst

    def upsert(self, device_id: str, app_id: str, platform: str, token: str | None,
               user: str | None, now: float) -> Install:
        key = (device_id, app_id)
        inst = self._installs.get(key)
        if inst is None:
            inst = self._installs[key] = Install(device_id, app_id, platform, None, user, now)
            self._by_device.setdefault(device_id, []).append(inst)
        else:
            inst.platform = platform
            if user is not None:  # no user given: keep who is logged in (logout detaches)
                inst.user = user
            inst.updated_at = now
        if token is not None:
            self._set_token(inst, token)
        if user is not None and token is not None:
            self._filed.setdefault(user, {})[token] = None
        return inst

    def set_user(self, device_id: str, user: str | None, now: float) -> list[Install]:
        changed = list(self._by_device.get(device_id, ()))
        for inst in changed:
            inst.user = user
            inst.updated_at = now
            if user is not None and inst.token:
                self._filed.setdefault(user, {})[inst.token] = None
        return changed

    def for_user(self, user: str) -> list[Install]:
        if self.binding == "user":
            tokens = self._filed.get(user, {})
            return [i for i in self._installs.values() if i.token and i.token in tokens]
        return [i for i in self._installs.values() if i.user == user and i.token]

    def for_device(self, device_id: str) -> list[Install]:
        return list(self._by_device.get(device_id, ()))

    def by_token(self, token: str) -> Install | None:
        return self._by_token.get(token)

    def prune_token(self, token: str) -> Install | None:
        inst = self._by_token.get(token)
        if inst is not None:
            self._set_token(inst, None)
        for filed in self._filed.values():
            filed.pop(token, None)
        return inst

    def replace_token(self, old: str, new: str, now: float) -> Install | None:
        inst = self._by_token.get(old)
        if inst is not None:
            self._set_token(inst, new)
            inst.updated_at = now
            for filed in self._filed.values():
                if old in filed:
                    del filed[old]
                    filed[new] = None
        return inst

    def all(self) -> list[Install]:
        return list(self._installs.values())

    def add_subscription(self, device_id: str, app_id: str, topic: str) -> None:
        subs = self._subs.setdefault((device_id, app_id), [])
        if topic not in subs:
            subs.append(topic)

    def subscriptions(self, device_id: str, app_id: str) -> list[str]:
        return list(self._subs.get((device_id, app_id), ()))

    def push_inbox(self, user: str, device_id: str, app_id: str, item: InboxItem) -> None:
        self._inbox.setdefault((user, device_id, app_id), []).append(item)

    def take_inbox(self, user: str, device_id: str, app_id: str) -> list[InboxItem]:
        return self._inbox.pop((user, device_id, app_id), [])

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS installs (
    device_id TEXT NOT NULL, app_id TEXT NOT NULL, platform TEXT NOT NULL,
    token TEXT, user TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (device_id, app_id));
CREATE UNIQUE INDEX IF NOT EXISTS installs_token ON installs(token) WHERE token IS NOT NULL;
CREATE INDEX IF NOT EXISTS installs_user ON installs(user);
CREATE TABLE IF NOT EXISTS filed (user TEXT NOT NULL, token TEXT NOT NULL,
    PRIMARY KEY (user, token));
CREATE TABLE IF NOT EXISTS subscriptions (device_id TEXT NOT NULL, app_id TEXT NOT NULL,
    topic TEXT NOT NULL, PRIMARY KEY (device_id, app_id, topic));
CREATE TABLE IF NOT EXISTS inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
    device_id TEXT NOT NULL, app_id TEXT NOT NULL, msg_id TEXT NOT NULL,
    created_at REAL NOT NULL, payload TEXT NOT NULL);
"""


class SqliteTokenStore:
    """The same store on an SQLite file (the default for ``pushlab serve app-server``)."""

    def __init__(self, path: str | Path = ":memory:", binding: Binding = "install") -> None:
        self.binding = binding
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    @staticmethod
    def _install(row: sqlite3.Row | None) -> Install | None:
        if row is None:
            return None
        return Install(row["device_id"], row["app_id"], row["platform"], row["token"],
                       row["user"], row["updated_at"])

    def _rows(self, sql: str, *args: Any) -> list[Install]:
        return [self._install(r) for r in self._db.execute(sql, args)]  # type: ignore[misc]

    def upsert(self, device_id: str, app_id: str, platform: str, token: str | None,
               user: str | None, now: float) -> Install:
        db = self._db
        with db:
            db.execute("BEGIN")
            if token is not None:
                db.execute("UPDATE installs SET token = NULL WHERE token = ? AND "
                           "NOT (device_id = ? AND app_id = ?)", (token, device_id, app_id))
            db.execute(
                "INSERT INTO installs (device_id, app_id, platform, token, user, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, app_id) DO UPDATE SET "
                "platform = excluded.platform, token = COALESCE(excluded.token, installs.token), "
                "user = COALESCE(excluded.user, installs.user), updated_at = excluded.updated_at",
                (device_id, app_id, platform, token, user, now))
            if user is not None and token is not None:
                db.execute("INSERT OR IGNORE INTO filed VALUES (?, ?)", (user, token))
        inst = self._install(db.execute(
            "SELECT * FROM installs WHERE device_id = ? AND app_id = ?",
            (device_id, app_id)).fetchone())
        assert inst is not None
        return inst

    def set_user(self, device_id: str, user: str | None, now: float) -> list[Install]:
        db = self._db
        with db:
            db.execute("BEGIN")
            db.execute("UPDATE installs SET user = ?, updated_at = ? WHERE device_id = ?",
                       (user, now, device_id))
            if user is not None:
                db.execute("INSERT OR IGNORE INTO filed SELECT ?, token FROM installs "
                           "WHERE device_id = ? AND token IS NOT NULL", (user, device_id))
        return self.for_device(device_id)

    def for_user(self, user: str) -> list[Install]:
        if self.binding == "user":
            return self._rows("SELECT i.* FROM installs i JOIN filed f ON f.token = i.token "
                              "WHERE f.user = ? ORDER BY i.rowid", user)
        return self._rows("SELECT * FROM installs WHERE user = ? AND token IS NOT NULL "
                          "ORDER BY rowid", user)

    def for_device(self, device_id: str) -> list[Install]:
        return self._rows("SELECT * FROM installs WHERE device_id = ? ORDER BY rowid", device_id)

    def by_token(self, token: str) -> Install | None:
        return self._install(self._db.execute("SELECT * FROM installs WHERE token = ?",
                                              (token,)).fetchone())

    def prune_token(self, token: str) -> Install | None:
        inst = self.by_token(token)
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE installs SET token = NULL WHERE token = ?", (token,))
            self._db.execute("DELETE FROM filed WHERE token = ?", (token,))
        if inst is not None:
            inst.token = None
        return inst

    def replace_token(self, old: str, new: str, now: float) -> Install | None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE installs SET token = NULL WHERE token = ?", (new,))
            self._db.execute("UPDATE installs SET token = ?, updated_at = ? WHERE token = ?",
                             (new, now, old))
            self._db.execute("UPDATE OR IGNORE filed SET token = ? WHERE token = ?", (new, old))
        return self.by_token(new)

    def all(self) -> list[Install]:
        return self._rows("SELECT * FROM installs ORDER BY rowid")

    def add_subscription(self, device_id: str, app_id: str, topic: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?, ?)",
                         (device_id, app_id, topic))

    def subscriptions(self, device_id: str, app_id: str) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT topic FROM subscriptions WHERE device_id = ? AND app_id = ? ORDER BY rowid",
            (device_id, app_id))]

    def push_inbox(self, user: str, device_id: str, app_id: str, item: InboxItem) -> None:
        self._db.execute("INSERT INTO inbox (user, device_id, app_id, msg_id, created_at, "
                         "payload) VALUES (?, ?, ?, ?, ?, ?)",
                         (user, device_id, app_id, item.msg_id, item.created_at,
                          json.dumps(item.payload)))

    def take_inbox(self, user: str, device_id: str, app_id: str) -> list[InboxItem]:
        db = self._db
        where = "user = ? AND device_id = ? AND app_id = ?"
        with db:
            db.execute("BEGIN")
            rows = db.execute(f"SELECT * FROM inbox WHERE {where} ORDER BY seq",
                              (user, device_id, app_id)).fetchall()
            db.execute(f"DELETE FROM inbox WHERE {where}", (user, device_id, app_id))
        return [InboxItem(r["msg_id"], r["created_at"], json.loads(r["payload"])) for r in rows]

    def close(self) -> None:
        self._db.close()
