"""Dashboard widgets. Each exposes one reactive ``data`` attribute (the newest
:class:`Snapshot`) and redraws only when the app's timer assigns a new one."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static
from textual_plotext import PlotextPlot

from simulator.commands.run import describe
from simulator.core.events import Note, ProviderId, Retry, SendFailed
from simulator.core.msgids import short_id
from simulator.core.trace import EventKind, TraceEvent
from simulator.dashboard.diagram import FATE_STYLE, Placed, W, draw, legend, place
from simulator.dashboard.engine import speed_label
from simulator.dashboard.model import Collector, DeviceRow, EnergySeries, Snapshot, fate_of


def clock(t: float) -> str:
    """Simulated time as H:MM:SS.s (days as a prefix)."""
    days, rest = divmod(t, 86_400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    prefix = f"{int(days)}d " if days else ""
    return f"{prefix}{int(h)}:{int(m):02d}:{s:04.1f}"


class ClockBar(Static):
    """Simulated time, speed, paused or running, progress through the scenario."""

    data: reactive[Snapshot | None] = reactive(None, layout=False)

    def render(self) -> Text:
        snap = self.data
        out = Text(no_wrap=True, overflow="ellipsis")
        if snap is None:
            return out.append(" starting the simulation...")
        if snap.error:
            out.append(" STOPPED ", "bold white on red")
        elif snap.paused:
            out.append(" ⏸ PAUSED ", "bold black on yellow")
        else:
            out.append(" ▶ RUNNING ", "bold black on green")
        out.append(f"  {clock(snap.t)}", "bold")
        if self.size.width >= 110:  # narrower, the progress and the scenario matter more
            out.append(f"  ({snap.clock} UTC)", "dim")
        out.append("  speed ", "dim")
        out.append(speed_label(snap.speed), "bold")
        if not snap.paused and snap.effective_speed and not math.isinf(snap.speed) \
                and snap.effective_speed < snap.speed * 0.8:
            out.append(f" (keeping up at {snap.effective_speed:,.0f}x)", "yellow")
        elif not snap.paused and math.isinf(snap.speed) and snap.effective_speed:
            out.append(f" ({snap.effective_speed:,.0f}x)", "dim")
        if snap.duration:
            frac = min(snap.t / snap.duration, 1.0)
            filled = int(frac * 20)
            out.append("  [", "dim")
            out.append("█" * filled, "cyan")
            out.append("░" * (20 - filled), "dim")
            out.append(f"] {frac:4.0%}", "dim")
        out.append(f"  {snap.scenario}", "bold cyan")
        out.append(f"  {snap.mode} mode", "dim")
        out.append(f"  {snap.events_total:,} events", "dim")
        return out


class ArchitectureView(Static):
    """The diagram; walks each new message through its hops at a readable pace."""

    data: reactive[Snapshot | None] = reactive(None, layout=False)

    def __init__(self, *args: Any, hop_seconds: float = 0.4, linger_seconds: float = 4.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hop_seconds = hop_seconds
        self.linger_seconds = linger_seconds
        self._shown: dict[str, list[float]] = {}  # msg -> [hop index shown, since]
        self._last: list[Placed] | None = None
        self._width = W

    def watch_data(self) -> None:
        self.animate_tick()

    def animate_tick(self) -> None:
        """Advance the walk (called by the app's timer) and redraw if anything moved."""
        snap = self.data
        if snap is None:
            return
        now = time.monotonic()
        placed: list[Placed] = []
        keep: dict[str, list[float]] = {}
        for msg in snap.messages:
            last = len(msg.hops) - 1
            state = self._shown.get(msg.msg_id)
            if state is None:
                state = [0.0 if self.hop_seconds > 0 else float(last), now]
            idx = int(state[0])
            if idx < last and now - state[1] >= self.hop_seconds:
                idx = max(idx + 1, last - 3)  # never fall more than a few hops behind
                state = [float(idx), now]
            keep[msg.msg_id] = state
            p = place(msg, idx)
            done = p.fate.settled and idx == last
            if done and self.linger_seconds and now - state[1] > self.linger_seconds:
                continue
            placed.append(p)
        self._shown = keep
        width = self.content_size.width or W
        if placed != self._last or self._last is None or width != self._width:
            self._last = placed
            self._width = width
            self.update(draw(snap, placed, width))

    def on_resize(self) -> None:
        self.animate_tick()  # the diagram's arrows give way when the panel narrows


class DevicesTable(Widget):
    """The devices, a page at a time: the engine builds rows for the visible window only."""

    data: reactive[Snapshot | None] = reactive(None, layout=False)

    COLUMNS = (("device", "device"), ("platform", "platform"), ("iface", "iface"),
               ("address", "address"), ("connection", "connection"), ("radio", "radio"),
               ("battery", "battery"), ("pending", "pending"), ("delivered", "delivered"),
               ("apps", "apps"))

    class Selected(Message):
        def __init__(self, device_id: str) -> None:
            super().__init__()
            self.device_id = device_id

    def compose(self) -> ComposeResult:
        with Horizontal(id="devices-top"):
            yield Static(id="devices-summary")
            yield Input(placeholder="/ filter: id, platform, user", id="device-filter")
        table: DataTable = DataTable(id="devices-table", cursor_type="row", zebra_stripes=True)
        for label, key in self.COLUMNS:
            table.add_column(label, key=key)
        yield table

    @property
    def table(self) -> DataTable:
        return self.query_one("#devices-table", DataTable)

    def watch_data(self, snap: Snapshot | None) -> None:
        if snap is None or not self.is_mounted:
            return
        tables = self.query("#devices-table").results(DataTable)
        table = next(tables, None)
        if table is None:
            return  # children not mounted yet: the next snapshot (a tick away) draws it
        keys = [r.device_id for r in snap.rows]
        current = [str(k.value) for k in table.rows]
        if keys == current:
            for row in snap.rows:
                for (_, col), value in zip(self.COLUMNS, _cells(row), strict=True):
                    if not _same(table.get_cell(row.device_id, col), value):
                        table.update_cell(row.device_id, col, value, update_width=True)
        else:
            selected = self.selected
            table.clear()
            for row in snap.rows:
                table.add_row(*_cells(row), key=row.device_id)
            if selected in keys:
                table.move_cursor(row=keys.index(selected), animate=False)
        first = snap.offset + 1 if snap.rows else 0
        last = snap.offset + len(snap.rows)
        states = {}
        for key, n in snap.states.items():
            state = key.split(":", 1)[1]
            states[state] = states.get(state, 0) + n
        parts = "  ".join(f"{k} {v:,}" for k, v in sorted(states.items()))
        shown = f"rows {first:,}-{last:,} of {snap.devices_matched:,}"
        if snap.devices_matched != snap.devices_total:
            shown += f" (filtered from {snap.devices_total:,})"
        self.query_one("#devices-summary", Static).update(
            Text.assemble((f" {snap.devices_total:,} devices ", "bold"), (parts, ""),
                          ("   " + shown, "dim"), ("   [ ] page", "dim")))

    @property
    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Selected(str(event.row_key.value)))


def _same(a: Any, b: Any) -> bool:
    """Cell equality that sees styles (``Text.__eq__`` compares only text and spans)."""
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans
    return bool(a == b)


STATE_STYLE = {"connected": "green", "connecting": "yellow", "backoff": "yellow",
               "offline": "red"}


def _connection(row: DeviceRow) -> Text:
    """The push connection; a phone with several daemons shows each: ``fcm ● oem ●``."""
    if not row.daemons:
        return Text(row.connection, STATE_STYLE.get(row.connection, ""))
    text = Text()
    for n, (provider, state) in enumerate(row.daemons):
        text.append(f"{' ' if n else ''}{provider} ")
        text.append("●" if state == "connected" else state, STATE_STYLE.get(state, ""))
    return text


def _cells(row: DeviceRow) -> tuple[Any, ...]:
    pct = row.battery_pct
    bar = "█" * int(pct / 20 + 0.5)
    battery = Text.assemble((f"{pct:6.2f}% ", ""), (bar, "green" if pct > 50 else "yellow"))
    return (
        Text(row.device_id, "bold" if row.delivered else ""),
        Text(row.platform),
        Text(row.interface, "red" if row.interface in ("airplane", "none", "off") else ""),
        Text(row.address),
        _connection(row),
        Text(row.radio, "bold yellow" if row.radio in ("connected", "promoting") else "dim"),
        battery,
        Text(str(row.pending), "bold yellow" if row.pending else "dim"),
        Text(str(row.delivered)),
        Text(f"{len(row.apps)} {row.flags}", "dim"),
    )


class EnergyPanel(Vertical):
    """Battery over time for push devices against polling devices, and the running totals."""

    data: reactive[Snapshot | None] = reactive(None, layout=False)

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="energy-plot")
        yield Static(id="energy-totals")

    _drawn: tuple[int, float] = (-1, -1.0)

    def watch_data(self, snap: Snapshot | None) -> None:
        if snap is None or not self.is_mounted:
            return
        e = snap.energy
        key = (len(e.times), e.times[-1] if e.times else 0.0)
        if key == self._drawn:  # the series only changes when the sim samples it
            return
        plot = next(self.query("#energy-plot").results(PlotextPlot), None)
        if plot is None:
            return  # not mounted yet: drawn on a later snapshot
        self._drawn = key
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("battery used (%), mean per device")
        xs = [t / 60.0 for t in e.times]
        if xs:
            if e.n_push:
                plt.plot(xs, list(e.push_pct), label=f"push ({e.n_push})", color="cyan")
            if e.n_poll:
                plt.plot(xs, list(e.poll_pct), label=f"polling ({e.n_poll})", color="orange")
        plt.xlabel("minutes")
        plot.refresh()
        self.query_one("#energy-totals", Static).update(energy_totals(e))


def energy_totals(e: EnergySeries) -> Text:
    """Joules so far for each side; a side with no phones says so instead of 0 J."""
    approx = "≈" if e.estimated else ""
    text = Text(no_wrap=True, overflow="ellipsis")
    for name, style, joules, n in (("push", "bold cyan", e.push_j, e.n_push),
                                   ("polling", "bold orange1", e.poll_j, e.n_poll)):
        text.append(" ")
        if not n:
            text.append(f"no {name} phones", "dim")
        else:
            text.append(f"{name} ", style)
            text.append(f"{approx}{joules:,.1f} J")
            text.append(f" ({joules / n:,.1f} J/dev)", "dim")
        text.append("  ")
    return text


HIDDEN_BY_DEFAULT = frozenset({EventKind.RADIO_STATE, EventKind.ENERGY})

KIND_STYLE = {
    "sent": "cyan", "accepted": "cyan", "forwarded": "cyan", "delivered": "green",
    "handed": "bold green", "stored": "yellow", "collapsed": "magenta", "expired": "grey62",
    "rejected": "bold red", "dropped": "red", "connected": "green", "disconnected": "yellow",
    "nat_expired": "bold yellow", "ip_changed": "blue", "heartbeat": "dim", "poll": "orange1",
    "token_pruned": "red", "note": "italic", "rule": "bold magenta",
}
ACTED = frozenset({"held", "throttled", "downgraded", "dropped", "shown_by_system"})


def held_by(life: list[TraceEvent]) -> str | None:
    """The last platform rule that held, downgraded or dropped the message."""
    rules = [e for e in life if e.kind == EventKind.RULE and e.data.get("effect") in ACTED]
    return str(rules[-1].data["rule"]) if rules else None


def rule_text(d: dict[str, Any]) -> str:
    """A ``rule`` event in words: the rule, what it did, why, until when."""
    text = f"{d.get('rule')} {d.get('effect')}"
    if d.get("reason"):
        text += f": {d['reason']}"
    if d.get("until") is not None:
        text += f" (until {clock(float(d['until']))})"
    return text


class EventFilter:
    """``alice kind:stored msg:6ce2 device:bob`` (all terms must match; ``all`` shows radio too)."""

    def __init__(self, text: str = "", resolve: Callable[[str], str] | None = None) -> None:
        self.text = text
        self.resolve = resolve  # a provider's id -> the app server's: msg:6ce2 finds both
        self.terms: list[tuple[str | None, str]] = []
        self.show_all = False
        for word in text.lower().split():
            if word == "all":
                self.show_all = True
            elif ":" in word:
                key, _, value = word.partition(":")
                self.terms.append((key, value))
            else:
                self.terms.append((None, word))

    def __call__(self, ev: TraceEvent) -> bool:
        kind = ev.kind
        if not self.show_all and kind in HIDDEN_BY_DEFAULT and not any(
                k == "kind" for k, _ in self.terms):
            return False
        data = ev.data
        for key, value in self.terms:
            if key == "kind" or key == "type":
                if not kind.startswith(value):
                    return False
            elif key == "msg":
                msg = str(data.get("msg", ""))
                if value not in msg.lower() and not (
                        msg and self.resolve and value in self.resolve(msg).lower()):
                    return False
            elif key in ("device", "user", "app", "provider"):
                if value not in str(data.get(key, "")).lower():
                    return False
            elif key is None:
                if value not in kind and not any(value in str(v).lower()
                                                 for v in data.values()):
                    return False
            elif value not in str(data.get(key, "")).lower():
                return False
        return True


PROVIDER_NAME = {"apns": "APNs", "fcm": "FCM"}


def _sentence(ev: TraceEvent) -> str | None:
    """Sentences for the kinds ``describe`` leaves out."""
    d = ev.data
    kind = ev.kind
    who = PROVIDER_NAME.get(str(d.get("provider", "")), "provider")
    if kind == EventKind.COLLAPSED:
        return f"{who} drops it: a newer message with the same collapse id replaces it"
    if kind == EventKind.EXPIRED:
        return f"{who} throws it away: its TTL ran out before the device came back"
    if kind == EventKind.DROPPED:
        return f"{who} drops it: {d.get('reason', '')}"
    if kind == EventKind.CONNECTED:
        return f"daemon connects to {who} from {d.get('address', '?')}"
    if kind == EventKind.DISCONNECTED:
        return f"{who} sees the connection close"
    if kind == EventKind.NAT_EXPIRED:
        return (f"the NAT forgot the idle connection ({d.get('idle_s', '?')}s idle > "
                f"{d.get('nat_timeout_s', '?')}s timeout); nobody was told")
    if kind == EventKind.IP_CHANGED:
        return f"address {d.get('old', '')} -> {d.get('new', '')} on {d.get('interface', '')}"
    if kind == EventKind.POLL:
        return f"{d.get('app', 'app')} polls its server"
    if kind == EventKind.TOKEN_PRUNED:
        return f"app server prunes a dead token ({d.get('reason', '')})"
    if type(ev) is Note:
        return ev.text
    if kind == EventKind.RULE:
        return rule_text(d)
    return None


def event_text(ev: TraceEvent) -> str:
    try:
        sentence = describe(ev) or _sentence(ev)
    except Exception:  # a field another engineer renamed must not break the log
        sentence = None
    if sentence:
        return sentence
    d = ev.data
    skip = ("device", "msg", "token", "at")
    parts = [f"{k}={v}" for k, v in d.items() if k not in skip and v is not None]
    return " ".join(parts)


class EventLog(Vertical):
    """The trace, filtered; a row with a message shows that message's whole life."""

    MAX_ROWS = 200

    data: reactive[Snapshot | None] = reactive(None, layout=False)

    class MessageChosen(Message):
        def __init__(self, msg_id: str) -> None:
            super().__init__()
            self.msg_id = msg_id

    def __init__(self, collector: Collector, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.collector = collector
        self.filter = EventFilter(resolve=collector.canonical)
        self._seen = 0
        self._rows: list[str] = []
        self._msg_of: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: alice  kind:stored  msg:6ce2  device:bob  (all: radio too)",
                    id="event-filter")
        table: DataTable = DataTable(id="event-table", cursor_type="row")
        table.add_column("time", key="t", width=10)
        table.add_column("event", key="kind", width=13)
        table.add_column("device", key="device", width=14)
        table.add_column("msg", key="msg", width=8)
        table.add_column("what happened", key="text")
        yield table

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "event-filter":
            event.stop()
            self.set_filter(event.value)

    def set_filter(self, text: str) -> None:
        self.filter = EventFilter(text, self.collector.canonical)
        table = self.query_one("#event-table", DataTable)
        table.clear()
        self._rows.clear()
        self._msg_of.clear()
        matched = []
        events = self.collector.all_events()
        base = self.collector.total - len(events)
        for i in range(len(events) - 1, -1, -1):
            if self.filter(events[i]):
                matched.append((base + i, events[i]))
                if len(matched) >= self.MAX_ROWS:
                    break
        self._seen = base + len(events)
        self._append(reversed(matched))

    def watch_data(self, snap: Snapshot | None) -> None:
        if snap is None or not self.is_mounted or snap.events_total == self._seen:
            return
        if next(self.query("#event-table").results(DataTable), None) is None:
            return  # not mounted yet: a later snapshot brings the same events
        total, events = self.collector.tail(self._seen, limit=20_000)
        first = total - len(events)
        self._seen = total
        matched = []  # newest first, at most a screenful: a busy city makes thousands a tick
        for i in range(len(events) - 1, -1, -1):
            if self.filter(events[i]):
                matched.append((first + i, events[i]))
                if len(matched) >= self.MAX_ROWS:
                    break
        matched.reverse()
        if len(matched) >= self.MAX_ROWS:
            self.query_one("#event-table", DataTable).clear()
            self._rows.clear()
            self._msg_of.clear()
        self._append(matched)

    def _append(self, items: Any) -> None:
        table = self.query_one("#event-table", DataTable)
        follow = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        added = False
        for seq, ev in items:
            key = str(seq)
            msg = ev.data.get("msg")
            # Text, not str: a DataTable parses str cells as markup on every render
            # (costly at 10 Hz, and a "[" in an event would be read as a style tag)
            table.add_row(Text(clock(ev.t)), Text(ev.kind, KIND_STYLE.get(ev.kind, "")),
                          Text(str(ev.data.get("device", ev.data.get("provider", "")) or "")),
                          Text(short_id(self.collector.canonical(str(msg))) if msg else ""),
                          Text(event_text(ev)), key=key)
            self._rows.append(key)
            if msg:
                self._msg_of[key] = str(msg)
            added = True
        excess = len(self._rows) - self.MAX_ROWS
        if excess > 0:
            for old in self._rows[:excess]:
                self._msg_of.pop(old, None)
                table.remove_row(old)
            del self._rows[:excess]
        if added and follow:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        msg = self._msg_of.get(str(event.row_key.value))
        if msg is not None:
            self.post_message(self.MessageChosen(msg))


class MessageLife(Static):
    """Every hop of one message, whatever names it went by: time, delta, what, where, why."""

    data: reactive[Snapshot | None] = reactive(None, layout=False)
    msg_id: reactive[str | None] = reactive(None)

    def __init__(self, collector: Collector, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.collector = collector
        self._drawn: tuple[str | None, int, bool] = (None, -1, True)

    def watch_msg_id(self) -> None:
        self._redraw()

    def watch_data(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        msg = self.msg_id
        if msg is None:
            if self._drawn[0] is None and self._drawn[1] == 0:
                return
            self._drawn = (None, 0, True)
            self.update(Text("Pick an event that names a message (msg column) in the log "
                             "to see its whole life here.", "dim"))
            return
        life = self.collector.life(msg)
        wide = self.content_size.width >= 60  # narrower, the clock column goes to the title
        if self._drawn == (msg, len(life), wide):
            return
        self._drawn = (msg, len(life), wide)
        cid = self.collector.canonical(msg)
        fate = self._fate(cid, life)
        glyph, style = FATE_STYLE.get(fate, ("●", "bold"))
        table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
        if wide:
            table.add_column("time", no_wrap=True)
        table.add_column("+", no_wrap=True, style="dim")
        table.add_column("hop", no_wrap=True)
        table.add_column("where / why", overflow="fold")  # a provider id folds, never cut
        first = life[0].t if life else 0.0
        for ev in life:
            cells = (f"{ev.t - first:.3f}s", Text(ev.kind, KIND_STYLE.get(ev.kind, "")),
                     _hop_text(ev))
            table.add_row(*((clock(ev.t), *cells) if wide else cells))
        title = Text.assemble((f"{glyph} ", style), (fate, style), ("  message ", "dim"),
                              (cid, "bold"))
        rule = held_by(life)
        if rule is not None:
            title.append(f"  held by {rule}", KIND_STYLE["rule"])
        if not wide:
            title.append(f"  from {clock(first)}", "dim")
        from rich.console import Group

        self.update(Group(title, table))

    def on_resize(self) -> None:
        self._redraw()

    def _fate(self, cid: str, life: list[TraceEvent]) -> str:
        """A topic send's fate is its deliveries' fates; any other message's, its own."""
        fates = self.collector.delivery_fates(cid)
        if not fates:
            return fate_of((e.kind for e in life),
                           polled=any(getattr(e, "via", None) == "poll" for e in life))
        if len(fates) == 1:
            return next(iter(fates))
        return ", ".join(f"{n} {fate}" for fate, n in fates.most_common())


def _hop_text(ev: TraceEvent) -> str:
    """Where the hop happened and why, for one row of the message life."""
    d = ev.data
    who = PROVIDER_NAME.get(str(d.get("provider", "")), "provider")
    if type(ev) is ProviderId:
        return f"the provider names it {ev.provider_msg}"
    if type(ev) is Retry:
        return f"retry in {ev.delay}s after {ev.status} {ev.reason or ''}"
    if type(ev) is SendFailed:
        return f"app server gives up: {ev.status} {ev.reason or ''}"
    if ev.kind == EventKind.RULE:
        return f"{d.get('device', '')}: {rule_text(d)}"
    where = who if d.get("provider") else ""
    if d.get("device"):
        where = f"{where} → {d['device']}" if where else str(d["device"])
    why = [str(d[k]) for k in ("status", "reason", "via", "app", "attempt", "by")
           if d.get(k) not in (None, "")]
    return " ".join([where, *why]).strip()


__all__ = ["ArchitectureView", "ClockBar", "DevicesTable", "EnergyPanel", "EventLog",
           "MessageLife", "legend"]
