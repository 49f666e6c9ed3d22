// `longctx serve` against the official openai npm client: chat and completions, streamed and not.
//   node openai_client.mjs LONGCTX_BINARY MODEL.gguf
// Starts the server on a free loopback port with an API key, runs the checks, stops it; exits 1
// on the first failed check.
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import OpenAI from "openai";

const [binary, modelPath] = process.argv.slice(2);
if (!binary || !modelPath) {
  console.error("usage: node openai_client.mjs LONGCTX_BINARY MODEL.gguf");
  process.exit(2);
}

const apiKey = "node-test-key";
const server = spawn(
  binary,
  ["serve", "-m", modelPath, "--port", "0", "--api-key", apiKey, "--chat-template", "chatml"],
  { stdio: ["ignore", "inherit", "pipe"] },
);

function serverPort() {
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => reject(new Error("the server did not start: " + err)), 30000);
    server.stderr.on("data", (d) => {
      err += d.toString();
      const m = err.match(/on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    server.on("exit", (code) => reject(new Error(`the server exited (${code}): ${err}`)));
  });
}

async function collect(stream, pick) {
  let text = "";
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    text += pick(chunk.choices[0]) ?? "";
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  return { text, finish, usage };
}

async function main() {
  const port = await serverPort();
  const client = new OpenAI({ apiKey, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });

  const models = await client.models.list();
  const model = models.data[0].id;
  assert.equal(model, modelPath.split("/").pop());

  // Completions.
  const params = { model, prompt: "Once upon a time", max_tokens: 20, temperature: 0 };
  const c = await client.completions.create(params);
  assert.equal(c.object, "text_completion");
  assert.equal(c.choices[0].finish_reason, "length");
  assert.ok(c.choices[0].text.length > 0);
  assert.equal(c.usage.completion_tokens, 20);
  assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + 20);
  const cs = await collect(
    await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }),
    (ch) => ch.text,
  );
  assert.equal(cs.text, c.choices[0].text);
  assert.equal(cs.finish, "length");
  assert.equal(cs.usage.completion_tokens, 20);

  // Chat completions.
  const chatParams = {
    model,
    messages: [
      { role: "system", content: "You tell stories." },
      { role: "user", content: "Tell me about a cat." },
    ],
    max_tokens: 16,
    temperature: 0,
  };
  const r = await client.chat.completions.create(chatParams);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  const rs = await collect(
    await client.chat.completions.create({ ...chatParams, stream: true }),
    (ch) => ch.delta.content,
  );
  assert.equal(rs.text, r.choices[0].message.content);
  assert.equal(rs.finish, r.choices[0].finish_reason);

  // Errors come back as the client's error classes.
  await assert.rejects(client.completions.create({ ...params, n: 2 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, "n");
    return true;
  });
  await assert.rejects(client.completions.create({ ...params, model: "nope" }), OpenAI.NotFoundError);
  const unauthorised = new OpenAI({ apiKey: "wrong", baseURL: client.baseURL, maxRetries: 0 });
  await assert.rejects(unauthorised.completions.create(params), OpenAI.AuthenticationError);
  console.log("openai client: completions and chat, streamed and not: ok");
}

main()
  .then(() => {
    server.kill();
    process.exit(0);
  })
  .catch((e) => {
    console.error(e);
    server.kill();
    process.exit(1);
  });
