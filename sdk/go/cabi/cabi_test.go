package cabi

import (
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
)

type echo struct{}

func (echo) Name() string { return "echo" }
func (echo) PreHook(_ *heimdall.Context, in *heimdall.Input[heimdall.Request]) (heimdall.PreHookResult, error) {
	if len(in.Raw()) == 0 {
		return heimdall.PreHookResult{}, nil
	}
	return heimdall.PreHookResult{Request: in.Raw()}, nil
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
	if abiVersion() != 0x10002 {
		t.Fatalf("heimdall_plugin_abi_version returns %#x, want 0x10002 (ABI 1.2)", abiVersion())
	}
}

// The SDK implements the ABI of the repository's header; outside the repository there is nothing to compare with.
func TestABIVersionMatchesTheHeader(t *testing.T) {
	header, err := os.ReadFile(filepath.Join("..", "..", "..", "native", "include", "heimdall_plugin.h"))
	if os.IsNotExist(err) {
		t.Skip("native/include/heimdall_plugin.h is not beside the SDK")
	}
	if err != nil {
		t.Fatal(err)
	}
	version := func(part string) uint32 {
		m := regexp.MustCompile(`#define HEIMDALL_ABI_VERSION_` + part + ` (\d+)`).FindSubmatch(header)
		if m == nil {
			t.Fatalf("the header has no HEIMDALL_ABI_VERSION_%s", part)
		}
		n, _ := strconv.ParseUint(string(m[1]), 10, 16)
		return uint32(n)
	}
	if want := version("MAJOR")<<16 | version("MINOR"); abiVersion() != want {
		t.Fatalf("heimdall_plugin_abi_version returns %#x, the header says %#x", abiVersion(), want)
	}
}

type concurrentEcho struct {
	echo
	n uint32
}

func (c concurrentEcho) Concurrency() uint32 { return c.n }

func TestConcurrency(t *testing.T) {
	if n := Concurrency(); n != 1 {
		t.Fatalf("without heimdall.Concurrent: %d, want 1", n)
	}
	heimdall.Register(concurrentEcho{n: 64})
	defer heimdall.Register(echo{})
	if n := Concurrency(); n != 64 {
		t.Fatalf("with Concurrency() 64: %d", n)
	}
}

// With heimdall.Concurrent the host calls hooks from several threads at once: the SDK's own work must not mix them.
func TestConcurrentCallsFromManyThreads(t *testing.T) {
	const threads, calls = 16, 200
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := 0; i < threads; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			runtime.LockOSThread() // one OS thread per caller, as the host's worker threads
			defer runtime.UnlockOSThread()
			for j := 0; j < calls; j++ {
				req := []byte(`{"model":"m` + strconv.Itoa(i) + `-` + strconv.Itoa(j) + `"}`)
				status, out := call(t, []byte(`{}`), req, uintptr(len(req)))
				if status != heimdall.StatusOK || out != `{"request":`+string(req)+`}` {
					bad.Add(1)
				}
			}
		}(i)
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d of %d concurrent calls returned the wrong output", n, threads*calls)
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
