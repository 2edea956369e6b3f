// {{name}}: a Switchyard connector (world `connector` of switchyard:plugin@0.1.0).
//
// Inbound: the host hands every webhook sent to the connector's route to
// `handleWebhook`. This one turns a JSON body into one bus event on the topic set by
// `topic` in the plugin's config (plugin.toml), with {path, body} as its data. A GET
// (a health check or verification ping) is answered with 200 and no items; a body
// that is not JSON is refused (the host answers 400 with the error text).
//
// Outbound: `deliver` is where replies leave Switchyard. This one only writes them to
// the host's log; to send them somewhere, make an HTTP request (wasi:http) and list
// the host in plugin.toml's `permissions.allowed_hosts`.
// WIT names become camelCase here (event-type -> eventType); an `err` result is a throw.

import config from "switchyard:plugin/config@0.1.0";
import log from "switchyard:plugin/log@0.1.0";

const NAME = "{{name}}";
const VERSION = "0.1.0"; // must equal plugin.toml's version (build.sh checks)
const SUMMARY = "{{summary}}";
const EVENT_TYPE = "webhook.received";

// Deeper JSON would overflow the WebAssembly stack inside JSON.parse (a trap, counted
// against the plugin's health, not an exception), and the host refuses event data nested
// deeper than 128 levels. Real webhooks nest far less.
const MAX_DEPTH = 64;

// A \uXXXX escape of a surrogate (not preceded by an escaped backslash).
const LONE_SURROGATE_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/i;

// Used when the plugin's config does not set a key.
const DEFAULTS = { topic: "webhook.{{name}}" };

export const connectorApi = {
  describe() {
    return { name: NAME, version: VERSION, summary: SUMMARY };
  },

  handleWebhook(request) {
    if (request.method.toUpperCase() === "GET") {
      return { status: 200, body: "ok", items: [] };
    }
    let body;
    try {
      const text = decodeUtf8(request.body);
      if (nestingExceeds(text, MAX_DEPTH)) throw `nested deeper than ${MAX_DEPTH} levels`;
      body = JSON.parse(text);
    } catch (err) {
      throw `body is not JSON: ${typeof err === "string" ? err : err.message}`;
    }
    const topic = configString("topic");
    const data = JSON.stringify({ path: request.path, body });
    // JSON.stringify writes half a surrogate pair (from an escape such as "\ud800") as an
    // escape again, which the host refuses as JSON.
    if (LONE_SURROGATE_ESCAPE.test(data)) throw "body is not JSON: it has a lone surrogate escape";
    log.write("info", `webhook ${request.path} -> ${topic}`);
    return {
      status: 202,
      body: JSON.stringify({ accepted: 1, topic }),
      items: [{ tag: "event", val: { topic, eventType: EVENT_TYPE, subject: null, data } }],
    };
  },

  deliver(message) {
    // Replace this with a real delivery (an HTTP request to a chat or issue API).
    log.write("info", `reply for session ${message.session} (target ${message.target}): ${message.text}`);
    return JSON.stringify({ delivered_to: "log", session: message.session });
  },
};

// String setting `key` from the plugin's config, else DEFAULTS.
function configString(key) {
  const raw = config.get(key);
  if (raw === null || raw === undefined) return DEFAULTS[key];
  let value;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw `config \`${key}\` is not valid JSON: ${raw}`;
  }
  if (value === null) return DEFAULTS[key];
  if (typeof value !== "string") throw `config \`${key}\` must be a string, got ${raw}`;
  return value;
}

// Do JSON arrays/objects in `text` nest deeper than `limit`? (Strings are skipped.)
function nestingExceeds(text, limit) {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === "[" || c === "{") {
      if (++depth > limit) return true;
    } else if (c === "]" || c === "}") {
      depth--;
    }
  }
  return false;
}

// UTF-8 bytes (a Uint8Array or an array of numbers) to a string; throws on bad UTF-8.
// QuickJS has no TextDecoder.
function decodeUtf8(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const [len, min] = b < 0x80 ? [1, 0] : b >= 0xc2 && b < 0xe0 ? [2, 0x80] : b >= 0xe0 && b < 0xf0 ? [3, 0x800] : b >= 0xf0 && b < 0xf5 ? [4, 0x10000] : [0, 0];
    if (len === 0 || i + len > bytes.length) throw `not UTF-8 at byte ${i}`;
    let cp = len === 1 ? b : b & (0xff >> (len + 1));
    for (let k = 1; k < len; k++) {
      const c = bytes[i + k];
      if ((c & 0xc0) !== 0x80) throw `not UTF-8 at byte ${i + k}`;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw `not UTF-8 at byte ${i}`;
    out += String.fromCodePoint(cp);
    i += len;
  }
  return out;
}
