#!/usr/bin/env node
// Several `longctx serve` replicas behind nginx, sharing sessions in Redis (docs/deploy.md).
//
//   node scripts/cluster.mjs demo LONGCTX_BINARY MODEL   a conversation through nginx; the replica
//                                                        holding it is killed; the next turn is
//                                                        answered by another from the store
//   node scripts/cluster.mjs test LONGCTX_BINARY MODEL   16 concurrent clients, a replica killed
//   and
//                                                        restarted, continuations compared with one
//                                                        server's; Redis stopped mid-conversation;
//                                                        a corrupt object
//   node scripts/cluster.mjs measure LONGCTX_BINARY MODEL TEXT
//                                                        latency through nginx against direct,
//                                                        requests/s with 8 clients, takeover time
//                                                        of a 64K-token session, Redis traffic
//                                                        of one turn
// Everything runs on loopback ports in a throw-away folder and is stopped at the end. Exits 1 on a
// failed check, 77 when redis-server or nginx is missing.
import {spawn, execFileSync} from 'node:child_process';
import assert from 'node:assert/strict';
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import net from 'node:net';

const [mode, bin, model] = process.argv.slice(2);
if (!['demo', 'test', 'measure'].includes(mode) || !bin || !model) {
  console.error('usage: cluster.mjs demo|test|measure LONGCTX_BINARY MODEL [TEXT]');
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
function start(cmd, args, name) {
  const p = spawn(cmd, args, {stdio: ['ignore', 'ignore', 'pipe']});
  p.stderr.on('data', (d) => {
    if (process.env.CLUSTER_VERBOSE) process.stderr.write(`[${name}] ${d}`);
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
const serveFlags = [
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
        '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''
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
        '--session-lease', '3', ...serveFlags
      ],
      `replica${i}`);
  await waitFor(`http://127.0.0.1:${replicaPorts[i]}/health`);
}
async function startNginx() {
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    mkdirSync(join(work, d), {recursive: true});
    chmodSync(join(work, d), 0o777);
  }
  const conf =
      readFileSync(new URL('../deploy/nginx.conf', import.meta.url), 'utf8')
          .replaceAll('@PREFIX@', work)
          .replace('@LISTEN@', `127.0.0.1:${nginxPort}`)
          .replace(
              '@UPSTREAMS@',
              replicaPorts.map((p) => `server 127.0.0.1:${p} max_fails=0;`).join('\n    '));
  writeFileSync(join(work, 'nginx.conf'), conf);
  start(nginxBin, ['-c', join(work, 'nginx.conf'), '-p', work, '-g', 'daemon off;'], 'nginx');
  await waitFor(`http://127.0.0.1:${nginxPort}/health`);
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
async function turn(cl, prompt) {
  const {data, response} =
      await cl.completions.create({model: modelId, prompt, max_tokens: 12, temperature: 0})
          .withResponse();
  return {
    text: data.choices[0].text,
    replica: response.headers.get('x-longctx-replica'),
    usage: data.usage
  };
}
const opening = (i) =>
    `Once upon a time there was a child named ${['Tom', 'Sue', 'Max', 'Lily'][i % 4]} number ${i}.`;
const line = (t) =>
    [' Then they went to the park.', ' The sun was warm.', ' A dog came to play.',
     ' They ate cake.'][t % 4];

async function main() {
  await startRedis();
  for (let i = 0; i < 3; ++i) await startReplica(i);
  await startNginx();
  modelId = (await client(viaNginx).models.list()).data[0].id;
  log(`cluster: redis on ${redisPort}, replicas on ${replicaPorts.join(', ')}, nginx on ${
      nginxPort}`);

  if (mode === 'measure') {
    const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    const timeIt = async (f) => {
      const t0 = performance.now();
      await f();
      return (performance.now() - t0) / 1000;
    };
    const direct = `http://127.0.0.1:${replicaPorts[0]}`;
    for (const [name, base] of [['direct to one replica', direct], ['through nginx', viaNginx]]) {
      const cl = client(base);
      const t = [];
      for (let i = 0; i < 30; ++i)
        t.push(await timeIt(
            () => cl.completions.create(
                {model: modelId, prompt: 'Once upon a time', max_tokens: 1})));
      log(`latency of a one-token request ${name}: median ${(median(t) * 1000).toFixed(1)} ms`);
    }
    for (const [name, base] of [
             ['one replica, direct', direct], ['three replicas through nginx', viaNginx]]) {
      const s = await timeIt(() => Promise.all(Array.from({length: 8}, async (_, i) => {
        let prompt = opening(i);
        for (let t = 0; t < 4; ++t) {
          const r = await turn(client(base, `m-${name.length}-${i}`), prompt);
          prompt += r.text + line(t);
        }
      })));
      log(`8 clients x 4 turns of 12 tokens, ${name}: ${(32 / s).toFixed(1)} requests/s`);
    }
    const text = readFileSync(process.argv[5], 'utf8');
    const all = (await (await fetch(`${viaNginx}/tokenize`, {
                   method: 'POST',
                   body: JSON.stringify({content: text, add_special: true})
                 })).json())
                    .tokens;
    const doc = all.slice(0, 65536);
    const big = client(viaNginx, 'big');
    let t0 = performance.now();
    const first =
        await big.completions.create({model: modelId, prompt: doc, max_tokens: 4, temperature: 0})
            .withResponse();
    log(`64K-token document read into a session: ${
        ((performance.now() - t0) / 1000).toFixed(1)} s on ${
        first.response.headers.get('x-longctx-replica')}`);
    const stat = async () =>
        Number((await redis(redisPort, 'INFO', 'stats')).match(/total_net_input_bytes:(\d+)/)[1]);
    const before = await stat();
    const ans = (await (await fetch(`${viaNginx}/tokenize`, {
                   method: 'POST',
                   body: JSON.stringify({content: first.data.choices[0].text})
                 })).json())
                    .tokens;
    let prompt = [...doc, ...ans, 13, 13];
    const second =
        await big.completions.create({model: modelId, prompt, max_tokens: 4, temperature: 0});
    log(`one follow-up turn wrote ${((await stat() - before) / 1024).toFixed(0)} KiB to Redis`);
    const holder = first.response.headers.get('x-longctx-replica');
    const i = replicaPorts.findIndex((p) => holder.endsWith(`:${p}`));
    await stop(replicas[i], 'SIGKILL');
    prompt = [...prompt, 30, 31];
    t0 = performance.now();
    const third =
        await big.completions.create({model: modelId, prompt, max_tokens: 1, temperature: 0})
            .withResponse();
    log(`takeover after SIGKILL: the next turn answered by ${
            third.response.headers.get('x-longctx-replica')} in ` +
        `${((performance.now() - t0) / 1000).toFixed(2)} s, ${
            third.data.usage.prompt_tokens_details.cached_tokens} tokens not read again`);
    void second;
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
  const N = 16, T = 4;
  const want = [];
  for (let i = 0; i < N; ++i) {
    const cl = client(`http://127.0.0.1:${refPort}`, `c${i}`);
    let prompt = opening(i);
    want.push([]);
    for (let t = 0; t < T; ++t) {
      const r = await turn(cl, prompt);
      want[i].push(r.text);
      prompt += r.text + line(t);
    }
  }
  await stop(ref);

  // The cluster: 16 clients at once; after every client's second turn the replica holding client
  // 0's session is killed, and it is started again after the third.
  const got = Array.from({length: N}, () => []);
  const prompts = Array.from({length: N}, (_, i) => opening(i));
  const replicaOf = {};
  let moved = 0;
  for (let t = 0; t < T; ++t) {
    if (t === 2) {
      const i = replicaPorts.findIndex((p) => replicaOf[0].endsWith(`:${p}`));
      log(`cluster: killing ${replicaOf[0]} (SIGKILL)`);
      await stop(replicas[i], 'SIGKILL');
      replicas.killed = i;
    }
    if (t === 3) {
      log(`cluster: restarting replica ${replicas.killed}`);
      await startReplica(replicas.killed);
    }
    await Promise.all(Array.from({length: N}, async (_, i) => {
      const r = await turn(client(viaNginx, `c${i}`), prompts[i]);
      if (t > 0 && replicaOf[i] !== r.replica) ++moved;
      if (t > 0)
        assert.ok(
            r.usage.prompt_tokens_details.cached_tokens > 0,
            `client ${i} turn ${t}: session reused`);
      replicaOf[i] = r.replica;
      got[i].push(r.text);
      prompts[i] += r.text + line(t);
    }));
  }
  assert.deepEqual(got, want);
  log(`cluster: ${N} clients x ${T} turns equal to a single server's; ${
      moved} session moves between replicas: ok`);

  // Redis stopped: a request fails with 503 and a clear message; once Redis is back (with its
  // append-only file) the session continues from its last consistent state.
  const cl0 = client(viaNginx, 'c0', 0);
  await stop(redisProc);
  await assert.rejects(turn(cl0, prompts[0]), (e) => {
    assert.equal(e.status, 503);
    assert.match(e.message, /session store|cannot be reached|redis/);
    return true;
  });
  await startRedis();
  const again = await turn(client(viaNginx, 'c0'), prompts[0]);
  assert.ok(again.usage.prompt_tokens_details.cached_tokens > 0);
  log('cluster: Redis stopped: 503 with a clear message; restarted: the session continues: ok');

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
  for (const p of [...children]) await stop(p, 'SIGKILL');
  rmSync(work, {recursive: true, force: true});
}
process.exit(code);
