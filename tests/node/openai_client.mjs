// `longctx serve` against the official openai npm client: chat and completions, streamed and not;
// greedy text equal to `longctx generate`; logprobs; 32 concurrent clients each holding a session
// for several turns (the same text as one client after another); a session continued after the
// server is killed with SIGKILL and started again.
//   node openai_client.mjs LONGCTX_BINARY MODEL.gguf
// Starts the server on a free loopback port with an API key, runs the checks, stops it; exits 1
// on the first failed check.
import { execFileSync, spawn } from "node:child_process";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";

const [binary, modelPath] = process.argv.slice(2);
if (!binary || !modelPath) {
  console.error("usage: node openai_client.mjs LONGCTX_BINARY MODEL.gguf");
  process.exit(2);
}

const apiKey = "node-test-key";
const sessionDir = mkdtempSync(join(tmpdir(), "longctx-node-"));
let server = start();

function start() {
  return spawn(
    binary,
    ["serve", "-m", modelPath, "--port", "0", "--api-key", apiKey, "--chat-template", "chatml",
      "--parallel", "8", "--session-dir", sessionDir],
    { stdio: ["ignore", "inherit", "pipe"] },
  );
}

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

  // Greedy text equals `longctx generate` on the same prompt.
  const cli = JSON.parse(execFileSync(binary, ["generate", "-m", modelPath, "-p", "Once upon a time",
    "-n", "20", "--temp", "0", "--json"], { stdio: ["ignore", "pipe", "ignore"] }).toString());
  assert.equal(c.choices[0].text, cli.text);
  assert.equal(c.usage.prompt_tokens, cli.n_prompt);
  assert.equal(c.usage.completion_tokens, cli.n_generated);
  // Token for token: with logprobs the completion lists its tokens, which spell generate's text.
  const withLp = await client.completions.create({ ...params, logprobs: 0 });
  assert.equal(withLp.choices[0].logprobs.tokens.length, cli.tokens.length);
  assert.equal(withLp.choices[0].logprobs.tokens.join(""), cli.text);

  // A stop string: the text ends before its first occurrence, finish_reason "stop".
  const word = cli.text.trim().split(/\s+/)[2];
  const st = await client.completions.create({ ...params, stop: [word, "zzzz-not-there"] });
  assert.equal(st.choices[0].finish_reason, "stop");
  assert.equal(st.choices[0].text, cli.text.slice(0, cli.text.indexOf(word)));

  // Log-probabilities in the client's types.
  const lp = await client.chat.completions.create({ ...chatParams, logprobs: true, top_logprobs: 2 });
  assert.equal(lp.choices[0].logprobs.content.length, lp.usage.completion_tokens);
  assert.equal(lp.choices[0].logprobs.content[0].top_logprobs.length, 2);

  // 32 clients, each a session of three turns: the same answers as one client after another.
  const turns = async (cl, i, tag) => {
    const out = [];
    let prompt = `Once upon a time there was a child number ${i}.`;
    for (let t = 0; t < 3; ++t) {
      const r = await cl.completions.create({ model, prompt, max_tokens: 8, temperature: 0,
        session_id: `${tag}-${i}` });
      if (t > 0) assert.ok(r.usage.prompt_tokens_details.cached_tokens > 5, "the session was reused");
      out.push(r.choices[0].text);
      prompt += r.choices[0].text + " Then";
    }
    return out;
  };
  const seq = [];
  for (let i = 0; i < 32; ++i) seq.push(await turns(client, i, "seq"));
  const par = await Promise.all(Array.from({ length: 32 }, (_, i) => turns(client, i, "par")));
  assert.deepEqual(par, seq);
  console.log("openai client: 32 concurrent sessions of three turns: ok");

  // Killed with SIGKILL mid-conversation and started again: the session continues as if the
  // server had never stopped.
  let prompt = "Once upon a time, a little bird";
  const want = [];
  for (let t = 0; t < 3; ++t) {
    const r = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0,
      session_id: "durable-ref" });
    want.push(r.choices[0].text);
    prompt += r.choices[0].text + " Then";
  }
  prompt = "Once upon a time, a little bird";
  for (let t = 0; t < 2; ++t) {
    const r = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0,
      session_id: "durable" });
    prompt += r.choices[0].text + " Then";
  }
  server.kill("SIGKILL");
  await new Promise((r) => server.once("exit", r));
  server = start();
  const port2 = await serverPort();
  const client2 = new OpenAI({ apiKey, baseURL: `http://127.0.0.1:${port2}/v1`, maxRetries: 0 });
  const r3 = await client2.completions.create({ model, prompt, max_tokens: 8, temperature: 0,
    session_id: "durable" });
  assert.equal(r3.choices[0].text, want[2]);
  assert.ok(r3.usage.prompt_tokens_details.cached_tokens > 10, "the session came back from disk");
  console.log("openai client: a session continued after SIGKILL and restart: ok");
}

main()
  .then(() => {
    server.kill();
    rmSync(sessionDir, { recursive: true, force: true });
    process.exit(0);
  })
  .catch((e) => {
    console.error(e);
    server.kill();
    rmSync(sessionDir, { recursive: true, force: true });
    process.exit(1);
  });
