#!/usr/bin/env node
// Several `longctx serve` replicas behind nginx, sharing sessions in Redis (docs/deploy.md).
//
//   node scripts/cluster.mjs demo LONGCTX_BINARY MODEL
//       a conversation through nginx; the replica holding it is killed; the next turn is
//       answered by another from the store
//   node scripts/cluster.mjs test LONGCTX_BINARY MODEL
//       16 concurrent clients; a replica killed (SIGKILL) while it answers streamed requests and
//       restarted; continuations compared with one server's; Redis killed while a long prefill
//       is saved; a corrupt object
//   node scripts/cluster.mjs measure LONGCTX_BINARY MODEL TEXT
//       latency, requests/s and time to first token with one replica (direct and through nginx)
//       and three through nginx; a 64K-token session: a follow-up turn on its replica and a
//       takeover after its replica is killed, with the Redis traffic of each
// Redis runs with its append-only file fsynced at every write (CLUSTER_APPENDFSYNC=everysec
// changes that). Everything runs on loopback ports in a throw-away folder and is stopped at the end. Exits 1 on a
// failed check, 77 when redis-server or nginx is missing.
import {spawn, execFileSync} from 'node:child_process';
import assert from 'node:assert/strict';
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import net from 'node:net';

const [mode, bin, model] = process.argv.slice(2);
if (!['demo', 'test', 'measure', 'takeover'].includes(mode) || !bin || !model ||
    (mode === 'takeover' && !process.argv.includes('--'))) {
  console.error(
      'usage: cluster.mjs demo|test|measure LONGCTX_BINARY MODEL [TEXT]\n' +
      '       cluster.mjs takeover LONGCTX_BINARY MODEL TEXT TOKENS -- SERVE_FLAGS...');
  process.exit(2);
}
const which = (cmd) => {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/bin', '/usr/local/sbin']) {
    try {
      execFileSync('test', ['-x', `${d}/${cmd}`]);
      return `${d}/${cmd}`;
    } catch { /* next */
    }
  }
  return null;
};
const redisBin = which('redis-server'), nginxBin = which('nginx');
if (!redisBin || !nginxBin) {
  console.log(
      'cluster: redis-server or nginx is not installed (make setup installs them); skipped');
  process.exit(77);
}
const require = createRequire(new URL('../tests/node/package.json', import.meta.url));
const OpenAI = require('openai').default ?? require('openai');

const work = mkdtempSync(join(tmpdir(), 'longctx-cluster-'));
chmodSync(work, 0o755);
const children = new Set();
const log = (...a) => console.log(...a);

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(url, ok = (s) => s === 200) {
  for (let i = 0; i < 600; ++i) {
    try {
      if (ok((await fetch(url)).status)) return;
    } catch { /* not up */
    }
    await sleep(50);
  }
  throw new Error(`${url} did not come up`);
}
// Functions called with every line a child writes on stderr.
const watchers = new Set();
function start(cmd, args, name, env = process.env) {
  const p = spawn(cmd, args, {stdio: ['ignore', 'ignore', 'pipe'], env});
  let partial = '';
  p.stderr.on('data', (d) => {
    if (process.env.CLUSTER_VERBOSE) process.stderr.write(`[${name}] ${d}`);
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop();
    for (const l of lines)
      for (const w of watchers) w(l, name);
  });
  p.name = name;
  children.add(p);
  p.on('exit', () => children.delete(p));
  return p;
}
async function stop(p, sig = 'SIGTERM') {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill(sig);
  await done;
}

// A few Redis commands over RESP (the corrupt-object case writes into the store directly).
function redis(port, ...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.on(
        'connect',
        () => s.write(
            `*${args.length}\r\n` +
            args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.endsWith('\r\n')) {
        s.end();
        resolve(buf);
      }
    });
    s.on('error', reject);
  });
}

const redisPort = await freePort();
const replicaPorts = [await freePort(), await freePort(), await freePort()];
const nginxPort = await freePort();
const store = `redis://127.0.0.1:${redisPort}/0`;
const serveFlags = mode === 'takeover' ? process.argv.slice(process.argv.indexOf('--') + 1) : [
  '--memory', 'infllm', '--ctx-train', '512', '--n-local', '64', '--n-init', '8', '--block-size',
  '16', '--exec-block', '32', '--topk', '4', '--parallel', '8', '--threads', '1'
];

let redisProc = null;
async function startRedis() {
  mkdirSync(join(work, 'redis'), {recursive: true});
  redisProc = start(
      redisBin,
      [
        '--port', String(redisPort), '--bind', '127.0.0.1', '--dir', join(work, 'redis'),
        '--appendonly', 'yes', '--appendfsync', process.env.CLUSTER_APPENDFSYNC ?? 'always',
        '--save', ''
      ],
      'redis');
  for (let i = 0; i < 200; ++i) {
    try {
      if ((await redis(redisPort, 'PING')).startsWith('+PONG')) return;
    } catch { /* starting */
    }
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}
const replicas = [];
async function startReplica(i) {
  replicas[i] = start(
      bin,
      [
        'serve', '-m', model, '--port', String(replicaPorts[i]), '--session-store', store,
        ...serveFlags
      ],
      `replica${i}`, {...process.env, LONGCTX_LOG_SAVES: '1'});
  await waitFor(`http://127.0.0.1:${replicaPorts[i]}/health`);
}
// nginx on `port` in front of the replicas on `ports`, with its own prefix folder.
async function startNginx(port = nginxPort, ports = replicaPorts, name = 'nginx') {
  const prefix = join(work, name);
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    mkdirSync(join(prefix, d), {recursive: true});
    chmodSync(join(prefix, d), 0o777);
  }
  const conf =
      readFileSync(new URL('../deploy/nginx.conf', import.meta.url), 'utf8')
          .replaceAll('@PREFIX@', prefix)
          .replace('@LISTEN@', `127.0.0.1:${port}`)
          .replace(
              '@UPSTREAMS@',
              ports.map((p) => `server 127.0.0.1:${p} max_fails=2 fail_timeout=10s;`)
                  .join('\n    '));
  writeFileSync(join(prefix, 'nginx.conf'), conf);
  start(nginxBin, ['-c', join(prefix, 'nginx.conf'), '-p', prefix, '-g', 'daemon off;'], name);
  await waitFor(`http://127.0.0.1:${port}/health`);
}

const client = (base, session, retries = 6) => new OpenAI({
  baseURL: `${base}/v1`,
  apiKey: 'unused',
  maxRetries: retries,
  timeout: 120000,
  defaultHeaders: session ? {'X-Session-Id': session} : {}
});
const viaNginx = `http://127.0.0.1:${nginxPort}`;
let modelId = null;

// One turn: the prompt so far, a greedy answer. Returns the answer, who answered and the usage.
async function turn(cl, prompt, max_tokens = 12) {
  const {data, response} =
      await cl.completions.create({model: modelId, prompt, max_tokens, temperature: 0})
          .withResponse();
  return {
    text: data.choices[0].text,
    replica: response.headers.get('x-longctx-replica'),
    usage: data.usage
  };
}
// One streamed turn as the documented client does it (docs/deploy.md): a stream that fails or
// ends without a finish_reason (its replica died while answering; the session was not changed)
// is sent again, whole; the openai client's own retries (maxRetries) cover the 503 session_busy
// answers until the dead replica's lease expires. onChunk(i) is called for the i-th chunk of
// the first attempt. Returns the answer, who answered, the usage and how many attempts were cut.
async function streamTurn(cl, prompt, max_tokens, onChunk = () => {}) {
  let cut = 0;
  for (let attempt = 0; attempt < 5; ++attempt) {
    let text = '', finished = false, usage = null, replica = null, n = 0;
    try {
      const {data: stream, response} =
          await cl.completions
              .create({
                model: modelId,
                prompt,
                max_tokens,
                temperature: 0,
                stream: true,
                stream_options: {include_usage: true}
              })
              .withResponse();
      replica = response.headers.get('x-longctx-replica');
      for await (const c of stream) {
        if (attempt === 0) onChunk(n++);
        if (c.choices?.length) {
          text += c.choices[0].text ?? '';
          if (c.choices[0].finish_reason) finished = true;
        }
        if (c.usage) usage = c.usage;
      }
    } catch (e) {
      if (e.status && e.status < 500) throw e;  // a client error: not retried
    }
    if (finished) return {text, replica, usage, cut};
    ++cut;
    await sleep(500);
  }
  throw new Error('a streamed turn did not complete in 5 attempts');
}
const opening = (i) =>
    `Once upon a time there was a child named ${['Tom', 'Sue', 'Max', 'Lily'][i % 4]} number ${i}.`;
const line = (t) =>
    [' Then they went to the park.', ' The sun was warm.', ' A dog came to play.',
     ' They ate cake.'][t % 4];

// A session of the first n tokens of TEXT through nginx: read, then a follow-up turn on its replica,
// then its replica killed (SIGKILL) and the next turn timed on the replica that takes over, with
// the Redis traffic of each.
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
async function sessionTakeover(n) {
  watchers.add((l, who) => {
    if (l.includes("session 'big' saved")) log(`  ${who}: ${l}`);
  });
  const text = readFileSync(process.argv[5], 'utf8');
  const all = (await (await fetch(`${viaNginx}/tokenize`, {
                 method: 'POST',
                 body: JSON.stringify({content: text, add_special: true})
               })).json())
                  .tokens;
  const doc = all.slice(0, n);
  assert.equal(doc.length, n, `the text has ${n} tokens`);
  const big = new OpenAI({
    baseURL: `${viaNginx}/v1`,
    apiKey: 'unused',
    maxRetries: 6,
    timeout: 3600000,
    defaultHeaders: {'X-Session-Id': 'big'}
  });
  let t0 = performance.now();
  const first =
      await big.completions.create({model: modelId, prompt: doc, max_tokens: 4, temperature: 0})
          .withResponse();
  const holder = first.response.headers.get('x-longctx-replica');
  log(`${n}-token document read into a session: ${
      ((performance.now() - t0) / 1000).toFixed(1)} s on ${holder} (load ${load()})`);
  const info = async () => {
    const i = await redis(redisPort, 'INFO', 'stats');
    return {
      in: Number(i.match(/total_net_input_bytes:(\d+)/)[1]),
      out: Number(i.match(/total_net_output_bytes:(\d+)/)[1])
    };
  };
  const ans = (await (await fetch(`${viaNginx}/tokenize`, {
                 method: 'POST',
                 body: JSON.stringify({content: first.data.choices[0].text})
               })).json())
                  .tokens;
  let prompt = [...doc, ...ans, 13, 13];
  // A follow-up turn on the replica that holds the session (RAM copy current).
  let before = await info();
  t0 = performance.now();
  const second =
      await big.completions.create({model: modelId, prompt, max_tokens: 1, temperature: 0})
          .withResponse();
  const sameTime = (performance.now() - t0) / 1000;
  let after = await info();
  assert.equal(second.response.headers.get('x-longctx-replica'), holder);
  log(`one follow-up turn on the same replica: ${sameTime.toFixed(3)} s; Redis traffic: ${
      ((after.in - before.in) / 1024).toFixed(0)} KiB written, ${
      ((after.out - before.out) / 1024).toFixed(0)} KiB read (load ${load()})`);
  const k = replicaPorts.findIndex((p) => holder.endsWith(`:${p}`));
  assert.ok(k >= 0, `the holder ${holder} is one of the replicas`);
  await stop(replicas[k], 'SIGKILL');
  assert.notEqual(replicas[k].signalCode, null, 'the holder was killed');
  const ans2 = (await (await fetch(`${viaNginx}/tokenize`, {
                  method: 'POST',
                  body: JSON.stringify({content: second.data.choices[0].text})
                })).json())
                   .tokens;
  prompt = [...prompt, ...ans2, 30, 31];
  before = await info();
  t0 = performance.now();
  const third =
      await big.completions.create({model: modelId, prompt, max_tokens: 1, temperature: 0})
          .withResponse();
  const takeover = (performance.now() - t0) / 1000;
  after = await info();
  const by = third.response.headers.get('x-longctx-replica');
  assert.notEqual(by, holder);
  log(`takeover after SIGKILL of ${holder}: the next turn answered by ${by} in ${
      takeover.toFixed(3)} s, ${
      third.data.usage.prompt_tokens_details.cached_tokens} tokens not read again; Redis ` +
      `traffic: ${((after.out - before.out) / 1048576).toFixed(1)} MiB read, ${
          ((after.in - before.in) / 1024).toFixed(0)} KiB written (load ${load()})`);
}

async function main() {
  await startRedis();
  for (let i = 0; i < 3; ++i) await startReplica(i);
  await startNginx();
  modelId = (await client(viaNginx).models.list()).data[0].id;
  log(`cluster: redis on ${redisPort}, replicas on ${replicaPorts.join(', ')}, nginx on ${
      nginxPort}`);

  if (mode === 'takeover') {
    await sessionTakeover(Number(process.argv[6]));
    return;
  }
  if (mode === 'measure') {
    const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    const timeIt = async (f) => {
      const t0 = performance.now();
      await f();
      return (performance.now() - t0) / 1000;
    };
    // nginx in front of replica 0 alone, beside the one in front of all three.
    const onePort = await freePort();
    await startNginx(onePort, [replicaPorts[0]], 'nginx-one');
    const setups = [
      ['one replica, direct', `http://127.0.0.1:${replicaPorts[0]}`],
      ['one replica through nginx', `http://127.0.0.1:${onePort}`],
      ['three replicas through nginx', viaNginx]
    ];
    for (const [name, base] of setups) {
      const cl = client(base);
      const t = [];
      for (let i = 0; i < 30; ++i)
        t.push(await timeIt(
            () => cl.completions.create(
                {model: modelId, prompt: 'Once upon a time', max_tokens: 1})));
      log(`latency of a one-token request, ${name}: median ${
          (median(t) * 1000).toFixed(1)} ms (load ${load()})`);
    }
    // 8 clients, each a session of 4 streamed turns of 12 tokens: requests/s and the time to the
    // first generated token of each request.
    for (const [name, base] of setups) {
      const ttft = [];
      const s = await timeIt(() => Promise.all(Array.from({length: 8}, async (_, i) => {
        let prompt = opening(i);
        const cl = client(base, `m-${name.replaceAll(/[^a-z]/g, '')}-${i}`);
        for (let t = 0; t < 4; ++t) {
          const t0 = performance.now();
          let first = null, text = '';
          const stream = await cl.completions.create(
              {model: modelId, prompt, max_tokens: 12, temperature: 0, stream: true});
          for await (const c of stream) {
            const d = c.choices?.[0]?.text ?? '';
            if (d && first === null) first = performance.now() - t0;
            text += d;
          }
          ttft.push(first ?? performance.now() - t0);
          prompt += text + line(t);
        }
      })));
      log(`8 clients x 4 streamed turns of 12 tokens, ${name}: ${
          (32 / s).toFixed(1)} requests/s, time to first token median ${
          median(ttft).toFixed(1)} ms (load ${load()})`);
    }
    await sessionTakeover(65536);
    return;
  }

  if (mode === 'demo') {
    const cl = client(viaNginx, 'demo-chat');
    let prompt = readFileSync(new URL('../README.md', import.meta.url), 'utf8').slice(0, 3000) +
        '\n\nOnce upon a time';
    for (let t = 0; t < 4; ++t) {
      const r = await turn(cl, prompt);
      log(`turn ${t + 1}: answered by ${r.replica}, ${r.usage.prompt_tokens} prompt tokens, ` +
          `${r.usage.prompt_tokens_details.cached_tokens} already in the session: ${
              JSON.stringify(r.text)}`);
      prompt += r.text + line(t);
      if (t === 1) {
        const i = replicaPorts.findIndex((p) => r.replica.endsWith(`:${p}`));
        log(`killing the replica that holds the session (${r.replica}) with SIGKILL`);
        await stop(replicas[i], 'SIGKILL');
      }
    }
    return;
  }

  // Reference: one standalone server (its own folder), every conversation one after another.
  const refPort = await freePort();
  const ref = start(
      bin,
      [
        'serve', '-m', model, '--port', String(refPort), '--session-dir', join(work, 'ref'),
        ...serveFlags
      ],
      'reference');
  await waitFor(`http://127.0.0.1:${refPort}/health`);
  const refBase = `http://127.0.0.1:${refPort}`;
  // Turn 2 is longer (streamed in the cluster, where a replica is killed while it answers).
  const N = 16, T = 4, maxTokens = (t) => (t === 2 ? 40 : 12);
  const want = [];
  for (let i = 0; i < N; ++i) {
    const cl = client(refBase, `c${i}`);
    let prompt = opening(i);
    want.push([]);
    for (let t = 0; t < T; ++t) {
      const r = await turn(cl, prompt, maxTokens(t));
      want[i].push(r.text);
      prompt += r.text + line(t);
    }
  }
  // A session with a long prefill in its second turn (Redis is stopped while that is saved).
  const doc = [...Array(12)]
                  .map((_, k) => readFileSync(new URL('../docs/deploy.md', import.meta.url), 'utf8')
                                     .replaceAll('\n', ' ')
                                     .slice(k * 400, k * 400 + 3000))
                  .join(' ');
  const longPrompts = ['Once upon a time there was a long story.'];
  const longWant = [];
  {
    const cl = client(refBase, 'long');
    for (let t = 0; t < 3; ++t) {
      const r = await turn(cl, longPrompts[t]);
      longWant.push(r);
      longPrompts.push(longPrompts[t] + r.text + (t === 0 ? ' ' + doc : line(t)));
    }
  }
  await stop(ref);

  // The cluster: 16 clients at once. Turn 2 is streamed, and as soon as client 0's stream has
  // started, the replica holding client 0's session is killed (SIGKILL) while it answers every
  // request it holds; their clients send them again (streamTurn), and they complete on another
  // replica once the dead replica's leases expired (the default lease, 10 s). The replica is
  // started again before turn 3.
  const got = Array.from({length: N}, () => []);
  const prompts = Array.from({length: N}, (_, i) => opening(i));
  const replicaOf = {};
  let moved = 0, cut = 0;
  const t0 = performance.now();
  for (let t = 0; t < T; ++t) {
    if (t === 3) {
      log(`cluster: restarting replica ${replicas.killed}`);
      await startReplica(replicas.killed);
    }
    let killing = null;
    await Promise.all(Array.from({length: N}, async (_, i) => {
      const cl = client(viaNginx, `c${i}`);
      const r = t !== 2 ? await turn(cl, prompts[i], maxTokens(t)) :
                          await streamTurn(cl, prompts[i], maxTokens(t), (n) => {
                            if (i !== 0 || n !== 0 || killing) return;
                            const k = replicaPorts.findIndex((p) => replicaOf[0].endsWith(`:${p}`));
                            log(`cluster: killing ${replicaOf[0]} (SIGKILL) while it answers`);
                            replicas.killed = k;
                            killing = stop(replicas[k], 'SIGKILL');
                          });
      cut += r.cut ?? 0;
      if (t > 0 && replicaOf[i] !== r.replica) ++moved;
      if (t > 0)
        assert.ok(
            r.usage.prompt_tokens_details.cached_tokens > 0,
            `client ${i} turn ${t}: session reused`);
      replicaOf[i] = r.replica;
      got[i].push(r.text);
      prompts[i] += r.text + line(t);
    }));
    await killing;
  }
  assert.deepEqual(got, want);
  assert.ok(cut > 0, 'a request was in flight on the killed replica');
  log(`cluster: ${N} clients x ${T} turns equal to a single server's; ${
      cut} streams cut by the kill and sent again; ${moved} session moves between replicas; ${
      ((performance.now() - t0) / 1000).toFixed(1)} s: ok`);

  // Redis stopped (SIGKILL) while the long session's second turn, a long prefill, is being
  // saved: the request fails with 503 and a message naming the store; once Redis is back (with
  // its append-only file) the session continues from its last consistent state (its first turn)
  // with the same answers as one server's.
  const longCl = client(viaNginx, 'long');
  const r0 = await turn(longCl, longPrompts[0]);
  assert.equal(r0.text, longWant[0].text);
  const savedTokens = async () =>
      (await (await fetch(`${viaNginx}/v1/sessions/long`)).json()).saved.tokens;
  const before = await savedTokens();
  // Keys of the session's object chunks (written before the object counts them as present).
  const objects = async () =>
      Number((await redis(redisPort, 'KEYS', 'longctx:obj:long/*')).match(/^\*(\d+)/)[1]);
  const objectsBefore = await objects();
  // Once the replica says it is saving, Redis is killed as soon as the save's first key is in it.
  let savingSeen = false;
  const onSave = async (l) => {
    if (savingSeen || !l.includes("session 'long' saving")) return;
    savingSeen = true;
    const keys = async () => Number((await redis(redisPort, 'DBSIZE')).slice(1));
    const start = await keys();
    for (let i = 0; i < 2000 && await keys() === start; ++i) {
    }
    redisProc.kill('SIGKILL');
  };
  watchers.add(onSave);
  await assert.rejects(turn(client(viaNginx, 'long', 0), longPrompts[1]), (e) => {
    assert.equal(e.status, 503);
    assert.match(e.message, /session store .*redis:\/\//);
    return true;
  });
  watchers.delete(onSave);
  assert.ok(savingSeen, 'Redis was stopped during the save');
  await stop(redisProc);
  await startRedis();
  assert.equal(await savedTokens(), before);
  // Objects of the cut save are in Redis (its append-only file), referenced by no manifest: the
  // stop came in the middle of the save.
  const written = await objects() - objectsBefore;
  assert.ok(written > 0, 'Redis was stopped in the middle of the save');
  for (let t = 1; t < 3; ++t) {
    const r = await turn(longCl, longPrompts[t]);
    assert.equal(r.text, longWant[t].text, `long session turn ${t}`);
    assert.equal(
        r.usage.prompt_tokens_details.cached_tokens,
        longWant[t].usage.prompt_tokens_details.cached_tokens);
  }
  log(`cluster: Redis killed while a ${
      longWant[1].usage.prompt_tokens}-token prefill was saved (${
      written} object chunks written): 503 with a clear message; ` +
      'restarted: the session continued from its last consistent state, as on one server: ok');

  // A corrupt object: that session reports it, the others are unaffected.
  const keys = (await redis(redisPort, 'SMEMBERS', 'longctx:ns:c1'))
                   .split('\r\n')
                   .filter((l) => l.startsWith('c1/'));
  assert.ok(keys.length > 0);
  for (const k of keys) await redis(redisPort, 'SET', `longctx:obj:${k}:0`, 'garbage');
  // Every replica must read the store again: restart them (their RAM copies are still good).
  for (let i = 0; i < 3; ++i) {
    await stop(replicas[i]);
    await startReplica(i);
  }
  await assert.rejects(turn(client(viaNginx, 'c1', 0), prompts[1]), (e) => {
    assert.equal(e.status, 500);
    assert.equal(e.code, 'session_corrupt');
    return true;
  });
  const ok = await turn(client(viaNginx, 'c2'), prompts[2]);
  assert.ok(ok.usage.prompt_tokens_details.cached_tokens > 0);
  log('cluster: a corrupt object is an error for its session only: ok');
}

let code = 0;
try {
  await main();
} catch (e) {
  console.error(e);
  code = 1;
} finally {
  // nginx first and with SIGTERM: its master stops its workers then (a SIGKILLed master would
  // leave them running, still listening).
  for (const p of [...children].filter((c) => c.name.startsWith('nginx'))) {
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await stop(p, 'SIGTERM');
    clearTimeout(timer);
  }
  for (const p of [...children]) await stop(p, 'SIGKILL');
  rmSync(work, {recursive: true, force: true});
}
process.exit(code);
