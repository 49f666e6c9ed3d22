#!/usr/bin/env node
// The server part of `make demo`: starts `longctx serve`, sends a long document to a session,
// asks two questions through the OpenAI API (the official client), and shows that the second was
// answered without reading the document again (usage.prompt_tokens_details.cached_tokens).
//   node scripts/demo-server.mjs LONGCTX_BINARY MODEL TEXT_FILE [serve flags...]
import {spawn} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {createRequire} from 'node:module';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import net from 'node:net';

const [bin, model, textFile, ...flags] = process.argv.slice(2);
const require = createRequire(new URL('../tests/node/package.json', import.meta.url));
let OpenAI;
try {
  OpenAI = require('openai').default ?? require('openai');
} catch {
  console.log(
      '(the openai npm client is not installed: run `make setup`; skipping the server demo)');
  process.exit(0);
}
const port = await new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const dir = mkdtempSync(join(tmpdir(), 'longctx-demo-'));
const server = spawn(
    bin, ['serve', '-m', model, '--port', String(port), '--session-dir', dir, ...flags],
    {stdio: ['ignore', 'ignore', 'inherit']});
try {
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    try {
      if ((await fetch(`${base}/health`)).status === 200) break;
    } catch { /* starting */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const client = new OpenAI({baseURL: `${base}/v1`, apiKey: 'unused'});
  const model = (await client.models.list()).data[0].id;
  const doc = readFileSync(textFile, 'utf8');
  let prompt = doc;
  for (const question of ['\n\nOne day, ', '\n\nThe next morning, ']) {
    prompt += question;
    const t0 = performance.now();
    const r = await client.completions.create({
      model,
      prompt,
      max_tokens: 24,
      temperature: 0,
      // the session field is longctx's: the client passes unknown body fields through
      session_id: 'demo',
    });
    const s = (performance.now() - t0) / 1000;
    const u = r.usage;
    const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
    console.log(
        `prompt ${u.prompt_tokens} tokens, ${cached} already in the session, ` +
        `${u.prompt_tokens - cached} read: ${s.toFixed(2)} s`);
    console.log(`  ...${question.trim()}${r.choices[0].text.replace(/\n/g, ' ')}`);
    prompt += r.choices[0].text;
  }
  const info = await (await fetch(`${base}/v1/sessions/demo`)).json();
  console.log(
      `session 'demo': ${info.tokens} tokens, ${(info.saved.bytes / 2 ** 20).toFixed(1)} MiB ` +
      `saved in ${dir} (it would survive a restart)`);
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dir, {recursive: true, force: true});
}
