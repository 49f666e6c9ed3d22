#!/usr/bin/env node
// Requests/s, generated tokens/s and time to first token with 1, 4 and 8 concurrent clients, each
// holding a session for several turns (streamed chat-style completions).
//
//   node bench/server-load.mjs --model M.gguf [--bin build/longctx] [--clients 1,4,8] [--turns 4]
//        [--max-tokens 32] [--json] [-- extra serve flags]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const extra = dash >= 0 ? argv.slice(dash + 1) : [];
const args = dash >= 0 ? argv.slice(0, dash) : argv;
const opt = { bin: 'build/longctx', clients: '1,4,8', turns: 4, 'max-tokens': 32, json: false };
for (let i = 0; i < args.length; ++i) {
  const k = args[i].replace(/^--/, '');
  if (k === 'json') opt.json = true;
  else opt[k] = args[++i];
}
if (!opt.model) {
  console.error('usage: server-load.mjs --model M [--clients 1,4,8] [-- serve flags]');
  process.exit(2);
}

const port = await new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'lc-load-'));
const maxClients = Math.max(...opt.clients.split(',').map(Number));
const server = spawn(opt.bin, ['serve', '-m', opt.model, '--port', String(port), '--session-dir', dir,
  '--parallel', String(maxClients), ...extra], { stdio: ['ignore', 'ignore', 'inherit'] });
const base = `http://127.0.0.1:${port}`;

// A streamed completion: resolves with the time to the first text and the completion tokens.
function stream(body) {
  const data = JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first = null, buf = '', text = '', usage = null;
    const req = http.request(`${base}/v1/completions`, { method: 'POST', headers: {
      'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c) => {
        buf += c;
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
          const j = JSON.parse(ev.slice(6));
          if (j.usage) usage = j.usage;
          const t = j.choices?.[0]?.text;
          if (t) {
            if (first === null) first = (performance.now() - t0) / 1000;
            text += t;
          }
        }
      });
      res.on('end', () => resolve({ ttft: first ?? (performance.now() - t0) / 1000, text, usage }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const starts = ['Once upon a time, there was a little', 'The dog ran to the', 'Tom and Sue went to the',
  'One day, a big red ball', 'Lily liked to play with her', 'The sun was hot and the',
  'Ben had a small boat. He', 'Mia found a shiny stone in the'];

try {
  for (;;) {
    try {
      if ((await fetch(`${base}/health`)).status === 200) break;
    } catch { /* starting */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  const rows = [];
  for (const n of opt.clients.split(',').map(Number)) {
    const ttfts = [];
    let tokens = 0, requests = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: n }, async (_, c) => {
      let prompt = starts[c % starts.length];
      for (let t = 0; t < Number(opt.turns); ++t) {
        const r = await stream({ prompt, max_tokens: Number(opt['max-tokens']), temperature: 0.8,
          seed: c * 100 + t, session_id: `load-${n}-${c}` });
        ttfts.push(r.ttft);
        tokens += r.usage ? r.usage.completion_tokens : 0;
        ++requests;
        prompt += r.text + ' Then';
      }
    }));
    const s = (performance.now() - t0) / 1000;
    rows.push({ clients: n, requests, seconds: s, requests_per_s: requests / s,
      generated_tokens_per_s: tokens / s, median_ttft_s: median(ttfts) });
  }
  if (opt.json) console.log(JSON.stringify({ model: opt.model, serve_flags: extra.join(' '), rows }));
  else {
    console.log(`${opt.model} ${extra.join(' ')}: ${opt.turns} turns of ${opt['max-tokens']} tokens per client`);
    console.log('| clients | requests/s | generated tokens/s | median time to first token |');
    console.log('|---|---|---|---|');
    for (const r of rows)
      console.log(`| ${r.clients} | ${r.requests_per_s.toFixed(2)} | ${r.generated_tokens_per_s.toFixed(1)} | ` +
        `${(r.median_ttft_s * 1000).toFixed(0)} ms |`);
  }
} finally {
  server.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
}
