// Reads a Switchyard chat stream the way a `useChat` front end does: through the AI
// SDK's own DefaultChatTransport (which validates every chunk against the SDK's
// uiMessageChunkSchema) and readUIMessageStream (which assembles the UIMessage).
// The SDK's schemas tolerate extra keys; this script does not: a chunk carrying a
// field the schema does not define fails the run.
//
// Usage: SWITCHYARD_TOKEN=… node read-chat-stream.mjs URL TEXT
//        → prints {"chunks": [...], "message": {...}}
import { DefaultChatTransport, readUIMessageStream } from "ai";

const ALLOWED = {
  start: ["messageId", "messageMetadata"],
  "start-step": [],
  "finish-step": [],
  "text-start": ["id", "providerMetadata"],
  "text-delta": ["id", "delta", "providerMetadata"],
  "text-end": ["id", "providerMetadata", "citations"],
  "reasoning-start": ["id", "providerMetadata"],
  "reasoning-delta": ["id", "delta", "providerMetadata"],
  "reasoning-end": ["id", "providerMetadata"],
  "tool-input-start": ["toolCallId", "toolName", "providerExecuted", "providerMetadata", "dynamic", "title"],
  "tool-input-delta": ["toolCallId", "inputTextDelta"],
  "tool-input-available": ["toolCallId", "toolName", "input", "providerExecuted", "providerMetadata", "dynamic", "title"],
  "tool-output-available": ["toolCallId", "output", "providerExecuted", "providerMetadata", "dynamic", "preliminary"],
  "tool-output-error": ["toolCallId", "errorText", "providerExecuted", "providerMetadata", "dynamic"],
  error: ["errorText"],
  abort: ["reason"],
  finish: ["finishReason", "messageMetadata"],
};

const [url, text] = process.argv.slice(2);
const transport = new DefaultChatTransport({
  api: url,
  headers: { Authorization: `Bearer ${process.env.SWITCHYARD_TOKEN}` },
});
const stream = await transport.sendMessages({
  trigger: "submit-message",
  chatId: "chat-1",
  messageId: undefined,
  messages: [{ id: "m1", role: "user", parts: [{ type: "text", text }] }],
  abortSignal: undefined,
});

const chunks = [];
const checked = stream.pipeThrough(
  new TransformStream({
    transform(chunk, controller) {
      const allowed = ALLOWED[chunk.type];
      if (!allowed) throw new Error(`unexpected chunk type ${chunk.type}`);
      for (const key of Object.keys(chunk)) {
        if (key !== "type" && !allowed.includes(key)) {
          throw new Error(`chunk ${chunk.type} has a field the SDK schema does not define: ${key}`);
        }
      }
      chunks.push(chunk);
      controller.enqueue(chunk);
    },
  }),
);

let message;
for await (const m of readUIMessageStream({ stream: checked, terminateOnError: true })) {
  message = m;
}
console.log(JSON.stringify({ chunks, message }));
