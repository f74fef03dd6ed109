"""Modal screens: help, the send form, and a small chooser (app, provider)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown, OptionList, Select
from textual.widgets.option_list import Option

from simulator.durations import parse_duration

HELP = """\
# PushLab dashboard

A simulated phone platform: an **app server** sends notifications through **APNs**
(iPhones) or **FCM** (Android); each provider keeps one persistent connection per
phone (the device **gateway**), stores messages for phones it cannot reach, and
forwards them when the phone comes back. Polling apps ask their server instead.

Dots on the diagram are messages, walked hop by hop and coloured by fate.
Select a device in the table (arrow keys or mouse) to aim the device actions;
select an event in the log to see its message's whole life.

| key | action |
|---|---|
| `space` | pause / resume |
| `.` | step to the next event (pauses) |
| `+` / `-` | faster / slower (1x ... max) |
| `s` | send a notification (user, topic or device; priority, TTL, collapse) |
| `w` | switch the selected device's network (Wi-Fi / LTE) |
| `i` | give it a new IP address |
| `p` | airplane mode on/off |
| `r` | reboot |
| `z` | doze on/off |
| `c` | coverage lost / back |
| `u` | uninstall one of its apps |
| `t` | inject a NAT timeout (the NAT drops its binding) |
| `o` | provider outage on/off (APNs or FCM) |
| `/` | filter the devices table; `[` `]` page through it |
| `f` | filter the event log (`alice kind:stored msg:6ce2`) |
| `ctrl+p` | command palette: every action by name |
| `?` | this help |
| `q` | quit |
"""


class HelpScreen(ModalScreen[None]):
    """The keys and concepts, read from the top: the box, not its Close button, has focus
    (a focused button at the end would scroll the box to its end)."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="modal-box"):
            yield Markdown(HELP)
            yield Button("Close", id="help-close", variant="primary")

    def on_mount(self) -> None:
        box = self.query_one("#help-box", VerticalScroll)
        box.focus(scroll_visible=False)
        box.scroll_home(animate=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)


class SendScreen(ModalScreen[dict[str, Any] | None]):
    """Compose a notification; returns the keyword arguments of ``SimEngine.send``."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, users: tuple[str, ...], default_target: str | None = None) -> None:
        super().__init__()
        self.users = users
        self.default_target = default_target or (users[0] if users else "")

    def compose(self) -> ComposeResult:
        with Vertical(id="send-box", classes="modal-box"):
            yield Label("Send a notification", classes="modal-title")
            yield Label("to: a user, topic:NAME or device:ID")
            yield Input(self.default_target, id="send-to",
                        placeholder=", ".join(self.users[:6]) or "user")
            with Horizontal(classes="form-row"):
                with Vertical():
                    yield Label("priority")
                    yield Select([("high (10)", "high"), ("normal (5)", "normal")],
                                 value="high", allow_blank=False, id="send-priority")
                with Vertical():
                    yield Label("TTL (blank: default)")
                    yield Input(id="send-ttl", placeholder="e.g. 2m, 0 = now or never")
                with Vertical():
                    yield Label("collapse id")
                    yield Input(id="send-collapse", placeholder="e.g. score")
            yield Label("title")
            yield Input("Hello from the dashboard", id="send-title")
            yield Label("", id="send-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Send", id="send-ok", variant="success")
                yield Button("Cancel", id="send-cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send-ok":
            self._submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        to = self.query_one("#send-to", Input).value.strip()
        ttl_text = self.query_one("#send-ttl", Input).value.strip()
        error = self.query_one("#send-error", Label)
        if not to:
            error.update("say who to send to")
            return
        try:
            ttl = parse_duration(ttl_text) if ttl_text else None
        except Exception as exc:
            error.update(f"TTL: {exc}")
            return
        kwargs: dict[str, Any] = {
            "priority": self.query_one("#send-priority", Select).value,
            "ttl": ttl,
            "collapse": self.query_one("#send-collapse", Input).value.strip() or None,
            "title": self.query_one("#send-title", Input).value or "Hello",
        }
        if to.startswith("topic:"):
            kwargs["topic"] = to.removeprefix("topic:")
        elif to.startswith("device:"):
            kwargs["device"] = to.removeprefix("device:")
        else:
            kwargs["user"] = to
        self.dismiss(kwargs)


class ChoiceScreen(ModalScreen[str | None]):
    """Pick one of a few options (an app to uninstall, a provider to take down)."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, title: str, options: list[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text = title
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-box", classes="modal-box"):
            yield Label(self.title_text, classes="modal-title")
            yield OptionList(*[Option(label, id=value) for label, value in self.options],
                             id="choice-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
