"""webhook-json: a generic JSON webhook connector for Switchyard.

It turns any JSON webhook (GitHub, Gitea, Stripe, a home-grown service...) into
a bus event on the topic ``<topic_prefix>.<event>[.<action>]``, and optionally
into a session message, so that automations can react to services Switchyard
has no dedicated connector for. Everything sender-specific is configuration:

- ``event_header``: header naming the event (default ``x-github-event``);
  when absent, the event comes from the body at JSON pointer ``event_pointer``
  (default ``/type``, as Stripe sends it), else it is ``received``. A string
  ``/action`` in the body is appended.
- ``keep_headers``: headers copied into the event's data.
- ``session_pointer`` / ``text_pointer`` (JSON pointers, RFC 6901): when both
  resolve, the webhook also becomes a message to session
  ``<session_prefix><value>``; with ``mention`` set, only when the text
  mentions it (matched case-insensitively, then removed).

The body must be a JSON object; GitHub/Gitea's form encoding (``payload=<JSON>``) is
unwrapped. The connector has no outbound channel: replies go out through another one.
"""

import json
import re
from urllib.parse import parse_qs

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.connector_api import (
    BusEvent,
    InboundItem_Event,
    InboundItem_Message,
    OutboundMessage,
    SessionMessage,
    WebhookOutcome,
    WebhookRequest,
)
from wit_world.imports import config, log
from wit_world.imports.types import PluginInfo

NAME = "webhook-json"
VERSION = "0.1.0"  # build.sh checks that it equals plugin.toml's version
SUMMARY = "Turns any JSON webhook into a bus event (and optionally a session message)."

EVENT_TYPE = "webhook.received"

# Defaults of the config keys; plugin.toml declares the same ones.
DEFAULTS = {
    "topic_prefix": "webhook",
    "event_header": "x-github-event",
    "event_pointer": "/type",
    "keep_headers": ["x-github-event", "x-github-delivery", "user-agent", "content-type"],
    "session_pointer": "",
    "text_pointer": "",
    "session_prefix": "webhook:",
    "mention": "",
}

# Deeper JSON would exhaust the WebAssembly call stack inside json.loads/dumps: a
# trap, not a RecursionError (measured between 1,000 and 2,000 levels with
# a 512 KiB wasm stack). Real webhooks nest fewer than 20 levels.
MAX_DEPTH = 256

_MISSING = object()
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_TOPIC_CHAR = re.compile(r"[^a-z0-9_-]")
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_JSON_TYPE_NAMES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


class ConnectorApi(exports.ConnectorApi):
    """The exported `connector-api` interface."""

    def describe(self) -> PluginInfo:
        return PluginInfo(name=NAME, version=VERSION, summary=SUMMARY)

    def handle_webhook(self, request: WebhookRequest) -> WebhookOutcome:
        if request.method.upper() == "GET":
            # Verification pings and health checks: nothing to publish.
            return WebhookOutcome(status=200, body="ok", items=[])

        headers = _headers(request.headers)
        body = _parse_body(request.body, headers.get("content-type", ""))

        event = _event_name(headers, body)
        action = body.get("action")
        if not isinstance(action, str):
            action = None
        tokens = [_topic_token(t) for t in _setting_str("topic_prefix").split(".")]
        tokens.append(_topic_token(event))
        if action is not None:
            tokens.append(_topic_token(action))
        topic = ".".join(tokens)

        session = _session_key(body)
        subject = session or _scalar_text(_resolve(body, "/repository/full_name"))

        kept = {h.lower() for h in _setting_str_list("keep_headers")}
        data = {
            "event": event,
            "action": action,
            "headers": {k: v for k, v in headers.items() if k in kept},
            "body": body,
        }
        items = [
            InboundItem_Event(
                BusEvent(
                    topic=topic,
                    event_type=EVENT_TYPE,
                    subject=subject,
                    data=_well_formed(json.dumps(data, ensure_ascii=False)),
                )
            )
        ]
        text = _message_text(body)
        if session is not None and text is not None:
            items.append(InboundItem_Message(SessionMessage(session=session, text=text)))

        log.write(log.Level.INFO, f"{topic}: {len(items)} item(s)")
        return WebhookOutcome(
            status=202,
            body=json.dumps({"accepted": len(items), "topic": topic}),
            items=items,
        )

    def deliver(self, message: OutboundMessage) -> str:
        raise Err(f"{NAME} has no outbound channel; deliver replies with a connector that has one")


def _headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Headers by lower-case name; repeated headers are joined with ', ' (RFC 9110)."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _parse_body(raw: bytes, content_type: str) -> dict:
    """The body as a JSON object, or Err saying why it is not one.

    A form-encoded body with a `payload` field (what GitHub and Gitea send when
    the hook's content type is `application/x-www-form-urlencoded`) is unwrapped.
    """
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        payload = parse_qs(raw.decode("utf-8", "replace")).get("payload")
        if not payload:
            raise Err("form-encoded body has no 'payload' field; send the webhook as application/json")
        raw = payload[0].encode()
    if _nesting_exceeds(raw, MAX_DEPTH):
        raise Err(f"body is nested deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise Err(f"body is not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # not UTF-8/16/32, or NaN/Infinity
        raise Err(f"body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise Err(f"body is JSON but not an object: it is {_JSON_TYPE_NAMES[type(body)]}")
    return body


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Do JSON arrays/objects in `raw` nest deeper than `limit`? (Strings are skipped.)"""
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


def _event_name(headers: dict[str, str], body: dict) -> str:
    """The event: from the configured header, else the configured pointer, else 'received'."""
    header = _setting_str("event_header").lower()
    if header and headers.get(header, "").strip():
        return headers[header].strip()
    return _scalar_text(_at_setting(body, "event_pointer")) or "received"


def _session_key(body: dict) -> str | None:
    """`<session_prefix><value at session_pointer>`, or None when off or unresolved."""
    value = _scalar_text(_at_setting(body, "session_pointer"))
    return _setting_str("session_prefix") + value if value is not None else None


def _message_text(body: dict) -> str | None:
    """The text at text_pointer, filtered by and stripped of the mention; None if none."""
    text = _scalar_text(_at_setting(body, "text_pointer"))
    if text is None:
        return None
    mention = _setting_str("mention")
    if mention:
        pattern = re.compile(re.escape(mention), re.IGNORECASE)
        if not pattern.search(text):
            return None
        text = pattern.sub("", text)
    return text.strip() or None


def _topic_token(text: str) -> str:
    """One topic segment: lower-case, [a-z0-9_-] only (others become '_'), never empty."""
    return _NOT_TOPIC_CHAR.sub("_", text.lower()) or "_"


def _scalar_text(value: object) -> str | None:
    """A string, a number as its decimal text; anything else (incl. missing) is None."""
    if isinstance(value, str):
        return _well_formed(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _well_formed(text: str) -> str:
    """`text` with lone surrogates replaced by '?'.

    JSON can escape them ("\\ud800") but UTF-8 cannot hold them: a string with one
    traps when handed to the host, and JSON escaping it is refused by strict parsers.
    """
    return text.encode("utf-8", "replace").decode("utf-8")


def _at_setting(body: dict, key: str) -> object:
    """The value in the body at the JSON pointer of config `key`, or _MISSING (also when off)."""
    pointer = _setting_str(key)
    if not pointer:
        return _MISSING
    if not pointer.startswith("/"):
        raise Err(f"config {key!r} must be a JSON pointer starting with '/' (or \"\" for off)")
    return _resolve(body, pointer)


def _resolve(document: object, pointer: str) -> object:
    """The value at a non-empty JSON pointer (RFC 6901: '/a/0/b~1c'), or _MISSING."""
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict) and token in document:
            document = document[token]
        elif (
            isinstance(document, list)
            and _ARRAY_INDEX.fullmatch(token)
            and int(token) < len(document)
        ):
            document = document[int(token)]
        else:
            return _MISSING
    return document


def _setting(key: str) -> object:
    """A config value: the host's JSON text parsed, or the default when unset."""
    raw = config.get(key)
    if raw is None:
        return DEFAULTS[key]
    try:
        return json.loads(raw)
    except ValueError:
        raise Err(f"config {key!r} is not valid JSON: {raw!r}") from None


def _setting_str(key: str) -> str:
    value = _setting(key)
    if not isinstance(value, str):
        raise Err(f"config {key!r} must be a string")
    return value


def _setting_str_list(key: str) -> list[str]:
    value = _setting(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Err(f"config {key!r} must be an array of strings")
    return value

