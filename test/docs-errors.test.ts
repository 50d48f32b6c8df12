/**
 * Every error message the docs quote ("heimdall: HEIMDALL_ERR_X: ..." lines, inspect reports) is one the catalogue
 * (src/errors.ts) really produces: a message changed in the code without the docs, or quoted from memory, fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Errors } from '../src/errors.js';
import { REPO } from './helpers/fixtures.js';

/** Markdown files that may quote errors: README.md, docs/, and the SDKs' and examples' READMEs. */
function markdownFiles(): string[] {
  const out = [path.join(REPO, 'README.md')];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = path.join(dir, name);
      if (name === 'node_modules' || name === 'target' || name.startsWith('.')) continue;
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.md')) out.push(p);
    }
  };
  for (const dir of ['docs', 'sdk', 'plugins-c', 'plugins-go', 'plugins-rust']) walk(path.join(REPO, dir));
  return out;
}

/**
 * An argument that stands for any value: it prints as a marker (in templates and JSON.stringify), and as a list it
 * has two elements, so plural wordings are the ones produced.
 */
function anyArg(i: number): unknown {
  const marker = `@@ARG${i}@@`;
  return Object.assign([marker, marker], { toString: () => marker, join: () => marker, toJSON: () => marker });
}

/** Arguments that choose a wording of their own (the rest stand for anything). */
const WORDINGS: Record<string, unknown[][]> = {
  HEIMDALL_ERR_PLUGIN_SYMBOL: [['c'], ['go'], ['rust']].map(([lang]) => [anyArg(0), anyArg(1), lang]),
  HEIMDALL_ERR_REQUEST_TIMEOUT: [['headers', anyArg(1)]],
};

const squash = (s: string) => s.replace(/\s+/g, ' ').trim();
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** For each code, the regular expressions its messages match. */
function catalogue(): Map<string, RegExp[]> {
  const byCode = new Map<string, RegExp[]>();
  for (const factory of Object.values(Errors) as ((...args: unknown[]) => Error & { code: string })[]) {
    const code = (factory as unknown as { code: string }).code;
    const argSets = [[0, 1, 2, 3, 4].map(anyArg), ...(WORDINGS[code] ?? [])];
    for (const args of argSets) {
      const message = squash(factory(...args).message);
      const pattern = escape(message).replace(/"?@@ARG\d@@"?/g, '[\\s\\S]+?');
      byCode.set(code, [...(byCode.get(code) ?? []), new RegExp(`^${pattern}$`)]);
    }
  }
  return byCode;
}

interface Quote {
  file: string;
  line: number;
  code: string;
  text: string;
}

/** "CODE: message" quotes, in code blocks or inline; the message goes on until a blank line, a fence or another quote. */
function quotes(file: string): Quote[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const found: Quote[] = [];
  lines.forEach((line, i) => {
    const m = /(HEIMDALL_ERR_[A-Z_]+):(?:\s|$)(.*)$/.exec(line);
    if (!m) return;
    const parts = [m[2] ?? ''];
    for (let j = i + 1; j < lines.length; j++) {
      const next = lines[j]!;
      if (next.trim() === '' || next.startsWith('```') || /^heimdall:|^HEIMDALL_ERR_|^#/.test(next.trim())) break;
      parts.push(next);
    }
    found.push({ file: path.relative(REPO, file), line: i + 1, code: m[1]!, text: squash(parts.join(' ')) });
  });
  return found;
}

t.test('every error message quoted in the docs is one the catalogue produces', async (t) => {
  const byCode = catalogue();
  const all = markdownFiles().flatMap(quotes);
  t.ok(all.length >= 15, `found ${all.length} quoted messages`);
  for (const q of all) {
    const patterns = byCode.get(q.code);
    if (patterns === undefined) {
      t.fail(`${q.file}:${q.line} quotes ${q.code}, which is not in src/errors.ts`);
      continue;
    }
    t.ok(patterns.some((p) => p.test(q.text)), `${q.file}:${q.line} ${q.code} matches the catalogue`, {
      quoted: q.text,
      catalogue: patterns.map((p) => p.source.slice(1, -1).replace(/\[\\s\\S\]\+\?/g, '…').replace(/\\(.)/g, '$1')),
    });
  }
});

t.test('the check itself: a quote that drifts from the catalogue is caught', async (t) => {
  const byCode = catalogue();
  const real = Errors.PLUGIN_INIT('hello', '/p/hello.so', 'bad config').message;
  t.ok(byCode.get('HEIMDALL_ERR_PLUGIN_INIT')!.some((p) => p.test(real)), 'the real message matches');
  const drifted = real.replace('Fix what the message names (usually the plugin\'s "config" in config.json)', 'Fix the plugin\'s "config" in config.json');
  t.notOk(byCode.get('HEIMDALL_ERR_PLUGIN_INIT')!.some((p) => p.test(drifted)), 'the old wording does not');
});
