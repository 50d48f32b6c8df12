// Command heimdall-gen writes heimdall_exports.go, the file that exports a Go plugin's C symbols.
//
// cgo allows //export only in package main, so the exports cannot live in the SDK. heimdall-gen reads the plugin's
// package, finds which hook methods it defines (TransportInterceptor, PreHook, PostHook, StreamChunkHook), and
// exports GetName, Init and Cleanup plus exactly those hooks (the SDK's cabi package defines the other two required
// exports in C). The gateway skips a hook a plugin does not export at no cost, which matters for StreamChunkHook,
// called once per streamed chunk. A Concurrency method (heimdall.Concurrent) adds heimdall_plugin_concurrency
// (ABI 1.1), which lets the gateway make several calls at once; without it that symbol is not exported, and the
// gateway makes one call at a time. A package that calls the SDK's host services (heimdall.Log, heimdall.KV,
// heimdall.NewCounter, ctx.State(), ...) also gets heimdall_plugin_set_host (ABI 1.2), through which the gateway
// hands them over; other packages' files are as they were.
//
// Run it from the plugin's directory, usually through a go:generate line in the plugin's main file:
//
//	//go:generate go run github.com/heimdall-gateway/heimdall/sdk/go/cmd/heimdall-gen
//
// Detection is by method name. -hooks names the hooks (and Concurrency) explicitly instead, for methods a plugin gets
// from an embedded type of another package. Whatever is exported, the SDK checks at Init that it matches the hook interfaces the
// plugin implements, so a stale file or a wrong method signature fails at start-up with a clear message.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
)

// hooks are the optional exports, by method name, in the order they are written: the four hooks, Concurrency for
// heimdall_plugin_concurrency, and Host for heimdall_plugin_set_host (ABI 1.2), which is not a method: it is written
// when the package uses the host services (see usesHost).
var hooks = []string{"TransportInterceptor", "PreHook", "PostHook", "StreamChunkHook", "Concurrency", "Host"}

// hostFuncs are the SDK's host-service functions: a package that calls one of them (or a State method) gets
// heimdall_plugin_set_host, through which the gateway hands the services over. Other plugins' generated files stay
// exactly as they were before ABI 1.2.
var hostFuncs = map[string]bool{"Log": true, "Logf": true, "KV": true, "NewCounter": true, "NewHistogram": true,
	"RequireHost": true, "HostAvailable": true, "CurrentHost": true}

const sdkPath = "github.com/heimdall-gateway/heimdall/sdk/go"

func main() {
	dir := flag.String("dir", ".", "the plugin's package directory")
	outName := flag.String("o", "heimdall_exports.go", "the file to write, relative to -dir")
	hookList := flag.String("hooks", "", "comma-separated hooks to export instead of detecting them "+
		"(TransportInterceptor,PreHook,PostHook,StreamChunkHook; Concurrency for heimdall_plugin_concurrency; Host for "+
		"heimdall_plugin_set_host)")
	flag.Parse()

	if err := run(*dir, *outName, *hookList); err != nil {
		fmt.Fprintln(os.Stderr, "heimdall-gen:", err)
		os.Exit(1)
	}
}

func run(dir, outName, hookList string) error {
	var found []string
	var err error
	if hookList != "" {
		found, err = parseHookList(hookList)
	} else {
		found, err = detectHooks(dir, outName)
	}
	if err != nil {
		return err
	}
	src, err := generate(found)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, outName), src, 0o644)
}

func parseHookList(list string) ([]string, error) {
	want := map[string]bool{}
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" || h == "Init" || h == "Cleanup" { // always exported
			continue
		}
		if !contains(hooks, h) {
			return nil, fmt.Errorf("unknown hook %q; the hooks are %s", h, strings.Join(hooks, ", "))
		}
		want[h] = true
	}
	var out []string
	for _, h := range hooks {
		if want[h] {
			out = append(out, h)
		}
	}
	return out, nil
}

// detectHooks parses the package in dir (without its tests and the generated file) and returns the hooks (and
// Concurrency) it defines methods for.
func detectHooks(dir, outName string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	defined := map[string]bool{}
	files := 0
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || name == outName {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		if f.Name.Name != "main" {
			return nil, fmt.Errorf("%s is in package %s; a plugin must be package main", name, f.Name.Name)
		}
		files++
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv != nil {
				defined[fn.Name.Name] = true
			}
		}
		if usesHost(f) {
			defined["Host"] = true
		}
	}
	if files == 0 {
		return nil, errors.New("no Go files in " + dir)
	}
	var out []string
	for _, h := range hooks {
		if defined[h] {
			out = append(out, h)
		}
	}
	return out, nil
}

// usesHost reports whether a file calls the SDK's host services: one of hostFuncs through the SDK's import name,
// or a method called State with no arguments (ctx.State(); a State method of another type only costs an export).
func usesHost(f *ast.File) bool {
	sdk := ""
	for _, imp := range f.Imports {
		if strings.Trim(imp.Path.Value, "`\"") == sdkPath {
			sdk = "heimdall"
			if imp.Name != nil {
				sdk = imp.Name.Name
			}
		}
	}
	if sdk == "" {
		return false
	}
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok && x.Name == sdk && hostFuncs[n.Sel.Name] {
				found = true
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "State" && len(n.Args) == 0 {
				found = true
			}
		}
		return !found
	})
	return found
}

// signatures are the exports' C-side parameter lists and the cabi call that serves each.
var signatures = map[string]struct{ params, call string }{
	"TransportInterceptor": {
		"ctx *C.uint8_t, ctxLen C.size_t, http *C.uint8_t, httpLen C.size_t,\n\tbody *C.uint8_t, bodyLen C.size_t, " +
			"out unsafe.Pointer",
		"cabi.TransportInterceptor(unsafe.Pointer(ctx), uintptr(ctxLen), unsafe.Pointer(http),\n\t\t" +
			"uintptr(httpLen), unsafe.Pointer(body), uintptr(bodyLen), out)",
	},
	"PreHook": {
		"ctx *C.uint8_t, ctxLen C.size_t, req *C.uint8_t, reqLen C.size_t, out unsafe.Pointer",
		"cabi.PreHook(unsafe.Pointer(ctx), uintptr(ctxLen), unsafe.Pointer(req), uintptr(reqLen), out)",
	},
	"PostHook": {
		"ctx *C.uint8_t, ctxLen C.size_t, resp *C.uint8_t, respLen C.size_t,\n\terrObj *C.uint8_t, errLen C.size_t, " +
			"out unsafe.Pointer",
		"cabi.PostHook(unsafe.Pointer(ctx), uintptr(ctxLen), unsafe.Pointer(resp), uintptr(respLen),\n\t\t" +
			"unsafe.Pointer(errObj), uintptr(errLen), out)",
	},
	"StreamChunkHook": {
		"ctx *C.uint8_t, ctxLen C.size_t, chunk *C.uint8_t, chunkLen C.size_t,\n\tout unsafe.Pointer",
		"cabi.StreamChunkHook(unsafe.Pointer(ctx), uintptr(ctxLen), unsafe.Pointer(chunk), uintptr(chunkLen),\n\t\tout)",
	},
}

// concurrencyExport is heimdall_plugin_concurrency, written when the plugin has a Concurrency method. It is a Go
// export, not C: a call into Go waits for the plugin's init functions (heimdall.Register) to have run.
const concurrencyExport = `
//export heimdall_plugin_concurrency
func heimdall_plugin_concurrency() C.uint32_t { return C.uint32_t(cabi.Concurrency()) }
`

// hostExport is heimdall_plugin_set_host (ABI 1.2), written when the plugin uses the host services: the gateway
// calls it before Init with its table of services, which the SDK's functions then call through.
const hostExport = `
//export heimdall_plugin_set_host
func heimdall_plugin_set_host(host unsafe.Pointer) { cabi.SetHost(host) }
`

const header = `// Code generated by heimdall-gen. DO NOT EDIT.

// This file exports the plugin's C symbols (native/include/heimdall_plugin.h). cgo allows //export only in package
// main, so it lives here; the SDK's cabi package does the work, and defines heimdall_plugin_abi_version and
// heimdall_plugin_free in C. Re-run go generate after adding or removing a hook.

package main

// #include <stddef.h>
// #include <stdint.h>
import "C"

import (
	"unsafe"

	"github.com/heimdall-gateway/heimdall/sdk/go/cabi"
)

func init() { cabi.DeclareExports(%s) }

//export GetName
func GetName() *C.char { return (*C.char)(cabi.Name()) }

//export Cleanup
func Cleanup() { cabi.Cleanup() }

//export Init
func Init(config *C.uint8_t, configLen C.size_t, out unsafe.Pointer) C.int32_t {
	return C.int32_t(cabi.Init(unsafe.Pointer(config), uintptr(configLen), out))
}
`

// generate returns the source of heimdall_exports.go exporting the given hooks.
func generate(exported []string) ([]byte, error) {
	quoted := make([]string, len(exported))
	for i, h := range exported {
		quoted[i] = fmt.Sprintf("%q", h)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, header, strings.Join(quoted, ", "))
	for _, h := range exported {
		if h == "Concurrency" {
			b.WriteString(concurrencyExport)
			continue
		}
		if h == "Host" {
			b.WriteString(hostExport)
			continue
		}
		sig := signatures[h]
		fmt.Fprintf(&b, "\n//export %s\nfunc %s(%s) C.int32_t {\n\treturn C.int32_t(%s)\n}\n", h, h, sig.params, sig.call)
	}
	b.WriteString("\n// main is required by -buildmode=c-shared and never runs.\nfunc main() {}\n")
	return format.Source(b.Bytes())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
