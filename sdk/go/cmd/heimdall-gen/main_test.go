package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDetectHooks(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.go":             "package main\ntype p struct{}\nfunc (p) Name() string { return \"p\" }\nfunc (*p) PreHook() {}\n",
		"more.go":             "package main\nfunc (*p) StreamChunkHook() {}\nfunc PostHook() {} // not a method: not a hook\n",
		"x_test.go":           "package main\nfunc (*p) TransportInterceptor() {}\n",
		"heimdall_exports.go": "package main\nfunc (*p) PostHook() {}\n",
	})
	got, err := detectHooks(dir, "heimdall_exports.go")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PreHook", "StreamChunkHook"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	dir = writeFiles(t, map[string]string{
		"main.go": "package main\ntype p struct{}\nfunc (p) Name() string { return \"p\" }\nfunc (*p) PreHook() {}\n" +
			"func (p) Concurrency() uint32 { return 64 }\n",
	})
	got, err = detectHooks(dir, "heimdall_exports.go")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PreHook", "Concurrency"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("with a Concurrency method: got %v, want %v", got, want)
	}

	if _, err := detectHooks(writeFiles(t, map[string]string{"a.go": "package lib\n"}), "x.go"); err == nil ||
		!strings.Contains(err.Error(), "package main") {
		t.Fatalf("a non-main package: %v", err)
	}
}

func TestParseHookList(t *testing.T) {
	got, err := parseHookList("PostHook, Init,PreHook")
	if err != nil || !reflect.DeepEqual(got, []string{"PreHook", "PostHook"}) {
		t.Fatalf("%v %v", got, err)
	}
	got, err = parseHookList("Concurrency,PreHook")
	if err != nil || !reflect.DeepEqual(got, []string{"PreHook", "Concurrency"}) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := parseHookList("PreHooks"); err == nil {
		t.Fatal("unknown hook accepted")
	}
}

func TestGenerate(t *testing.T) {
	src, err := generate([]string{"PreHook"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"//export GetName",
		"//export Cleanup", "//export Init", "//export PreHook", `cabi.DeclareExports("PreHook")`, "func main() {}",
	} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("generated file lacks %s", want)
		}
	}
	if bytes.Contains(src, []byte("//export PostHook")) {
		t.Error("PostHook exported without being asked for")
	}
	// Without a Concurrency method the gateway makes one call at a time: heimdall_plugin_concurrency is not exported.
	if bytes.Contains(src, []byte("heimdall_plugin_concurrency")) {
		t.Error("heimdall_plugin_concurrency exported without a Concurrency method")
	}

	src, err = generate([]string{"PreHook", "Concurrency"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"//export heimdall_plugin_concurrency",
		"func heimdall_plugin_concurrency() C.uint32_t { return C.uint32_t(cabi.Concurrency()) }",
		`cabi.DeclareExports("PreHook", "Concurrency")`,
	} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("generated file lacks %s", want)
		}
	}
}

// hostC loads a plugin the way the gateway does and prints what the gateway would see of its version and
// concurrency ("absent" when heimdall_plugin_concurrency is not exported: one call at a time).
const hostC = `#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv) {
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  uint32_t (*version)(void) = (uint32_t (*)(void))dlsym(lib, "heimdall_plugin_abi_version");
  uint32_t (*concurrency)(void) = (uint32_t (*)(void))dlsym(lib, "heimdall_plugin_concurrency");
  printf("version %#x, concurrency ", version == NULL ? 0u : version());
  if (concurrency == NULL) printf("absent\n"); else printf("%u\n", concurrency());
  return 0;
}
`

// Generates, builds and loads two plugins, one of them with a Concurrency method, to check what the gateway sees.
func TestBuiltPluginsAsTheHostSeesThem(t *testing.T) {
	if testing.Short() {
		t.Skip("builds shared objects")
	}
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("native plugins are built on Linux and macOS only")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	ccOut, err := exec.Command(goTool, "env", "CC").Output()
	cc := strings.TrimSpace(string(ccOut))
	if err != nil || cc == "" {
		t.Skipf("no C compiler: %v", err)
	}
	sdk, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	host := filepath.Join(work, "host")
	if err := os.WriteFile(host+".c", []byte(hostC), 0o644); err != nil {
		t.Fatal(err)
	}
	// -ldl: glibc before 2.34 keeps dlopen in libdl.
	if out, err := exec.Command(cc, "-o", host, host+".c", "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}

	const plugin = "package main\n\nimport heimdall \"github.com/heimdall-gateway/heimdall/sdk/go\"\n\n" +
		"type p struct{}\n\nfunc init() { heimdall.Register(p{}) }\n\nfunc (p) Name() string { return \"p\" }\n"
	cases := []struct{ name, extra, want string }{
		{"serial", "", "version 0x10002, concurrency absent"},
		{"concurrent", "\nfunc (p) Concurrency() uint32 { return 64 }\n", "version 0x10002, concurrency 64"},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, map[string]string{
				"go.mod": "module example.com/p\n\ngo 1.19\n\nrequire github.com/heimdall-gateway/heimdall/sdk/go " +
					"v0.0.0-00010101000000-000000000000\n\nreplace github.com/heimdall-gateway/heimdall/sdk/go => " + sdk + "\n",
				"main.go": plugin + c.extra,
			})
			if err := run(dir, "heimdall_exports.go", ""); err != nil {
				t.Fatal(err)
			}
			lib := filepath.Join(dir, "p.so")
			build := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", lib, ".")
			build.Dir = dir
			build.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=", "CGO_ENABLED=1")
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			out, err := exec.Command(host, lib).CombinedOutput()
			if got := strings.TrimSpace(string(out)); err != nil || got != c.want {
				t.Fatalf("the host sees %q (%v), want %q", got, err, c.want)
			}
		})
	}
}

// The SDK's test plugin carries a generated file; it must be what heimdall-gen writes today.
func TestTestPluginExportsAreCurrent(t *testing.T) {
	dir := filepath.Join("..", "..", "internal", "testplugin")
	hooks, err := detectHooks(dir, "heimdall_exports.go")
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(hooks)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "heimdall_exports.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/testplugin/heimdall_exports.go is stale: run go generate ./... in sdk/go")
	}
}
