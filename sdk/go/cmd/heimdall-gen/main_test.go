package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
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
