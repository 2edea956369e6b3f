"""{{name}}: a Switchyard trigger (world ``trigger`` of switchyard:plugin@0.1.0).

For every bus event an automation listens to, the host calls ``evaluate`` with the
event and the automation's params (the JSON object of the recipe's trigger block).
This trigger fires when the event's topic starts with ``topic_prefix``, taken from
the params, else from the plugin's config (plugin.toml), else ``"demo."``. When it
fires, the recipe run gets ``{topic, event_id, subject, data}`` as its inputs.

Start here: change ``decide`` to look at the event's data too.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.trigger_api import Decision
from wit_world.imports import config, log
from wit_world.imports.types import Event, PluginInfo

NAME = "{{name}}"
VERSION = "0.1.0"  # build.sh checks that it equals plugin.toml's version
SUMMARY = "{{summary}}"

# Used when neither the params nor the plugin's config set a key.
DEFAULTS = {"topic_prefix": "demo."}


class TriggerApi(exports.TriggerApi):
    """The exported ``trigger-api`` interface. Raise ``Err(text)`` to fail a call."""

    def describe(self) -> PluginInfo:
        return PluginInfo(name=NAME, version=VERSION, summary=SUMMARY)

    def evaluate(self, event: Event, params: str) -> Decision:
        prefix = _setting_str(_parse_object("params", params), "topic_prefix")
        decision = decide(event, prefix)
        verdict = "fire" if decision.fire else "no fire"
        log.write(log.Level.DEBUG, f"{event.topic} {event.id}: {verdict} ({decision.reason})")
        return decision


def decide(event: Event, prefix: str) -> Decision:
    """Fire when the topic starts with ``prefix``; hand the event to the recipe."""
    if not event.topic.startswith(prefix):
        return Decision(
            fire=False,
            inputs="{}",
            reason=f"topic `{event.topic}` does not start with `{prefix}`",
        )
    try:
        data = json.loads(event.data)
    except ValueError as e:
        raise Err(f"event data is not JSON: {e}") from None
    inputs = {"topic": event.topic, "event_id": event.id, "subject": event.subject, "data": data}
    return Decision(
        fire=True,
        inputs=json.dumps(inputs),
        reason=f"topic `{event.topic}` starts with `{prefix}`",
    )


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
    value, origin = overrides.get(key), "params"
    if value is None:
        raw, origin = config.get(key), "config"
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
