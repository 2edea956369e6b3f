"""{{name}}: a Switchyard agent adapter (world ``agent-adapter`` of switchyard:plugin@0.1.0).

The host calls ``run_turn`` once per turn of a session. The adapter streams its
progress as turn events (``text-delta`` pieces, then ``message-complete``) and returns
the whole reply. Between pieces it polls ``aborted()`` and stops early, returning what
it has so far with stop reason ``aborted``.

This one replies with ``prefix`` (from the session's adapter config, else the plugin's
config, else ``"You said: "``) followed by the user's input, word by word.
Start here: replace ``compose_reply`` with a call to your model (over wasi:http: list
its host in plugin.toml's ``permissions.allowed_hosts`` and declare its API key under
``[secrets]``, read with ``config.secret``).
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, turn_events
from wit_world.imports.types import PluginInfo

from wit_world.imports.agent_types import StopReason, TurnRequest, TurnResult

NAME = "{{name}}"
VERSION = "0.1.0"  # build.sh checks that it equals plugin.toml's version
SUMMARY = "{{summary}}"

# Used when neither the session's config nor the plugin's config set a key.
DEFAULTS = {"prefix": "You said: "}

# A word with the whitespace around it, or whitespace alone.
_PIECE = re.compile(r"\s*\S+\s*|\s+")


class AgentApi(exports.AgentApi):
    """The exported ``agent-api`` interface. Raise ``Err(text)`` to fail a call."""

    def describe(self) -> PluginInfo:
        return PluginInfo(name=NAME, version=VERSION, summary=SUMMARY)

    def supports_steering(self) -> bool:
        # No: the host queues steering text as a follow-up message instead.
        return False

    def run_turn(self, request: TurnRequest) -> TurnResult:
        prefix = _setting_str(_parse_object("request config", request.config), "prefix")
        reply = compose_reply(prefix, request)

        text = ""
        for piece in _PIECE.findall(reply):
            if turn_events.aborted():
                return TurnResult(text=text, stop_reason=StopReason.ABORTED)
            turn_events.emit(turn_events.TurnEvent_TextDelta(piece))
            text += piece
        turn_events.emit(turn_events.TurnEvent_MessageComplete(text))
        return TurnResult(text=text, stop_reason=StopReason.COMPLETE)


def compose_reply(prefix: str, request: TurnRequest) -> str:
    """The whole reply to this turn."""
    return prefix + request.input


def _parse_object(what: str, text: str) -> dict:
    """``text`` as a JSON object; blank text or ``null`` count as ``{}``."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise Err(f"{what} is not valid JSON: {e}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Err(f"{what} must be a JSON object, got {text}")
    return value


def _setting_str(overrides: dict, key: str) -> str:
    """String setting ``key``: from ``overrides``, else the plugin's config, else DEFAULTS."""
    value, origin = overrides.get(key), "the session's config"
    if value is None:
        raw, origin = config.get(key), "the plugin's config"
        if raw is not None:
            try:
                value = json.loads(raw)
            except ValueError:
                raise Err(f"config `{key}` is not valid JSON: {raw}") from None
    if value is None:
        return DEFAULTS[key]
    if not isinstance(value, str):
        raise Err(f"`{key}` (from {origin}) must be a string, got {json.dumps(value)}")
    return value
