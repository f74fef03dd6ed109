"""The architecture drawn as text, with each recent message placed on its current hop.

Pure functions of a :class:`Snapshot` plus the hop each message is *shown* at
(the widget walks messages through their hops at a readable pace), so the
drawing can be tested without Textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text

from simulator.core.trace import EventKind
from simulator.dashboard.model import Fate, MessageView, Snapshot, fate_of

_MOVING = ("●", "bold bright_cyan")
_HANDED = ("●", "bold green")
FATE_STYLE: dict[str, tuple[str, str]] = {
    # fate: (glyph, colour)
    Fate.SENT: _MOVING, Fate.ACCEPTED: _MOVING, Fate.IN_FLIGHT: _MOVING,
    Fate.HANDED: _HANDED, Fate.NOT_HANDED: _HANDED,
    Fate.STORED: ("●", "bold yellow"),
    Fate.COLLAPSED: ("◆", "bold magenta"),
    Fate.EXPIRED: ("○", "grey62"),
    Fate.REJECTED: ("✗", "bold red"),
    Fate.DROPPED: ("○", "red"),
}

W, H = 80, 12


class Canvas:
    """A grid of styled characters, turned into a Rich Text at the end."""

    def __init__(self, width: int = W, height: int = H) -> None:
        self.width = width
        self.height = height
        self.chars = [[" "] * width for _ in range(height)]
        self.styles: list[list[str]] = [[""] * width for _ in range(height)]

    def put(self, x: int, y: int, text: str, style: str = "") -> None:
        if not 0 <= y < self.height:
            return
        for i, ch in enumerate(text):
            if 0 <= x + i < self.width:
                self.chars[y][x + i] = ch
                self.styles[y][x + i] = style

    def box(self, x: int, y: int, w: int, h: int, title: str, style: str = "") -> None:
        self.put(x, y, "╭" + "─" * (w - 2) + "╮", style)
        for row in range(y + 1, y + h - 1):
            self.put(x, row, "│", style)
            self.put(x + w - 1, row, "│", style)
        self.put(x, y + h - 1, "╰" + "─" * (w - 2) + "╯", style)
        self.put(x + 2, y, f" {title} ", "bold " + style)

    def hline(self, x0: int, x1: int, y: int, style: str = "", head: str = "▶") -> None:
        self.put(x0, y, "─" * (x1 - x0), style)
        if head:
            self.put(x1, y, head, style)

    def dots(self, x: int, y: int, width: int, marks: list[tuple[str, str]]) -> None:
        """Up to ``width`` marks from ``x``; an overflow count if they do not fit."""
        if len(marks) > width:
            extra = f"+{len(marks) - width + 2}"
            marks = marks[: width - len(extra)]
            self.put(x + len(marks), y, extra, "bold")
        for i, (glyph, style) in enumerate(marks):
            self.put(x + i, y, glyph, style)

    def to_text(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        for y in range(self.height):
            row_chars = self.chars[y]
            row_styles = self.styles[y]
            start = 0
            for x in range(1, self.width + 1):
                if x == self.width or row_styles[x] != row_styles[start]:
                    style = row_styles[start]
                    text.append("".join(row_chars[start:x]), Style.parse(style) if style else None)
                    start = x
            if y < self.height - 1:
                text.append("\n")
        return text


@dataclass(frozen=True, slots=True)
class Placed:
    """Where a message is drawn: a spot on the diagram and its fate so far."""

    spot: str  # "edge1", "provider", "edge2", "device", "inbox", "poll"
    lane: str
    fate: Fate


def place(msg: MessageView, shown: int) -> Placed:
    """The spot of ``msg`` when shown at hop index ``shown``."""
    hops = msg.hops[: shown + 1]
    kinds = [k for k, _ in hops]
    kind = kinds[-1] if kinds else EventKind.SENT
    lane = msg.lane if msg.lane in ("apns", "fcm", "poll") else "apns"
    fate = fate_of(kinds, polled=lane == "poll")
    if lane == "poll":
        spot = "device" if kind == EventKind.HANDED else "inbox"
        return Placed(spot, lane, fate)
    if kind == EventKind.SENT:
        spot = "edge1"
    elif kind == EventKind.FORWARDED:
        spot = "edge2"
    elif kind in (EventKind.DELIVERED, EventKind.HANDED):
        spot = "device"
    else:  # accepted, stored, rejected, expired, collapsed, dropped: at the provider
        spot = "provider"
    return Placed(spot, lane, fate)


@dataclass(frozen=True, slots=True)
class Geometry:
    """Where the boxes go across: the arrows and the device boxes give way first."""

    edge1: int = 8  # app server -> provider, arrow head included
    edge2: int = 8  # provider -> gateway
    edge3: int = 4  # gateway -> devices
    device_w: int = 18

    SERVER_W = 15
    PROVIDER_W = 14
    GATEWAY_W = 13

    @property
    def provider(self) -> int:
        return self.SERVER_W + self.edge1

    @property
    def gateway(self) -> int:
        return self.provider + self.PROVIDER_W + self.edge2

    @property
    def device(self) -> int:
        return self.gateway + self.GATEWAY_W + self.edge3

    @property
    def width(self) -> int:
        return self.device + self.device_w


MIN_W = 72


def geometry(width: int = W) -> Geometry:
    """The widest layout that fits ``width`` columns (at least :data:`MIN_W`)."""
    slack = W - max(MIN_W, min(W, width))
    parts = {"device_w": 18, "edge1": 8, "edge2": 8, "edge3": 4}
    for name, floor in (("device_w", 16), ("edge1", 6), ("edge2", 6), ("edge3", 3),
                        ("device_w", 15)):
        take = min(slack, parts[name] - floor)
        parts[name] -= take
        slack -= take
    return Geometry(**parts)


def draw(snap: Snapshot, placed: list[Placed], width: int = W) -> Text:
    """The whole diagram for ``snap`` with the given message placements, ``width`` wide."""
    g = geometry(width)
    c = Canvas(g.width, H)
    _draw_boxes(c, g, snap)
    # messages
    lanes = {"apns": 1, "fcm": 6}
    spots: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for p in placed:
        spots.setdefault((p.spot, p.lane), []).append(FATE_STYLE[p.fate])
    for (spot, lane), marks in spots.items():
        if lane == "poll":  # waiting in the inbox, then fetched along the poll lane
            if spot == "inbox":
                c.dots(8, 5, 6, marks)
            else:
                c.dots(g.device - 2, 11, 10, marks)
            continue
        y = lanes[lane] + 1
        if spot == "edge1":
            c.dots(g.SERVER_W + 1, y, g.edge1 - 2, marks)
        elif spot == "provider":
            c.dots(g.provider + 2, y, g.PROVIDER_W - 3, marks)
        elif spot == "edge2":
            c.dots(g.provider + g.PROVIDER_W + 1, y, g.edge2 - 2, marks)
        elif spot == "device":
            c.dots(g.device + 2, 2 if lane == "apns" else 7, g.device_w - 3, marks)
    return c.to_text()


def _draw_boxes(c: Canvas, g: Geometry, snap: Snapshot) -> None:
    box_style = "bright_white"
    # app server
    c.box(0, 1, g.SERVER_W, 8, "app server", box_style)
    counts = snap.counts
    c.put(2, 3, f"sent    {counts.get('sent', 0):>4}", "")
    c.put(2, 4, f"pruned  {counts.get('token_pruned', 0):>4}", "")
    c.put(2, 5, "inbox", "dim")
    # providers
    names = {"apns": "APNs", "fcm": "FCM"}
    for lane, y in (("apns", 1), ("fcm", 6)):
        down = snap.outage.get(lane, False)
        style = "red" if down else box_style
        stored = snap.stored.get(lane, 0)
        c.box(g.provider, y - 1, g.PROVIDER_W, 5, names[lane] + (" DOWN" if down else ""), style)
        c.put(g.provider + 2, y + 2, f"stored {stored:>4}", "yellow" if stored else "dim")
        c.hline(g.SERVER_W, g.provider - 1, y + 1, "grey50")
        c.hline(g.provider + g.PROVIDER_W, g.gateway - 1, y + 1, "grey50")
        c.hline(g.gateway + g.GATEWAY_W, g.device - 1, y + 1, "grey50")
    # device gateway (the MQTT broker in live mode)
    x = g.gateway + 2
    c.box(g.gateway, 0, g.GATEWAY_W, 10, "gateway", box_style)
    c.put(x, 2, "device", "dim")
    c.put(x, 3, "links", "dim")
    c.put(x, 5, "MQTT" if snap.mode == "live" else "memory", "dim")
    connected = sum(v for k, v in snap.states.items() if k.endswith(":connected"))
    c.put(x, 7, f"{connected:>5} up", "green" if connected else "dim")
    # devices
    ios = snap.platforms.get("ios", 0)
    android = snap.platforms.get("android", 0)
    c.box(g.device, 0, g.device_w, 5, f"iOS  {ios}", box_style)
    c.box(g.device, 5, g.device_w, 5, f"Android  {android}", box_style)
    for platform, y, total in (("ios", 3, ios), ("android", 8, android)):
        up = snap.states.get(f"{platform}:connected", 0)
        text = f"{up}/{total} connected"
        if len(text) > g.device_w - 4:
            text = f"{up}/{total} up"
        c.put(g.device + 2, y, text, "yellow" if up < total else "dim")
    # polling lane: devices ask the app server
    mid = g.device + g.device_w // 2
    c.put(7, 9, "▲", "grey50")
    c.put(7, 10, "│", "grey50")
    c.put(7, 11, "╰" + "─" * (mid - 8) + "╯", "grey50")
    c.put(mid, 10, "│", "grey50")
    polls = snap.counts.get("poll", 0)
    c.put(12, 11, f" polling apps ask their server: {polls} polls ", "dim")


def legend() -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    for fate in (Fate.IN_FLIGHT, Fate.HANDED, Fate.STORED, Fate.COLLAPSED, Fate.EXPIRED,
                 Fate.REJECTED):
        glyph, style = FATE_STYLE[fate]
        out.append(f" {glyph}", Style.parse(style))
        out.append(f" {fate.replace('_', ' ')} ")
    return out
