#!/usr/bin/env node
// Time to first token of a follow-up question to a session that already holds a long document,
// against sending the whole document again; the session's size on disk; and the time from a
// restart (after SIGKILL) to the first token of the next question.
//
//   node bench/server-followup.mjs --model M.gguf --text FILE --tokens 65536 [--bin build/longctx]
//        [--repeats 3] [--restart] [--json] [-- extra serve flags, e.g. --memory infllm]
//
// Each time is a non-streamed request for one token (prefill + one decoding step), median of
// --repeats. The document is the first --tokens tokens of --text (through /tokenize).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import http from 'node:http';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const extra = dash >= 0 ? argv.slice(dash + 1) : [];
const args = dash >= 0 ? argv.slice(0, dash) : argv;
const opt = { bin: 'build/longctx', tokens: 65536, repeats: 3, restart: false, json: false };
for (let i = 0; i < args.length; ++i) {
  const k = args[i].replace(/^--/, '');
  if (k === 'restart' || k === 'json') opt[k] = true;
  else opt[k] = args[++i];
}
if (!opt.model || !opt.text) {
  console.error('usage: server-followup.mjs --model M --text FILE [--tokens N] [-- serve flags]');
  process.exit(2);
}
opt.tokens = Number(opt.tokens);
opt.repeats = Number(opt.repeats);

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const dir = mkdtempSync(join(tmpdir(), 'lc-followup-'));
let proc = null;
let base = '';

async function start() {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  proc = spawn(opt.bin, ['serve', '-m', opt.model, '--port', String(port), '--session-dir', dir,
    ...extra], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (;;) {
    try {
      const r = await fetch(`${base}/health`);
      if (r.status === 200) return (performance.now() - t0) / 1000;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 20));
  }
}

// node:http rather than fetch: a long prefill may take longer than fetch's header timeout.
function post(path, body) {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method: 'POST', headers: {
      'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        const j = JSON.parse(text);
        if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode} ${text}`));
        else resolve(j);
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function timed(body) {
  const t0 = performance.now();
  const j = await post('/v1/completions', { max_tokens: 1, temperature: 0, ...body });
  return { s: (performance.now() - t0) / 1000, j };
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

try {
  await start();
  const all = (await post('/tokenize', { content: readFileSync(opt.text, 'utf8'), add_special: true }))
    .tokens;
  if (all.length < opt.tokens) throw new Error(`${opt.text} has only ${all.length} tokens`);
  const doc = all.slice(0, opt.tokens);
  const q = async (text) => (await post('/tokenize', { content: text })).tokens;
  const q1 = await q('\nWhat happened first?'), q2 = await q('\nAnd then?'), q3 = await q('\nWho was there?');

  const full = [], follow = [];
  let sessionBytes = 0, sessionTokens = 0, next0 = null;
  for (let r = 0; r < opt.repeats; ++r) {
    // The whole document again, in a session of its own.
    full.push((await timed({ prompt: [...doc, ...q1], session_id: `cold-${r}` })).s);
    // A session that holds the document and one question and answer: the next question.
    const first = await timed({ prompt: [...doc, ...q1], session_id: `warm-${r}` });
    const ans = (await post('/tokenize', { content: first.j.choices[0].text })).tokens;
    const f = await timed({ prompt: [...doc, ...q1, ...ans, ...q2], session_id: `warm-${r}` });
    follow.push(f.s);
    if (r === 0) {
      const ans2 = (await post('/tokenize', { content: f.j.choices[0].text })).tokens;
      next0 = [...doc, ...q1, ...ans, ...q2, ...ans2, ...q3];
    }
    const info = await (await fetch(`${base}/v1/sessions/warm-${r}`)).json();
    sessionBytes = info.saved ? info.saved.bytes : 0;
    sessionTokens = info.tokens;
    for (const id of [`cold-${r}`]) await fetch(`${base}/v1/sessions/${id}`, { method: 'DELETE' });
  }
  const out = {
    model: opt.model, tokens: opt.tokens, serve_flags: extra.join(' '), repeats: opt.repeats,
    full_prompt_seconds: median(full), followup_seconds: median(follow),
    speedup: median(full) / median(follow),
    session_bytes_on_disk: sessionBytes, session_tokens: sessionTokens,
    bytes_per_1k_tokens: sessionTokens ? Math.round(sessionBytes / sessionTokens * 1000) : 0,
  };
  if (opt.restart) {
    // SIGKILL, start again, ask the next question of the same session.
    const held = (await fetch(`${base}/v1/sessions/warm-0`).then((r) => r.json())).tokens;
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    const t0 = performance.now();
    const up = await start();
    const next = await timed({ prompt: next0, session_id: 'warm-0' });
    const t1 = performance.now();
    out.restart = { server_start_seconds: up, held_tokens: held,
      cached_tokens: next.j.usage.prompt_tokens_details.cached_tokens,
      request_seconds: next.s, restart_to_first_token_seconds: (t1 - t0) / 1000 };
  }
  if (opt.json) console.log(JSON.stringify(out));
  else {
    console.log(`${opt.model} ${opt.tokens} tokens ${extra.join(' ')}`);
    console.log(`  whole document again: ${out.full_prompt_seconds.toFixed(3)} s; follow-up in the session: ` +
      `${out.followup_seconds.toFixed(3)} s (${out.speedup.toFixed(0)}x)`);
    console.log(`  session on disk: ${(sessionBytes / 2 ** 20).toFixed(1)} MiB for ${sessionTokens} tokens ` +
      `(${(out.bytes_per_1k_tokens / 1024).toFixed(1)} KiB per 1K tokens)`);
    if (out.restart)
      console.log(`  restart (SIGKILL, start, load the session, next question): ` +
        `${out.restart.restart_to_first_token_seconds.toFixed(2)} s (server start ` +
        `${out.restart.server_start_seconds.toFixed(2)} s, request ${out.restart.request_seconds.toFixed(2)} s, ` +
        `${out.restart.cached_tokens} tokens not read again)`);
  }
} finally {
  if (proc) proc.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
