"""The PushLab dashboard: a Textual app over a :class:`SimEngine`.

State lives in the engine's snapshot; the app copies the newest one into each
widget's ``data`` reactive on a 10 Hz timer (never per trace event), so the
cost of the UI does not grow with the number of events or devices.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Input, Static

from simulator.dashboard.engine import SimEngine, speed_label
from simulator.dashboard.model import Snapshot
from simulator.dashboard.screens import ChoiceScreen, HelpScreen, SendScreen
from simulator.dashboard.widgets import (
    ArchitectureView,
    ClockBar,
    DevicesTable,
    EnergyPanel,
    EventLog,
    MessageLife,
    legend,
)

REFRESH_HZ = 10.0

# (action, key, title, help): one list feeds the bindings, the buttons and the palette
ACTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("toggle_pause", "space", "Pause / resume", "Stop or restart simulated time"),
    ("step", "full_stop", "Step", "Advance to the next trace event"),
    ("faster", "plus,equals", "Faster", "Next speed up (1x ... as fast as possible)"),
    ("slower", "minus", "Slower", "Next speed down"),
    ("send", "s", "Send notification", "To a user or topic, with priority, TTL, collapse id"),
    ("switch_network", "w", "Switch network", "Selected device: Wi-Fi <-> LTE"),
    ("change_address", "i", "New IP address", "Selected device gets a new address"),
    ("airplane", "p", "Airplane mode", "Selected device: airplane mode on/off"),
    ("reboot", "r", "Reboot", "Selected device reboots"),
    ("doze", "z", "Doze", "Selected device: doze on/off"),
    ("offline", "c", "Coverage", "Selected device loses / regains coverage"),
    ("uninstall", "u", "Uninstall app", "Uninstall one of the selected device's apps"),
    ("nat_timeout", "t", "NAT timeout", "The selected device's NAT drops its binding"),
    ("outage", "o", "Provider outage", "Take APNs or FCM down, or bring it back"),
)

BUTTONS = (("send", "Send [s]"), ("switch_network", "Wi-Fi/LTE [w]"),
           ("change_address", "New IP [i]"), ("airplane", "Airplane [p]"),
           ("reboot", "Reboot [r]"), ("doze", "Doze [z]"), ("offline", "Coverage [c]"),
           ("uninstall", "Uninstall [u]"), ("nat_timeout", "NAT drop [t]"),
           ("outage", "Outage [o]"))


class DashboardApp(App[None]):
    """See the module docstring; keys are listed in :data:`ACTIONS` and the help screen."""

    CSS_PATH = Path(__file__).with_name("dashboard.tcss")
    # one class on the screen per width band; dashboard.tcss lays each out
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-medium"), (124, "-wide"), (156, "-full")]
    TITLE = "PushLab"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        *[Binding(key, action, title, show=action in ("toggle_pause", "step", "send"),
                  priority=action == "toggle_pause")
          for action, key, title, _ in ACTIONS],
        Binding("slash", "filter_devices", "Filter devices", show=False),
        Binding("f", "filter_events", "Filter log", show=False),
        Binding("left_square_bracket", "page(-1)", "Prev page", show=False),
        Binding("right_square_bracket", "page(1)", "Next page", show=False),
        Binding("escape", "leave_input", "Back", show=False),
        Binding("question_mark,h,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    selected_device: reactive[str | None] = reactive(None)

    def __init__(self, engine: SimEngine, *, animate: bool = True) -> None:
        super().__init__()
        self.engine = engine
        self.animate = animate
        self._snap: Snapshot | None = None

    # ---- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield ClockBar(id="clock")
        with Horizontal(id="top"):
            with Vertical(id="arch-panel", classes="panel"):
                yield ArchitectureView(id="arch", hop_seconds=0.4 if self.animate else 0.0,
                                       linger_seconds=4.0 if self.animate else 0.0)
                yield Static(legend(), id="legend")
            yield EnergyPanel(id="energy", classes="panel")
        with Vertical(id="devices-panel", classes="panel"):
            yield DevicesTable(id="devices")
            with Horizontal(id="actions"):
                for action, label in BUTTONS:  # escaped: "[s]" would read as a style
                    button = Button(escape(label), id=f"btn-{action}", classes="action")
                    button.styles.line_pad = 0  # the stylesheet parser refuses 0 here
                    yield button
        with Horizontal(id="bottom"):
            yield EventLog(self.engine.collector, id="log", classes="panel")
            yield MessageLife(self.engine.collector, id="life", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#arch-panel").border_title = "Architecture: messages hop by hop"
        self.query_one("#energy").border_title = "Battery: push vs polling"
        self.query_one("#devices-panel").border_title = "Devices"
        self.query_one("#log").border_title = "Event log"
        self.query_one("#life").border_title = "Message life"
        self.query_one(MessageLife).msg_id = None
        self._arch = self.query_one(ArchitectureView)
        self._life = self.query_one(MessageLife)
        self._watchers: list[Any] = [self.query_one(ClockBar), self._arch,
                                     self.query_one(DevicesTable), self.query_one(EnergyPanel),
                                     self.query_one(EventLog), self._life]
        self.engine.set_view(limit=60)
        if not self.engine.started:
            self.run_engine()
        self.set_interval(1.0 / REFRESH_HZ, self.refresh_from_engine)
        self.query_one("#devices-table", DataTable).focus()

    @work(thread=True, exclusive=True, name="pushlab-sim", exit_on_error=False)
    def run_engine(self) -> None:
        """The simulation's own thread: a Textual worker running the engine to its stop."""
        self.engine.run()

    def on_unmount(self) -> None:
        self.engine.stop()

    # ---- the one place the UI reads the simulation -----------------------------------
    def refresh_from_engine(self) -> None:
        snap = self.engine.snapshot
        if snap is not self._snap:
            self._snap = snap
            for widget in self._watchers:  # works under a modal screen too
                widget.data = snap
            if self.selected_device is None and snap.rows:
                self.selected_device = snap.rows[0].device_id
        else:
            self._arch.animate_tick()
        for severity, text in self.engine.notices():
            self.notify(text, severity=severity, timeout=4)  # type: ignore[arg-type]

    # ---- events from widgets ---------------------------------------------------------------
    def on_devices_table_selected(self, event: DevicesTable.Selected) -> None:
        self.selected_device = event.device_id

    def on_event_log_message_chosen(self, event: EventLog.MessageChosen) -> None:
        self._life.msg_id = event.msg_id

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        button_id = event.button.id or ""
        if button_id.startswith("btn-"):
            await self.run_action(button_id.removeprefix("btn-"))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "device-filter":
            self.engine.set_view(filter=event.value, offset=0)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#devices-table", DataTable).focus()

    # ---- clock ----------------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        paused = self.engine.toggle_pause()
        self.notify("paused" if paused else "running", timeout=1.5)

    def action_step(self) -> None:
        self.engine.step()

    def action_faster(self) -> None:
        self.notify(f"speed {speed_label(self.engine.faster())}", timeout=1.5)

    def action_slower(self) -> None:
        self.notify(f"speed {speed_label(self.engine.slower())}", timeout=1.5)

    # ---- world actions ------------------------------------------------------------------
    def _device(self) -> str | None:
        device = self.selected_device
        if device is None:
            self.notify("select a device in the table first", severity="warning")
        return device

    def _device_row(self, device_id: str) -> Any:
        snap = self._snap
        if snap is None:
            return None
        return next((r for r in snap.rows if r.device_id == device_id), None)

    def action_send(self) -> None:
        snap = self._snap
        users = snap.users if snap else ()
        default = None
        if self.selected_device and snap is not None:
            default = next((u for u in users if self.selected_device.startswith(u)), None)

        def done(kwargs: dict[str, Any] | None) -> None:
            if kwargs:
                self.engine.send(**kwargs)

        self.push_screen(SendScreen(users, default), done)

    def _simple(self, name: str) -> None:
        device = self._device()
        if device is not None:
            self.engine.device_action(device, name)

    def action_switch_network(self) -> None:
        self._simple("switch_network")

    def action_change_address(self) -> None:
        self._simple("change_address")

    def action_airplane(self) -> None:
        self._simple("airplane")

    def action_reboot(self) -> None:
        self._simple("reboot")

    def action_doze(self) -> None:
        self._simple("doze")

    def action_offline(self) -> None:
        self._simple("offline")

    def action_nat_timeout(self) -> None:
        device = self._device()
        if device is not None:
            self.engine.nat_timeout(device)

    def action_uninstall(self) -> None:
        device = self._device()
        if device is None:
            return
        row = self._device_row(device)
        apps = list(row.apps) if row is not None else []
        if not apps:
            self.notify(f"{device} has no apps", severity="warning")
            return

        def done(app: str | None) -> None:
            if app:
                self.engine.device_action(device, "uninstall", app=app)

        if len(apps) == 1:
            done(apps[0])
        else:
            self.push_screen(ChoiceScreen(f"Uninstall which app from {device}?",
                                          [(a, a) for a in apps]), done)

    def action_outage(self) -> None:
        snap = self._snap
        outage = snap.outage if snap else {}

        def label(p: str) -> str:
            return f"{p.upper()}: {'end the outage' if outage.get(p) else 'start an outage'}"

        def done(provider: str | None) -> None:
            if provider:
                self.engine.outage(provider)

        self.push_screen(ChoiceScreen("Provider outage", [(label("apns"), "apns"),
                                                          (label("fcm"), "fcm")]), done)

    # ---- navigation ---------------------------------------------------------------------
    def action_filter_devices(self) -> None:
        self.query_one("#device-filter", Input).focus()

    def action_filter_events(self) -> None:
        self.query_one("#event-filter", Input).focus()

    def action_leave_input(self) -> None:
        self.query_one("#devices-table", DataTable).focus()

    def action_page(self, direction: int) -> None:
        engine = self.engine
        snap = self._snap
        total = snap.devices_matched if snap else 0
        engine.set_view(offset=max(0, min(engine.view_offset + direction * engine.view_limit,
                                          max(total - 1, 0))))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # ---- command palette ------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for action, key, title, help_text in ACTIONS:
            shown_key = key.split(",")[0].replace("full_stop", ".")
            yield SystemCommand(f"{title}  [{shown_key}]", help_text,
                                lambda a=action: self.call_later(self.run_action, a))
        yield SystemCommand("Help: keys and concepts  [?]", "What every key does",
                            self.action_help)
