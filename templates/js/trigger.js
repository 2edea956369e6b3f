// {{name}}: a Switchyard trigger (world `trigger` of switchyard:plugin@0.1.0).
//
// For every bus event an automation listens to, the host calls `evaluate` with the
// event and the automation's params (the JSON object of the recipe's trigger block).
// This trigger fires when the event's topic starts with `topic_prefix`, taken from the
// params, else from the plugin's config (plugin.toml), else "demo.". When it fires, the
// recipe run gets {topic, event_id, subject, data} as its inputs.
//
// Start here: change `decide` to look at the event's data too.
// WIT names become camelCase here (event-type -> eventType); an `err` result is a throw.

import config from "switchyard:plugin/config@0.1.0";
import log from "switchyard:plugin/log@0.1.0";

const NAME = "{{name}}";
const VERSION = "0.1.0"; // must equal plugin.toml's version (build.sh checks)
const SUMMARY = "{{summary}}";

// Used when neither the params nor the plugin's config set a key.
const DEFAULTS = { topic_prefix: "demo." };

export const triggerApi = {
  describe() {
    return { name: NAME, version: VERSION, summary: SUMMARY };
  },

  evaluate(event, params) {
    const prefix = settingString(parseObject("params", params), "topic_prefix");
    const decision = decide(event, prefix);
    log.write("debug", `${event.topic} ${event.id}: ${decision.fire ? "fire" : "no fire"} (${decision.reason})`);
    return decision;
  },
};

// Fire when the topic starts with `prefix`; hand the event to the recipe.
function decide(event, prefix) {
  if (!event.topic.startsWith(prefix)) {
    return { fire: false, inputs: "{}", reason: `topic \`${event.topic}\` does not start with \`${prefix}\`` };
  }
  let data;
  try {
    data = JSON.parse(event.data);
  } catch (err) {
    throw `event data is not JSON: ${err.message}`;
  }
  const inputs = { topic: event.topic, event_id: event.id, subject: event.subject ?? null, data };
  return { fire: true, inputs: JSON.stringify(inputs), reason: `topic \`${event.topic}\` starts with \`${prefix}\`` };
}

// `text` as a JSON object; blank text or null count as {}.
function parseObject(what, text) {
  if (text.trim() === "") return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw `${what} is not valid JSON: ${err.message}`;
  }
  if (value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw `${what} must be a JSON object, got ${text}`;
  return value;
}

// String setting `key`: from `overrides`, else the plugin's config, else DEFAULTS.
function settingString(overrides, key) {
  let value = overrides[key];
  let origin = "params";
  if (value === undefined || value === null) {
    const raw = config.get(key);
    origin = "config";
    if (raw !== null && raw !== undefined) {
      try {
        value = JSON.parse(raw);
      } catch (err) {
        throw `config \`${key}\` is not valid JSON: ${raw}`;
      }
    }
  }
  if (value === undefined || value === null) return DEFAULTS[key];
  if (typeof value !== "string") throw `\`${key}\` (from ${origin}) must be a string, got ${JSON.stringify(value)}`;
  return value;
}
