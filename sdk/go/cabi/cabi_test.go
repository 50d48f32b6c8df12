package cabi

import (
	"strings"
	"testing"
	"unsafe"

	heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
)

type echo struct{}

func (echo) Name() string { return "echo" }
func (echo) PreHook(_ *heimdall.Context, in *heimdall.Input[heimdall.Request]) (heimdall.PreHookResult, error) {
	if len(in.Raw()) == 0 {
		return heimdall.Continue(), nil
	}
	return heimdall.ModifiedRequest(in.Raw()), nil
}

func init() { heimdall.Register(echo{}) }

// call runs PreHook the way the host does: pointers and lengths in, a zeroed heimdall_buf_t out, then a copy of
// the output and heimdall_plugin_free.
func call(t *testing.T, ctx, req []byte, reqLen uintptr) (int32, string) {
	t.Helper()
	var out buf
	status := PreHook(ptr(ctx), uintptr(len(ctx)), ptr(req), reqLen, unsafe.Pointer(&out))
	if out.data == nil {
		return status, ""
	}
	text := string(unsafe.Slice((*byte)(out.data), out.len))
	Free(out.data, out.len)
	return status, text
}

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func TestOutputIsCMemoryTheHostFrees(t *testing.T) {
	req := []byte(`{"model":"m"}`)
	status, out := call(t, []byte(`{}`), req, uintptr(len(req)))
	if status != heimdall.StatusOK || out != `{"request":{"model":"m"}}` {
		t.Fatalf("got %d %q", status, out)
	}
	if status, out := call(t, nil, nil, 0); status != heimdall.StatusOK || out != "" {
		t.Fatalf("empty input: got %d %q", status, out)
	}
}

func TestPanicsInTheSDKBecomeAFailureStatus(t *testing.T) {
	// A length no allocation can satisfy makes copying the input panic, before any plugin code runs.
	status, out := call(t, nil, []byte(`x`), 1<<62)
	if status != heimdall.StatusError || !strings.HasPrefix(out, "heimdall plugin: runtime error: makeslice") {
		t.Fatalf("got %d %q", status, out)
	}
}

func TestABIVersion(t *testing.T) {
	if abiVersion() != heimdall.ABIVersion {
		t.Fatalf("heimdall_plugin_abi_version returns %#x, heimdall.ABIVersion is %#x", abiVersion(), heimdall.ABIVersion)
	}
}

func TestNameIsAStableCString(t *testing.T) {
	p := Name()
	if p == nil || p != Name() {
		t.Fatal("Name should return the same non-nil pointer every time")
	}
	var b []byte
	for i := uintptr(0); ; i++ {
		c := *(*byte)(unsafe.Add(p, i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	if string(b) != "echo" {
		t.Fatalf("name %q", b)
	}
}
