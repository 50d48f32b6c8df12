package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// heimdall_plugin_set_host is exported exactly when the package uses the host services, so the generated file of a
// plugin that does not stays as it was before ABI 1.2.
func TestHostExportOnlyWhenUsed(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []string
	}{
		"no services": {`package main
import heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
type p struct{}
func (p) PreHook(ctx *heimdall.Context, in *heimdall.Input[heimdall.Request]) (heimdall.PreHookResult, error) {
	return heimdall.PreHookResult{}, nil
}`, []string{"PreHook"}},
		"kv": {`package main
import "github.com/heimdall-gateway/heimdall/sdk/go"
func f() { heimdall.KV().Get("k") }`, []string{"Host"}},
		"renamed import, a counter": {`package main
import hd "github.com/heimdall-gateway/heimdall/sdk/go"
var c, _ = hd.NewCounter("c", "h")`, []string{"Host"}},
		"state only": {`package main
import heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
func f(ctx *heimdall.Context) { ctx.State().Get("k") }`, []string{"Host"}},
		"another package's KV": {`package main
import other "example.com/kv"
func f() { other.KV() }`, nil},
	}
	for name, c := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(c.src), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := detectHooks(dir, "heimdall_exports.go")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
	src, err := generate([]string{"PreHook", "Host"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"//export heimdall_plugin_set_host", "cabi.SetHost(host)", `cabi.DeclareExports("PreHook", "Host")`} {
		if !bytes.Contains(src, []byte(want)) {
			t.Errorf("generated file lacks %s", want)
		}
	}
	plain, _ := generate([]string{"PreHook"})
	if bytes.Contains(plain, []byte("set_host")) {
		t.Error("a plugin without services gets heimdall_plugin_set_host")
	}
	if hooks, err := parseHookList("PreHook,Host"); err != nil || !reflect.DeepEqual(hooks, []string{"PreHook", "Host"}) {
		t.Errorf("-hooks PreHook,Host: %v %v", hooks, err)
	}
}
