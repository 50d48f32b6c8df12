package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
)

// These tests go through heimdall.Call*, so they see exactly the JSON the gateway gets, with the SDK's in-memory
// host services standing in for the gateway's (one process's store, as the gateway's memory backend).

var memHost = heimdall.NewMemoryHost()

func TestMain(m *testing.M) {
	heimdall.SetHost(memHost)
	os.Exit(m.Run())
}

func initWith(t *testing.T, config string) {
	t.Helper()
	if status, out := heimdall.CallInit([]byte(config)); status != heimdall.StatusOK {
		t.Fatalf("Init(%s): %s", config, out)
	}
}

func TestConfig(t *testing.T) {
	initWith(t, `{}`)
	if r := thePlugin; r.cfg.RequestsPerMinute != 60 || r.cfg.Burst != 10 || r.header != "" {
		t.Fatalf("defaults: %+v", r.cfg)
	}
	initWith(t, `{"requests_per_minute": 6, "burst": 2, "key": "header:X-User", "max_keys": 5}`)
	if r := thePlugin; r.header != "x-user" || r.lim.maxKeys != 5 {
		t.Fatalf("config: %+v %q", r.cfg, r.header)
	}
	for config, want := range map[string]string{
		`{"requests_per_minute": 0}`:      "requests_per_minute must be a positive number",
		`{"burst": 0}`:                    "burst must be at least 1",
		`{"max_keys": -1}`:                "max_keys must be at least 1",
		`{"key": "ip"}`:                   `key must be "api_key" or "header:<name>"`,
		`{"key": "header:"}`:              `key must be "api_key" or "header:<name>"`,
		`{"key": "header:Authorization"}`: "does not show authorization to hooks",
		`{"requests_per_minut": 5}`:       `unknown field "requests_per_minut"`,
		`{"burst": "10"}`:                 "invalid config",
		`{"store": "redis"}`:              `store must be "shared" or "local"`,
	} {
		status, out := heimdall.CallInit([]byte(config))
		if status == heimdall.StatusOK || !strings.Contains(string(out), want) {
			t.Errorf("%s: got %d %q, want an error containing %q", config, status, out, want)
		}
	}
}

func transport(t *testing.T, headers map[string]string) string {
	t.Helper()
	meta, _ := json.Marshal(map[string]any{"method": "POST", "path": "/v1/chat/completions", "headers": headers})
	status, out := heimdall.CallTransportInterceptor([]byte(`{"request_id":"r"}`), meta, []byte(`{}`))
	if status != heimdall.StatusOK {
		t.Fatalf("TransportInterceptor: %s", out)
	}
	if len(out) == 0 {
		return ""
	}
	var action struct {
		Context map[string]string `json:"context"`
	}
	if err := json.Unmarshal(out, &action); err != nil {
		t.Fatal(err)
	}
	return action.Context[keyValue]
}

func pre(t *testing.T, ctx map[string]any) (allowed bool, errObj map[string]any, ctxOut map[string]any) {
	t.Helper()
	c, _ := json.Marshal(ctx)
	// The request is not valid JSON: the limiter must never parse it.
	status, out := heimdall.CallPreHook(c, []byte(`not parsed`))
	if status != heimdall.StatusOK {
		t.Fatalf("PreHook: %s", out)
	}
	if len(out) == 0 {
		return true, nil, nil
	}
	var action struct {
		Error   map[string]any `json:"error"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(out, &action); err != nil {
		t.Fatal(err)
	}
	return false, action.Error, action.Context
}

func TestAPIKeysAreHashedInTheTransport(t *testing.T) {
	initWith(t, `{}`)
	bearer := transport(t, map[string]string{"authorization": "Bearer sk-secret-1"})
	if len(bearer) != 64 || strings.Contains(bearer, "secret") {
		t.Fatalf("key %q should be a SHA-256 in hex", bearer)
	}
	if k := transport(t, map[string]string{"x-api-key": "sk-secret-1"}); k != bearer {
		t.Fatal("the same key by x-api-key should hash the same")
	}
	if k := transport(t, map[string]string{"api-key": "sk-secret-2"}); k == bearer || k == "" {
		t.Fatal("api-key header")
	}
	if k := transport(t, map[string]string{"user-agent": "x"}); k != "" {
		t.Fatal("no key, no context value")
	}
	initWith(t, `{"key": "header:x-user"}`)
	if k := transport(t, map[string]string{"authorization": "Bearer sk-secret-1"}); k != "" {
		t.Fatal("in header mode the transport does nothing")
	}
}

func TestLimitPerAPIKey(t *testing.T) {
	initWith(t, `{"requests_per_minute": 1, "burst": 2, "store": "local"}`)
	a := map[string]any{"request_id": "r", "headers": map[string]string{}, "values": map[string]string{keyValue: "aaaa"}}
	b := map[string]any{"request_id": "r", "headers": map[string]string{}, "values": map[string]string{keyValue: "bbbb"}}
	for i := 0; i < 2; i++ {
		if ok, e, _ := pre(t, a); !ok {
			t.Fatalf("request %d refused: %v", i+1, e)
		}
	}
	ok, e, ctx := pre(t, a)
	if ok {
		t.Fatal("third request allowed")
	}
	if e["status_code"] != float64(429) || e["type"] != "rate_limit_error" || e["code"] != "rate_limited" ||
		e["allow_fallbacks"] != false || e["retry_after"] != float64(60) || ctx["retry_after"] != float64(60) {
		t.Fatalf("error %v, context %v", e, ctx)
	}
	if !strings.Contains(e["message"].(string), "retry after 60 s") {
		t.Fatalf("message %q", e["message"])
	}
	if ok, _, _ := pre(t, b); !ok {
		t.Fatal("another key has its own budget")
	}
}

func TestRequestsWithoutAKeyShareABucket(t *testing.T) {
	initWith(t, `{"burst": 1, "key": "header:x-user"}`)
	anon := map[string]any{"headers": map[string]string{}}
	named := map[string]any{"headers": map[string]string{"x-user": "u1"}}
	if ok, _, _ := pre(t, anon); !ok {
		t.Fatal("first anonymous request refused")
	}
	if ok, _, _ := pre(t, map[string]any{}); ok {
		t.Fatal("a second request without the header should share the first's bucket")
	}
	if ok, _, _ := pre(t, named); !ok {
		t.Fatal("u1 has its own bucket")
	}
}

func TestSharedCounterPerMinute(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 50, 0, time.UTC)
	thePlugin.now = func() time.Time { return now }
	memHost.Now = thePlugin.now
	defer func() { thePlugin.now, memHost.Now = time.Now, time.Now }()
	initWith(t, `{"requests_per_minute": 3, "burst": 100, "key": "header:x-user"}`)
	limitedBefore, _ := memHost.MetricValue("decisions_total", "limited")
	u := map[string]any{"request_handle": 7, "headers": map[string]string{"x-user": "shared-1"}}
	for i := 0; i < 3; i++ {
		if ok, e, _ := pre(t, u); !ok {
			t.Fatalf("request %d refused: %v", i+1, e)
		}
	}
	ok, e, _ := pre(t, u)
	if ok || e["retry_after"] != float64(10) {
		t.Fatalf("the fourth request in the minute: allowed %v, %v (want refused until the minute ends, 10 s)", ok, e)
	}
	if v, _ := memHost.MetricValue("decisions_total", "limited"); v != limitedBefore+1 {
		t.Fatalf("decisions_total{outcome=limited} = %v", v)
	}
	now = now.Add(10 * time.Second) // the next minute: a new counter
	if ok, e, _ := pre(t, u); !ok {
		t.Fatalf("refused in the next minute: %v", e)
	}
}

func TestSharedNeedsTheHost(t *testing.T) {
	heimdall.SetHost(nil)
	defer heimdall.SetHost(memHost)
	status, out := heimdall.CallInit([]byte(`{}`))
	if status == heimdall.StatusOK || !strings.Contains(string(out), `set "store": "local"`) {
		t.Fatalf("on a gateway without host services: %d %s", status, out)
	}
	initWith(t, `{"store": "local"}`)
}
