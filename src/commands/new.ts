/**
 * `heimdall plugin new NAME --lang c|go|rust [--dir DIR]`: a plugin folder that builds and loads as it is, with its
 * own unit test, Makefile and README, in the layout of the repository's examples. The templates are in templates/.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Errors } from '../errors.js';
import { TEMPLATE_LANGUAGES, templateFiles, type TemplateLanguage } from './templates/index.js';

export interface NewPluginOptions {
  name: string;
  lang: string | undefined;
  /** Where the folder goes: DIR/NAME; the current directory when not given. */
  parent?: string;
  /** The Heimdall checkout to build against; the one this command runs from when not given. */
  heimdall?: string;
}

export interface NewPluginResult {
  dir: string;
  lang: TemplateLanguage;
  files: string[];
}

/** This command's own checkout (or installed package): src/commands and dist/commands are two levels down. */
export const HEIMDALL_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Lower case, digits, single '-' or '_' between them: a plugin name, a Go module path, a crate name and a file name. */
const NAME = /^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$/;

export function newPlugin(options: NewPluginOptions): NewPluginResult {
  const { name } = options;
  if (!NAME.test(name) || name.length > 64) {
    throw Errors.SCAFFOLD(
      `${JSON.stringify(name)} is not a usable plugin name`,
      'Use 1-64 lower-case letters and digits, starting with a letter, with single "-" or "_" between words (my-guard)',
    );
  }
  const lang = options.lang as TemplateLanguage;
  if (!TEMPLATE_LANGUAGES.includes(lang)) {
    throw Errors.SCAFFOLD(
      options.lang === undefined ? 'no language given' : `unknown language ${JSON.stringify(options.lang)}`,
      `Choose one with --lang ${TEMPLATE_LANGUAGES.join('|')}`,
    );
  }
  const dir = path.resolve(options.parent ?? process.cwd(), name);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw Errors.SCAFFOLD(`${dir} already exists and is not empty`, 'Choose another name, or another place with --dir');
  }
  const files = templateFiles(lang, { name, heimdall: path.resolve(options.heimdall ?? HEIMDALL_ROOT) });
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content, { flag: 'wx' });
  }
  return { dir, lang, files: Object.keys(files) };
}

export function formatNewPlugin(r: NewPluginResult, cwd = process.cwd()): string {
  const rel = path.relative(cwd, r.dir) || '.';
  const name = path.basename(r.dir);
  return [
    `created ${rel}/ (${r.lang}): ${r.files.join(', ')}`,
    '',
    'next:',
    `  cd ${rel} && make && make test          # build ${name}.so offline, run its unit tests`,
    `  heimdall plugin test ${path.join(rel, `${name}.so`)}      # run its hooks on sample requests, no gateway needed`,
    `  add {"path": "${path.join(rel, name)}"} to "plugins" in config.json, then heimdall start`,
  ].join('\n');
}
