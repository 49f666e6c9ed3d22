#!/usr/bin/env node
// longctx against llama.cpp on the same GGUF files, threads and machine, in one run.
//
// Usage: node bench/compare-llama-cpp.mjs [options] [MODEL.gguf...]
//   --longctx PATH     longctx binary (default build/longctx)
//   --llama-bench PATH llama-bench of a native llama.cpp build (default
//                      build/llama.cpp/bin/llama-bench; bench/llama-cpp-setup builds it when it
//                      is missing or is the former build against prebuilt libraries)
//   --from-f16 FILE    also time the files bench/llama-cpp-quantize makes from this F16 GGUF with
//                      llama.cpp's llama-quantize (repeatable); FILE itself is the F16 row
//   --types A,B        llama-quantize types for --from-f16 (default Q8_0,Q4_0,Q4_K_M,F16; F16 is
//                      the input file, others e.g. Q5_K_M, Q6_K, BF16)
//   --quant-dir DIR    where the quantized files go (default build/llama.cpp/models; files that
//                      are there already are used as they are)
//   -t N               threads (default 2)
//   -p N               prompt tokens for prefill (default 512)
//   -n N               decoded tokens (default 128)
//   -d N               also prefill a prompt of N tokens and decode after it (default 0 = no)
//   --no-depth-prefill with -d: time only the decode after N tokens (llama-bench fills its cache
//                      untimed), not llama.cpp's prefill of N tokens
//   --rounds N         rounds (default 3); each round runs llama.cpp once then longctx once,
//                      so that a change of load on the machine hits both; medians are printed
//   --json FILE        also write every sample and the medians as JSON
//   --longctx-args "A B"  extra arguments for longctx bench (e.g. "--kv-type f32")
//
// Prefill: tokens/s over one P-token prompt (llama-bench pp P; longctx bench -p P), and over the
// N-token prompt with -d (llama-bench pp N; longctx bench -p N).
// Decode: tokens/s over n tokens decoded after P tokens in the cache (llama-bench tg n at depth P;
// longctx bench decodes after its P-token prompt), and after N tokens with -d.
// Peak RSS: of the first round's processes (/usr/bin/time), each one prefilling P and decoding n.
// Both engines run with their defaults otherwise (f16 KV cache in both; llama.cpp: flash
// attention auto).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const opt = {
  longctx: join(root, 'build/longctx'),
  llamaBench: join(root, 'build/llama.cpp/bin/llama-bench'),
  t: 2, p: 512, n: 128, d: 0, rounds: 3, json: '', extra: [], models: [], depthPrefill: true,
  fromF16: [], types: ['Q8_0', 'Q4_0', 'Q4_K_M', 'F16'], quantDir: join(root, 'build/llama.cpp/models'),
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; ++i) {
  const a = argv[i];
  const next = () => {
    if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
    return argv[++i];
  };
  const int = () => {
    const v = Number(next());
    if (!Number.isInteger(v) || v < 0) throw new Error(`${a} needs a whole number`);
    return v;
  };
  if (a === '--longctx') opt.longctx = resolve(next());
  else if (a === '--llama-bench') opt.llamaBench = resolve(next());
  else if (a === '-t') opt.t = int();
  else if (a === '-p') opt.p = int();
  else if (a === '-n') opt.n = int();
  else if (a === '-d') opt.d = int();
  else if (a === '--no-depth-prefill') opt.depthPrefill = false;
  else if (a === '--from-f16') opt.fromF16.push(resolve(next()));
  else if (a === '--types') opt.types = next().split(',').filter(Boolean);
  else if (a === '--quant-dir') opt.quantDir = resolve(next());
  else if (a === '--rounds') opt.rounds = Math.max(1, int());
  else if (a === '--json') opt.json = next();
  else if (a === '--longctx-args') opt.extra = next().split(/\s+/).filter(Boolean);
  else if (a === '-h' || a === '--help') {
    console.log('usage: node bench/compare-llama-cpp.mjs [--longctx PATH] [--llama-bench PATH] [--from-f16 F16.gguf] ' +
      '[--types Q8_0,Q4_K_M,...] [--quant-dir DIR] [-t N] [-p N] [-n N] [-d N] [--no-depth-prefill] [--rounds N] ' +
      '[--json FILE] [--longctx-args "ARGS"] [MODEL.gguf...] (see the comment at the top of this file)');
    process.exit(0);
  } else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
  else opt.models.push(resolve(a));
}
if (opt.models.length === 0 && opt.fromF16.length === 0) throw new Error('no model given (see --help)');
for (const m of [...opt.models, ...opt.fromF16]) if (!existsSync(m)) throw new Error(`no such model: ${m}`);
if (!existsSync(opt.longctx)) throw new Error(`no longctx binary at ${opt.longctx} (run make first)`);
// bench/llama-cpp-setup writes BUILD-INFO next to its native build; a llama-bench without it is
// the former build against the npm package's prebuilt libraries, and the setup replaces it.
const llamaDir = dirname(dirname(opt.llamaBench));
const buildInfoFile = join(dirname(opt.llamaBench), 'BUILD-INFO');
const isNative = () => existsSync(buildInfoFile) && readFileSync(buildInfoFile, 'utf8').startsWith('native');
if (!existsSync(opt.llamaBench) || !isNative()) {
  execFileSync(join(root, 'bench/llama-cpp-setup'), [llamaDir], { stdio: 'inherit' });
}
const buildInfo = existsSync(buildInfoFile) ? readFileSync(buildInfoFile, 'utf8').trim() : 'unknown build';
// Files quantized by llama.cpp's own llama-quantize from each --from-f16 file.
for (const f16 of opt.fromF16) {
  const stem = basename(f16, '.gguf').replace(/[-_]f16$/i, '');
  const made = opt.types.filter((t) => t.toUpperCase() !== 'F16');
  if (made.length) {
    execFileSync(join(root, 'bench/llama-cpp-quantize'), ['--llama-cpp', llamaDir, f16, opt.quantDir, ...made],
      { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  for (const t of opt.types) {
    opt.models.push(t.toUpperCase() === 'F16' ? f16 : join(opt.quantDir, `${stem}-${t.toLowerCase()}.gguf`));
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const log = (s) => process.stderr.write(s + '\n');

// Runs a command, optionally under /usr/bin/time; returns stdout and the peak RSS in MiB.
function run(cmd, args, withRss) {
  const useTime = withRss && existsSync('/usr/bin/time');
  const r = useTime
    ? spawnSync('/usr/bin/time', ['-f', 'LCRSS %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 })
    : spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${basename(cmd)} failed (${r.status}):\n${(r.stderr || '').slice(-2000)}`);
  const m = useTime ? /LCRSS (\d+)/.exec(r.stderr) : null;
  return { out: r.stdout, rssMb: m ? Number(m[1]) / 1024 : null };
}

const withPrefill = (depth) => depth === opt.p || opt.depthPrefill;

// One llama-bench run (one repetition after its warm-up): prefill `depth` tokens, decode n at
// that depth.
function llamaCpp(model, depth, withRss) {
  const args = ['-m', model, '-t', String(opt.t), '-r', '1', '-ngl', '0', '-o', 'jsonl'];
  const res = {};
  if (withPrefill(depth)) {
    const a = run(opt.llamaBench, [...args, '-p', String(depth), '-n', '0'], false);
    const pp = a.out.split('\n').filter(Boolean).map(JSON.parse).find((r) => r.n_prompt > 0);
    res.prefill = (pp.n_prompt * 1e9) / pp.samples_ns[0];
    res.build = `${pp.build_commit} (build ${pp.build_number})`;
    res.kv = `${pp.type_k}/${pp.type_v}`;
  }
  const b = run(opt.llamaBench, [...args, '-p', '0', '-n', String(opt.n), '-d', String(depth)], withRss);
  const tg = b.out.split('\n').filter(Boolean).map(JSON.parse).find((r) => r.n_gen > 0);
  res.decode = (tg.n_gen * 1e9) / tg.samples_ns[0];
  res.rssMb = b.rssMb;
  return res;
}

// One longctx bench run: prefill P tokens, decode n.
function longctx(model, prompt, withRss) {
  const a = run(opt.longctx, ['bench', '-m', model, '-t', String(opt.t), '-p', String(prompt), '-n', String(opt.n),
    '--repeat', '1', '--json', ...opt.extra], withRss);
  const j = JSON.parse(a.out)[0];
  return { prefill: j.prefill_tok_s, decode: j.decode_tok_s, rssMb: a.rssMb, kv: j.kv_type };
}

const results = [];
for (const model of opt.models) {
  const depths = opt.d > 0 ? [opt.p, opt.d] : [opt.p];
  for (const depth of depths) {
    const s = { llama: [], longctx: [] };
    for (let r = 0; r < opt.rounds; ++r) {
      log(`${basename(model)}: context ${depth}, round ${r + 1}/${opt.rounds} (load ${os.loadavg()[0].toFixed(2)})`);
      s.llama.push(llamaCpp(model, depth, r === 0));
      s.longctx.push(longctx(model, depth, r === 0));
    }
    const med = (xs, k) => median(xs.map((x) => x[k]));
    const row = {
      model: basename(model), context: depth, rounds: opt.rounds, threads: opt.t,
      llama_cpp_build: s.llama[0].build || null, llama_cpp_kv: s.llama[0].kv || null,
      longctx_kv: s.longctx[0].kv || null,
      llama_prefill_tok_s: withPrefill(depth) ? med(s.llama, 'prefill') : null,
      longctx_prefill_tok_s: withPrefill(depth) ? med(s.longctx, 'prefill') : null,
      llama_decode_tok_s: med(s.llama, 'decode'),
      longctx_decode_tok_s: med(s.longctx, 'decode'),
      llama_peak_rss_mb: s.llama[0].rssMb, longctx_peak_rss_mb: s.longctx[0].rssMb,
      samples: s,
    };
    results.push(row);
  }
}

const f = (x, d = 1) => (x == null ? '-' : x.toFixed(d));
const ratio = (a, b) => (a == null || b == null ? '-' : (a / b).toFixed(2) + 'x');
console.log(`threads ${opt.t}, ${opt.rounds} rounds (medians), prefill ${opt.p} tokens, decode ${opt.n} tokens after the context` +
  (opt.extra.length ? `, longctx ${opt.extra.join(' ')}` : ''));
console.log('| model | context | prefill tok/s llama.cpp | longctx | ratio | decode tok/s llama.cpp | longctx | ratio | peak RSS MiB llama.cpp | longctx |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.model} | ${r.context} | ${f(r.llama_prefill_tok_s)} | ${f(r.longctx_prefill_tok_s)} | ${ratio(r.longctx_prefill_tok_s, r.llama_prefill_tok_s)} | ` +
    `${f(r.llama_decode_tok_s, 2)} | ${f(r.longctx_decode_tok_s, 2)} | ${ratio(r.longctx_decode_tok_s, r.llama_decode_tok_s)} | ` +
    `${f(r.llama_peak_rss_mb, 0)} | ${f(r.longctx_peak_rss_mb, 0)} |`);
}
if (results.length) {
  const r = results.find((x) => x.llama_cpp_kv) || results[0];
  console.log(`llama.cpp: ${r.llama_cpp_build}, KV cache ${r.llama_cpp_kv}; ${buildInfo.replace(/\n/g, '; ')}`);
  console.log(`longctx: KV cache ${r.longctx_kv}`);
}
if (opt.json) writeFileSync(opt.json, JSON.stringify({ options: opt, llama_cpp_build_info: buildInfo, results }, null, 1));
