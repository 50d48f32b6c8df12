package heimdall

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func withHost(t *testing.T) *MemoryHost {
	t.Helper()
	h := NewMemoryHost()
	SetHost(h)
	t.Cleanup(func() { SetHost(nil) })
	return h
}

func TestRequestHandle(t *testing.T) {
	for raw, want := range map[string]uint64{
		`{"request_handle":17,"request_id":"a"}`:  17,
		`{"request_id":"a","request_handle":42}`:  42, // written by hand: anywhere
		`{"request_id":"a"}`:                      0,
		`{"request_handle":18446744073709551615}`: 18446744073709551615,
		``: 0,
		`{"request_handle":"7","request_id":"a"}`: 0,
		`{"request_handle": 9 ,"request_id":"a"}`: 9,
	} {
		if got := NewContext([]byte(raw)).RequestHandle(); got != want {
			t.Errorf("%s: %d, want %d", raw, got, want)
		}
	}
	var nilCtx *Context
	if nilCtx.RequestHandle() != 0 {
		t.Error("a nil context has no request")
	}
}

func TestWithoutHostEveryCallSaysWhy(t *testing.T) {
	SetHost(nil)
	_, err := KV().Get("k")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "HEIMDALL_E_UNAVAILABLE") ||
		!strings.Contains(err.Error(), "older than 1.2") || !strings.Contains(err.Error(), "go generate") {
		t.Fatalf("got %v", err)
	}
	if _, err := NewCounter("c", "h"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("counter: %v", err)
	}
	if err := RequireHost(); err == nil || !strings.Contains(err.Error(), "needs host services (ABI 1.2)") {
		t.Fatalf("RequireHost: %v", err)
	}
	Log(nil, LogInfo, "dropped, not a crash")
}

func TestKV(t *testing.T) {
	h := withHost(t)
	now := time.Unix(1000, 0)
	h.Now = func() time.Time { return now }
	kv := KV()
	if _, err := kv.Get("missing"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `kv get "missing"`) {
		t.Fatalf("missing: %v", err)
	}
	big := strings.Repeat("v", 1000) // larger than the first read buffer: read again at its length
	if err := kv.Set("k", []byte(big), time.Second); err != nil {
		t.Fatal(err)
	}
	if v, err := kv.Get("k"); err != nil || string(v) != big {
		t.Fatalf("get: %d bytes, %v", len(v), err)
	}
	now = now.Add(time.Second)
	if _, err := kv.Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired: %v", err)
	}
	if err := kv.Set("", []byte("x"), 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	if err := kv.Set(strings.Repeat("k", 513), []byte("x"), 0); !errors.Is(err, ErrLimit) ||
		!strings.Contains(err.Error(), "HEIMDALL_E_LIMIT") {
		t.Fatalf("long key: %v", err)
	}
	if err := kv.Set("k", []byte("x"), -time.Second); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative TTL: %v", err)
	}
	if err := kv.Set("empty", []byte{}, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := kv.Get("empty"); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("an empty value is a value: %q %v", v, err)
	}
	if err := kv.Delete("empty"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get("empty"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}

	for i, want := range []int64{1, 2, 3} {
		if n, err := kv.Incr("n", 1, time.Minute); err != nil || n != want {
			t.Fatalf("incr %d: %d %v", i, n, err)
		}
	}
	if err := kv.Set("s", []byte("text"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Incr("s", 1, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("incr of text: %v", err)
	}

	if err := kv.CAS("lock", nil, []byte("a"), 0); err != nil {
		t.Fatalf("cas when absent: %v", err)
	}
	if err := kv.CAS("lock", nil, []byte("b"), 0); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "HEIMDALL_CONFLICT") {
		t.Fatalf("cas when present: %v", err)
	}
	if err := kv.CAS("lock", []byte("a"), []byte("c"), 0); err != nil {
		t.Fatalf("cas on the expected value: %v", err)
	}
	if v, _ := kv.Get("lock"); string(v) != "c" {
		t.Fatalf("after cas: %q", v)
	}
}

func TestTTLMilliseconds(t *testing.T) {
	for ttl, want := range map[time.Duration]uint64{0: 0, time.Nanosecond: 1, time.Millisecond: 1, 1500 * time.Microsecond: 2, time.Minute: 60000} {
		if got, err := ttlMs("op", "k", ttl); err != nil || got != want {
			t.Errorf("%v: %d %v, want %d", ttl, got, err, want)
		}
	}
}

func TestState(t *testing.T) {
	h := withHost(t)
	ctx := NewContext([]byte(`{"request_handle":5,"request_id":"r"}`))
	if _, err := ctx.State().Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty state: %v", err)
	}
	if err := ctx.State().Set("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// Another hook of the same request: a new Context, the same handle.
	if v, err := NewContext([]byte(`{"request_handle":5}`)).State().Get("k"); err != nil || string(v) != "v" {
		t.Fatalf("the next hook: %q %v", v, err)
	}
	if _, err := NewContext([]byte(`{"request_handle":6}`)).State().Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another request: %v", err)
	}
	if err := NewContext([]byte(`{}`)).State().Set("k", nil); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "no request_handle") {
		t.Fatalf("no handle: %v", err)
	}
	if err := ctx.State().Set("big", make([]byte, 64<<10)); !errors.Is(err, ErrLimit) {
		t.Fatalf("over the bound: %v", err)
	}
	if err := ctx.State().Delete("k"); err != nil || h.StateKeys(5) != 0 {
		t.Fatalf("delete: %v, %d keys", err, h.StateKeys(5))
	}
}

func TestMetricsAndLog(t *testing.T) {
	h := withHost(t)
	c, err := NewCounter("hits_total", "Hits.", "model", "outcome")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Inc("gpt", "hit"); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(2, "gpt", "hit"); err != nil {
		t.Fatal(err)
	}
	if v, n := h.MetricValue("hits_total", "gpt\nhit"); v != 3 || n != 2 {
		t.Fatalf("counter: %v over %d records", v, n)
	}
	if err := c.Inc("gpt"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "1 label values for 2 labels") {
		t.Fatalf("wrong label count: %v", err)
	}
	if err := c.Add(-1, "gpt", "hit"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative: %v", err)
	}
	hist, err := NewHistogram("latency_seconds", "Latency.", []float64{0.1, 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := hist.Observe(0.5); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCounter("bad-name", "h"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `metric define "bad-name"`) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := NewCounter("c2", "h", "a,b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("label with a comma: %v", err)
	}
	var never *Counter
	if err := never.Inc(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nil counter: %v", err)
	}

	Log(NewContext([]byte(`{"request_handle":3}`)), LogWarn, "careful")
	Logf(nil, LogInfo, "n=%d", 4)
	if got := h.Logs(); len(got) != 2 || got[0] != (LogLine{3, LogWarn, "careful"}) || got[1] != (LogLine{0, LogInfo, "n=4"}) {
		t.Fatalf("logs: %+v", got)
	}
}
