/**
 * The plugin templates of `heimdall plugin new`: one small working plugin per language, in the layout of the
 * repository's examples, with a unit test, a Makefile and a README. Every template does the same two things, so a
 * new author sees the two shapes most plugins take:
 *
 *   PreHook   refuses (403) a request that mentions the configured "block_word" (default "forbidden"): a short-circuit;
 *   PostHook  tags each answer with a member named after the plugin, {"<name>": {"checked": true}}: a change.
 *
 * Builds are offline: C needs only the compiler; Go takes the SDK from this checkout through a replace directive
 * (GOPROXY=off); Rust takes it as a path dependency, and its crates from Debian's packages when they are installed.
 */
import { cTemplate } from './c.js';
import { goTemplate } from './go.js';
import { rustTemplate } from './rust.js';

export type TemplateLanguage = 'c' | 'go' | 'rust';
export const TEMPLATE_LANGUAGES: readonly TemplateLanguage[] = ['c', 'go', 'rust'];

export interface TemplateInput {
  /** The plugin's name: what GetName returns, the folder and the output file (NAME.so). */
  name: string;
  /** The Heimdall checkout (or installed package) whose header and SDKs the plugin builds against: absolute. */
  heimdall: string;
}

/** Relative path -> file content. */
export type TemplateFiles = Record<string, string>;

export function templateFiles(lang: TemplateLanguage, input: TemplateInput): TemplateFiles {
  switch (lang) {
    case 'c': return cTemplate(input);
    case 'go': return goTemplate(input);
    case 'rust': return rustTemplate(input);
  }
}

/** `my-plugin` as an identifier: `my_plugin`. */
export function snake(name: string): string {
  return name.replace(/[-.]/g, '_');
}

/** The lines every Makefile starts with: where Heimdall is, and the platform's library extension. */
export function makeHeader(heimdall: string): string {
  return `# HEIMDALL is the Heimdall checkout this plugin builds against (its header and SDKs): make HEIMDALL=/path to change.
HEIMDALL ?= ${heimdall}
EXT := $(if $(filter Darwin,$(shell uname -s)),dylib,so)
`;
}

/** The README section every template shares: load it, try it, test it offline. */
export function readmeUsage(name: string, lang: TemplateLanguage): string {
  const test = lang === 'c' ? 'make test' : lang === 'go' ? 'make test          # go test' : 'make test          # cargo test';
  return `## Build and test

\`\`\`sh
make               # builds ${name}.so (${name}.dylib on macOS), offline
${test}
\`\`\`

## Load it

In the gateway's \`config.json\` (a path without extension gets \`.so\` or \`.dylib\`; relative paths are resolved
against the directory of \`config.json\`):

\`\`\`json
"plugins": [{ "path": "./${name}/${name}", "config": { "block_word": "forbidden" } }]
\`\`\`

## Try it without a gateway

\`heimdall plugin test\` runs the hooks of the built file on sample requests, responses and stream chunks, offline,
and prints what each hook got, answered and how long it took. Expectations make it a check for your CI:

\`\`\`sh
heimdall plugin inspect ./${name}.so                      # what the file is, and whether the gateway can load it
heimdall plugin test ./${name}.so                         # every hook on built-in samples
heimdall plugin test ./${name}.so --plugin-config '{"block_word":"hello"}' \\
  --expect 'prehook=short-circuit:403' --expect 'posthook=modify'
\`\`\`

## What it does

- **PreHook** refuses a request that mentions the configured \`block_word\` (default \`forbidden\`) with a 403, before
  the provider is called: a short-circuit.
- **PostHook** adds \`"${name}": {"checked": true}\` to every answer: a change to the response.

Change both to what your plugin needs. docs/writing-plugins.md in the Heimdall repository explains every hook, and
docs/abi.md the contract behind them.
`;
}
