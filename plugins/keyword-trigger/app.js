// keyword-trigger: a Switchyard trigger (world `trigger` of switchyard:plugin@0.1.0)
// that fires an automation when a bus event's text mentions given words or phrases,
// e.g. "start the debug recipe when a chat message mentions 'stack trace' or 'panic'".
//
// Each setting comes from the automation's params, else the plugin config, else a default:
//   keywords        words or phrases to look for (required); a space matches any whitespace
//   fields          RFC 6901 JSON pointers into the event data to search; [] = all of it
//   match           "any" (default) or "all" of the keywords must be found
//   case_sensitive  false
//   whole_word      true: "panic" matches "Panic!" but not "panicky"
//   topics          topic patterns, "*" one token and ">" the rest; [] = every topic
//
// When it fires, the recipe gets {matched, topic, event_id, subject, text}: the keywords
// found (in the order of `keywords`) and the first string value that mentions one.

import config from "switchyard:plugin/config@0.1.0";
import log from "switchyard:plugin/log@0.1.0";

const VERSION = "0.1.0"; // must equal plugin.toml's version (build.sh checks)
const MAX_TEXT = 2000;
const STARTS_WITH_WORD_CHAR = /^[\p{L}\p{M}\p{N}_]/u;
const ENDS_WITH_WORD_CHAR = /[\p{L}\p{M}\p{N}_]$/u;

export const triggerApi = {
  describe() {
    return {
      name: "keyword-trigger",
      version: VERSION,
      summary: "Fires when an event's text mentions one of the configured keywords or phrases.",
    };
  },

  evaluate(event, params) {
    const where = `${event.topic} ${event.id}`;
    try {
      const decision = decide(event, readSettings(params));
      log.write("debug", `${where}: ${decision.fire ? "fire" : "no fire"} (${decision.reason})`);
      return decision;
    } catch (err) {
      const message = typeof err === "string" ? err : `internal error: ${err}`;
      log.write("debug", `${where}: error (${message})`);
      throw message;
    }
  },
};

// ---- settings ----

function readSettings(paramsText) {
  let params;
  try {
    params = JSON.parse(paramsText) ?? {};
  } catch (err) {
    throw `params is not JSON: ${err.message}`;
  }
  if (typeof params !== "object" || Array.isArray(params)) {
    throw `params must be a JSON object, got ${show(params)}`;
  }

  const keywords = [...new Set(stringList(params, "keywords").map((k) => k.trim()))];
  if (keywords.includes("")) throw "`keywords` must not contain blank entries";
  if (keywords.length === 0) {
    throw "keyword-trigger needs `keywords`: a list of words or phrases to look for";
  }
  const caseSensitive = boolean(params, "case_sensitive", false);
  const wholeWord = boolean(params, "whole_word", true);
  return {
    keywords,
    matchers: keywords.map((k) => keywordMatcher(k, caseSensitive, wholeWord)),
    fields: stringList(params, "fields").map((p) => ({ pointer: p, tokens: parsePointer(p) })),
    matchAll: oneOf(params, "match", ["any", "all"], "any") === "all",
    topics: stringList(params, "topics").map(checkTopicPattern),
  };
}

// A setting's value: params wins, then the plugin's config, then the default.
function lookup(params, key, fallback) {
  if (params[key] !== undefined && params[key] !== null) {
    return { value: params[key], from: "params" };
  }
  const text = config.get(key);
  if (text !== null && text !== undefined) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw `config \`${key}\` is not JSON: ${err.message}`;
    }
    if (value !== null) return { value, from: "config" };
  }
  return { value: fallback, from: "default" };
}

function stringList(params, key) {
  const { value, from } = lookup(params, key, []);
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw `\`${key}\` (from ${from}) must be a list of strings, got ${show(value)}`;
  }
  return value;
}

function boolean(params, key, fallback) {
  const { value, from } = lookup(params, key, fallback);
  if (typeof value !== "boolean") {
    throw `\`${key}\` (from ${from}) must be true or false, got ${show(value)}`;
  }
  return value;
}

function oneOf(params, key, choices, fallback) {
  const { value, from } = lookup(params, key, fallback);
  if (!choices.includes(value)) {
    const expected = choices.map((c) => JSON.stringify(c)).join(" or ");
    throw `\`${key}\` (from ${from}) must be ${expected}, got ${show(value)}`;
  }
  return value;
}

function show(value) {
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

// ---- matching ----

// How to find one keyword: a regular expression in which a space matches any run of
// whitespace and, with whole_word, whether the hit may not touch a letter, digit or
// underscore at its start or end (only where the keyword itself starts or ends with one,
// so "C++" and "#urgent" still work). Those tests stay out of the expression: QuickJS
// takes up to a millisecond to compile a \p{...} class under the `i` flag.
function keywordMatcher(keyword, caseSensitive, wholeWord) {
  return {
    pattern: new RegExp(keyword.split(/\s+/).map(escapeRegExp).join("\\s+"), caseSensitive ? "gu" : "giu"),
    checkStart: wholeWord && STARTS_WITH_WORD_CHAR.test(keyword),
    checkEnd: wholeWord && ENDS_WITH_WORD_CHAR.test(keyword),
  };
}

function mentions(text, { pattern, checkStart, checkEnd }) {
  pattern.lastIndex = 0;
  for (let hit; (hit = pattern.exec(text)) !== null; pattern.lastIndex = hit.index + 1) {
    const end = hit.index + hit[0].length;
    if (checkStart && ENDS_WITH_WORD_CHAR.test(text.slice(Math.max(0, hit.index - 2), hit.index))) continue;
    if (checkEnd && STARTS_WITH_WORD_CHAR.test(text.slice(end, end + 2))) continue;
    return true;
  }
  return false;
}

function escapeRegExp(text) {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
}

function decide(event, settings) {
  if (settings.topics.length > 0 && !settings.topics.some((p) => topicMatches(p, event.topic))) {
    return noFire(`topic ${event.topic} not in [${settings.topics.join(", ")}]`);
  }

  let data;
  try {
    data = JSON.parse(event.data);
  } catch (err) {
    throw `event data is not JSON: ${err.message}`;
  }

  const { keywords, matchers } = settings;
  const foundAt = new Array(keywords.length).fill(null); // pointer of the first hit, per keyword
  let text = null; // the first string value that mentions a keyword
  let remaining = keywords.length;
  const roots = settings.fields.length > 0
    ? settings.fields.map((f) => ({ pointer: f.pointer, value: resolvePointer(data, f.tokens) }))
    : [{ pointer: "", value: data }];
  scan: for (const root of roots) {
    for (const string of stringsIn(root.value, root.pointer)) {
      for (let i = 0; i < keywords.length; i++) {
        if (foundAt[i] === null && mentions(string.value, matchers[i])) {
          foundAt[i] = string.pointer;
          text ??= string.value;
          if (--remaining === 0) break scan;
        }
      }
    }
  }

  const matched = keywords.filter((_, i) => foundAt[i] !== null);
  const missing = keywords.filter((_, i) => foundAt[i] === null);
  if (matched.length === 0) return noFire("no keyword found");
  const found = keywords
    .flatMap((k, i) => (foundAt[i] === null ? [] : [`${JSON.stringify(k)} in ${place(foundAt[i])}`]))
    .join(", ");
  if (settings.matchAll && missing.length > 0) {
    return noFire(`missing ${missing.map((k) => JSON.stringify(k)).join(", ")} (matched ${found})`);
  }
  return {
    fire: true,
    inputs: JSON.stringify({
      matched,
      topic: event.topic,
      event_id: event.id,
      subject: event.subject ?? null,
      text: truncate(text, MAX_TEXT),
    }),
    reason: `matched ${found}`,
  };
}

function noFire(reason) {
  return { fire: false, inputs: "{}", reason };
}

function place(pointer) {
  return pointer === "" ? "the event data" : pointer;
}

// Cut to at most `max` UTF-16 units without splitting a surrogate pair.
function truncate(text, max) {
  if (text.length <= max) return text;
  const cut = text.charCodeAt(max - 1) >= 0xd800 && text.charCodeAt(max - 1) <= 0xdbff ? max - 1 : max;
  return text.slice(0, cut);
}

// Every string value under `value`, in document order, with its JSON pointer.
function* stringsIn(value, pointer) {
  const stack = [{ value, pointer }];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node.value === "string") {
      yield node;
    } else if (node.value !== null && typeof node.value === "object") {
      const children = Array.isArray(node.value)
        ? node.value.map((v, i) => ({ value: v, pointer: `${node.pointer}/${i}` }))
        : Object.keys(node.value).map((k) => ({ value: node.value[k], pointer: `${node.pointer}/${escapeToken(k)}` }));
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
    }
  }
}

// ---- JSON pointers (RFC 6901) ----

function parsePointer(pointer) {
  if (pointer === "") return [];
  if (!pointer.startsWith("/") || /~(?![01])/.test(pointer)) {
    throw `\`fields\` entry ${JSON.stringify(pointer)} is not a JSON pointer (like "/message/text")`;
  }
  return pointer.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function escapeToken(token) {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

// The value the pointer's tokens lead to, or undefined when there is none.
function resolvePointer(data, tokens) {
  let node = data;
  for (const token of tokens) {
    if (Array.isArray(node)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      node = node[Number(token)];
    } else if (node !== null && typeof node === "object" && Object.prototype.hasOwnProperty.call(node, token)) {
      node = node[token];
    } else {
      return undefined;
    }
  }
  return node;
}

// ---- topics (NATS-style wildcards) ----

function checkTopicPattern(pattern) {
  const tokens = pattern.split(".");
  if (tokens.some((t) => t === "") || tokens.slice(0, -1).includes(">")) {
    throw `\`topics\` entry ${JSON.stringify(pattern)} is not a topic pattern (dot-separated tokens; "*" is one token, ">" only last)`;
  }
  return pattern;
}

function topicMatches(pattern, topic) {
  const want = pattern.split(".");
  const have = topic.split(".");
  for (let i = 0; i < want.length; i++) {
    if (want[i] === ">") return have.length > i;
    if (i >= have.length || (want[i] !== "*" && want[i] !== have[i])) return false;
  }
  return want.length === have.length;
}
