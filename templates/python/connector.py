"""{{name}}: a Switchyard connector (world ``connector`` of switchyard:plugin@0.1.0).

Inbound: the host hands every webhook sent to the connector's route to
``handle_webhook``. This one turns a JSON body into one bus event on the topic set by
``topic`` in the plugin's config (plugin.toml), with ``{path, body}`` as its data.
A GET (a health check or verification ping) is answered with 200 and no items; a
body that is not JSON is refused (the host answers 400 with the error text).

Outbound: ``deliver`` is where replies leave Switchyard. This one only writes them to
the host's log; to send them somewhere, make an HTTP request (wasi:http) and list the
host in plugin.toml's ``permissions.allowed_hosts``.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.connector_api import (
    BusEvent,
    InboundItem_Event,
    OutboundMessage,
    WebhookOutcome,
    WebhookRequest,
)
from wit_world.imports import config, log
from wit_world.imports.types import PluginInfo

NAME = "{{name}}"
VERSION = "0.1.0"  # build.sh checks that it equals plugin.toml's version
SUMMARY = "{{summary}}"
EVENT_TYPE = "webhook.received"

# Deeper JSON would exhaust the WebAssembly stack inside json.loads (a trap, counted
# against the plugin's health, not an exception), and the host refuses event data nested
# deeper than 128 levels. Real webhooks nest far less.
MAX_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")

# Used when the plugin's config does not set a key.
DEFAULTS = {"topic": "webhook.{{name}}"}


class ConnectorApi(exports.ConnectorApi):
    """The exported ``connector-api`` interface. Raise ``Err(text)`` to fail a call."""

    def describe(self) -> PluginInfo:
        return PluginInfo(name=NAME, version=VERSION, summary=SUMMARY)

    def handle_webhook(self, request: WebhookRequest) -> WebhookOutcome:
        if request.method.upper() == "GET":
            return WebhookOutcome(status=200, body="ok", items=[])
        if _nesting_exceeds(request.body, MAX_DEPTH):
            raise Err(f"body is nested deeper than {MAX_DEPTH} levels")
        try:
            body = json.loads(request.body, parse_constant=_reject_constant)
        except ValueError as e:  # also bodies that are not UTF-8
            raise Err(f"body is not JSON: {e}") from None
        topic = _config_str("topic")
        data = json.dumps({"path": request.path, "body": body}, ensure_ascii=False)
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:  # from an escape such as "\ud800" (half a surrogate pair)
            raise Err("body is not JSON: it has a lone surrogate escape") from None
        log.write(log.Level.INFO, f"webhook {request.path} -> {topic}")
        event = BusEvent(topic=topic, event_type=EVENT_TYPE, subject=None, data=data)
        return WebhookOutcome(
            status=202,
            body=json.dumps({"accepted": 1, "topic": topic}),
            items=[InboundItem_Event(event)],
        )

    def deliver(self, message: OutboundMessage) -> str:
        # Replace this with a real delivery (an HTTP request to a chat or issue API).
        log.write(
            log.Level.INFO,
            f"reply for session {message.session} (target {message.target}): {message.text}",
        )
        return json.dumps({"delivered_to": "log", "session": message.session})


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Do JSON arrays/objects in ``raw`` nest deeper than ``limit``? (Strings are skipped.)"""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET):
        depth += 1 if bracket in b"[{" else -1
        if depth > limit:
            return True
    return False


def _reject_constant(name: str) -> None:
    """Python's json accepts NaN and Infinity; JSON (and the host) does not."""
    raise ValueError(f"{name} is not a JSON value")


def _config_str(key: str) -> str:
    """String setting ``key`` from the plugin's config, else DEFAULTS."""
    raw = config.get(key)
    if raw is None:
        return DEFAULTS[key]
    try:
        value = json.loads(raw)
    except ValueError:
        raise Err(f"config `{key}` is not valid JSON: {raw}") from None
    if value is None:
        return DEFAULTS[key]
    if not isinstance(value, str):
        raise Err(f"config `{key}` must be a string, got {raw}")
    return value
