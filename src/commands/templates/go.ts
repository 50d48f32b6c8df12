/** The Go template: a main package built with -buildmode=c-shared, its generated exports, a go test, a Makefile. */
import { makeHeader, readmeUsage, type TemplateFiles, type TemplateInput } from './index.js';

const SDK = 'github.com/heimdall-gateway/heimdall/sdk/go';

export function goTemplate({ name, heimdall }: TemplateInput): TemplateFiles {
  return {
    'go.mod': `module example.com/${name}

go 1.19

require ${SDK} v0.0.0-00010101000000-000000000000

// The SDK comes from the Heimdall checkout: nothing is downloaded, so the build works offline (GOPROXY=off).
replace ${SDK} => ${heimdall}/sdk/go
`,
    'main.go': `// Command ${name} is a Heimdall plugin: PreHook refuses requests that mention the configured word; PostHook tags
// every answer. Build it with make (go build -buildmode=c-shared); the gateway loads the .so.
package main

//go:generate go run ${SDK}/cmd/heimdall-gen

import (
	"bytes"
	"errors"

	heimdall "${SDK}"
)

type plugin struct{ blockWord []byte }

func init() { heimdall.Register(&plugin{}) }

func (p *plugin) Name() string { return "${name}" }

// Init gets the "config" object from config.json: {"block_word": "forbidden"}.
func (p *plugin) Init(config []byte) error {
	cfg := struct {
		BlockWord string \`json:"block_word"\`
	}{BlockWord: "forbidden"} // the default: DecodeConfig only overwrites what the config sets
	if err := heimdall.DecodeConfig(config, &cfg); err != nil { // unknown keys are refused
		return err
	}
	if cfg.BlockWord == "" {
		return errors.New(\`bad config: "block_word" must not be empty\`)
	}
	p.blockWord = []byte(cfg.BlockWord)
	return nil
}

func (p *plugin) PreHook(_ *heimdall.Context, req *heimdall.Input[heimdall.Request]) (heimdall.PreHookResult, error) {
	if !bytes.Contains(req.Raw(), p.blockWord) {
		return heimdall.PreHookResult{}, nil // continue: nothing is handed back, the gateway's fast path
	}
	return heimdall.PreHookResult{Error: &heimdall.Error{
		StatusCode:     403,
		Message:        "request blocked by ${name}",
		AllowFallbacks: heimdall.Bool(false),
	}}, nil
}

func (p *plugin) PostHook(_ *heimdall.Context, resp *heimdall.Input[heimdall.Response],
	_ *heimdall.Input[heimdall.Error]) (heimdall.PostHookResult, error) {
	if resp.Empty() {
		return heimdall.PostHookResult{}, nil // an error: left as it is
	}
	r, err := resp.Decode()
	if err != nil {
		return heimdall.PostHookResult{}, err // a plugin failure: logged, and the answer goes on unchanged
	}
	r.SetExtra("${name}", map[string]bool{"checked": true}) // a member the SDK's types don't name
	return heimdall.PostHookResult{Response: r}, nil
}
`,
    'heimdall_exports.go': goExports(),
    'main_test.go': `package main

import (
	"strings"
	"testing"

	heimdall "${SDK}"
)

// These tests go through heimdall.Call*, so they see exactly the JSON the gateway gets.

func TestInit(t *testing.T) {
	if status, out := heimdall.CallInit([]byte(\`{"block_wrd": "x"}\`)); status == heimdall.StatusOK {
		t.Fatalf("an unknown key was accepted: %s", out)
	}
	if status, out := heimdall.CallInit([]byte(\`{}\`)); status != heimdall.StatusOK {
		t.Fatalf("Init({}): %s", out)
	}
}

func TestPreHook(t *testing.T) {
	heimdall.CallInit([]byte(\`{}\`))
	ctx := []byte(\`{"request_id":"r1"}\`)
	if status, out := heimdall.CallPreHook(ctx, []byte(\`{"model":"m","messages":[{"role":"user","content":"hi"}]}\`)); status != heimdall.StatusOK || len(out) != 0 {
		t.Fatalf("an ordinary request: status %d, output %s (want none)", status, out)
	}
	status, out := heimdall.CallPreHook(ctx, []byte(\`{"model":"m","messages":[{"role":"user","content":"a forbidden thing"}]}\`))
	if status != heimdall.StatusOK || !strings.Contains(string(out), \`"status_code":403\`) {
		t.Fatalf("a request with the word: status %d, output %s (want a 403)", status, out)
	}
}

func TestPostHook(t *testing.T) {
	heimdall.CallInit([]byte(\`{}\`))
	status, out := heimdall.CallPostHook([]byte(\`{}\`), []byte(\`{"id":"x","choices":[]}\`), nil)
	if status != heimdall.StatusOK || !strings.Contains(string(out), \`"${name}":{"checked":true}\`) {
		t.Fatalf("status %d, output %s (want the tag)", status, out)
	}
	if status, out := heimdall.CallPostHook([]byte(\`{}\`), nil, []byte(\`{"message":"x"}\`)); status != heimdall.StatusOK || len(out) != 0 {
		t.Fatalf("an error: status %d, output %s (want none)", status, out)
	}
}
`,
    Makefile: `${makeHeader(heimdall)}# Offline: the SDK comes from HEIMDALL through go.mod's replace; any download attempt fails at once.
export GOPROXY := off
export GOFLAGS :=
export CGO_ENABLED := 1

all: ${name}.$(EXT)

# go generate rewrites heimdall_exports.go (the C exports) from the hook methods main.go defines.
${name}.$(EXT): $(wildcard *.go) go.mod
\tgo generate ./...
\tgo build -buildmode=c-shared -trimpath -o $@ .
\trm -f ${name}.h

test:
\tgo test ./...

clean:
\trm -f ${name}.so ${name}.dylib ${name}.h

.PHONY: all test clean
`,
    'README.md': `# ${name}

A Heimdall plugin in Go, made by \`heimdall plugin new ${name} --lang go\`.

- \`main.go\`: the plugin, with the Go SDK;
- \`heimdall_exports.go\`: the C exports, written by \`go generate\` (heimdall-gen) from the hook methods \`main.go\`
  defines; \`make\` runs it, commit it;
- \`main_test.go\`: its unit tests, through the SDK's \`heimdall.Call*\` helpers;
- \`go.mod\`: takes the SDK from the Heimdall checkout (\`replace\`), so nothing is downloaded; change the path if
  the checkout moves.

The gateway loads a \`-buildmode=c-shared\` library. A \`-buildmode=plugin\` file (Go's own plugin format, as Bifrost
uses) is refused: only a Go program can load one.

${readmeUsage(name, 'go')}`,
    '.gitignore': `${name}.so\n${name}.dylib\n${name}.h\n`,
  };
}

/** What heimdall-gen writes for Init, PreHook and PostHook (a test checks that go generate leaves it unchanged). */
function goExports(): string {
  return `// Code generated by heimdall-gen. DO NOT EDIT.

// This file exports the plugin's C symbols (native/include/heimdall_plugin.h). cgo allows //export only in package
// main, so it lives here; the SDK's cabi package does the work, and defines heimdall_plugin_abi_version and
// heimdall_plugin_free in C. Re-run go generate after adding or removing a hook.

package main

// #include <stddef.h>
// #include <stdint.h>
import "C"

import (
	"unsafe"

	"${SDK}/cabi"
)

func init() { cabi.DeclareExports("PreHook", "PostHook") }

//export GetName
func GetName() *C.char { return (*C.char)(cabi.Name()) }

//export Cleanup
func Cleanup() { cabi.Cleanup() }

//export Init
func Init(config *C.uint8_t, configLen C.size_t, out unsafe.Pointer) C.int32_t {
	return C.int32_t(cabi.Init(unsafe.Pointer(config), uintptr(configLen), out))
}

//export PreHook
func PreHook(ctx *C.uint8_t, ctxLen C.size_t, req *C.uint8_t, reqLen C.size_t, out unsafe.Pointer) C.int32_t {
	return C.int32_t(cabi.PreHook(unsafe.Pointer(ctx), uintptr(ctxLen), unsafe.Pointer(req), uintptr(reqLen), out))
}

//export PostHook
func PostHook(ctx *C.uint8_t, ctxLen C.size_t, resp *C.uint8_t, respLen C.size_t,
	errObj *C.uint8_t, errLen C.size_t, out unsafe.Pointer) C.int32_t {
	return C.int32_t(cabi.PostHook(unsafe.Pointer(ctx), uintptr(ctxLen), unsafe.Pointer(resp), uintptr(respLen),
		unsafe.Pointer(errObj), uintptr(errLen), out))
}

// main is required by -buildmode=c-shared and never runs.
func main() {}
`;
}
