// {{name}}: a Switchyard agent adapter (world `agent-adapter` of switchyard:plugin@0.1.0).
//
// The host calls `runTurn` once per turn of a session. The adapter streams its progress
// as turn events (`text-delta` pieces, then `message-complete`) and returns the whole
// reply. Between pieces it polls `aborted()` and stops early, returning what it has so
// far with stop reason "aborted".
//
// This one replies with `prefix` (from the session's adapter config, else the plugin's
// config, else "You said: ") followed by the user's input, word by word.
// Start here: replace `composeReply` with a call to your model (over wasi:http: list its
// host in plugin.toml's `permissions.allowed_hosts` and declare its API key under
// `[secrets]`, read with config.secret).
// WIT names become camelCase here (stop-reason -> stopReason); an `err` result is a throw.

import config from "switchyard:plugin/config@0.1.0";
import turnEvents from "switchyard:plugin/turn-events@0.1.0";

const NAME = "{{name}}";
const VERSION = "0.1.0"; // must equal plugin.toml's version (build.sh checks)
const SUMMARY = "{{summary}}";

// Used when neither the session's config nor the plugin's config set a key.
const DEFAULTS = { prefix: "You said: " };

// A word with the whitespace around it, or whitespace alone.
const PIECE = /\s*\S+\s*|\s+/g;

export const agentApi = {
  describe() {
    return { name: NAME, version: VERSION, summary: SUMMARY };
  },

  // No: the host queues steering text as a follow-up message instead.
  supportsSteering() {
    return false;
  },

  runTurn(request) {
    const prefix = settingString(parseObject("request config", request.config), "prefix");
    const reply = composeReply(prefix, request);

    let text = "";
    for (const piece of reply.match(PIECE) ?? []) {
      if (turnEvents.aborted()) {
        return { text, stopReason: "aborted" };
      }
      turnEvents.emit({ tag: "text-delta", val: piece });
      text += piece;
    }
    turnEvents.emit({ tag: "message-complete", val: text });
    return { text, stopReason: "complete" };
  },
};

// The whole reply to this turn.
function composeReply(prefix, request) {
  return prefix + request.input;
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
  let origin = "the session's config";
  if (value === undefined || value === null) {
    const raw = config.get(key);
    origin = "the plugin's config";
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
