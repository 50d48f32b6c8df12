// Command rate-limiter is a Heimdall plugin that limits each client to a number of requests per minute: counted in
// the gateway's shared store (one counter per client and minute, so the limit holds across worker processes and,
// with Redis, across gateways), with bursts shaped by a token bucket per key. See README.md.
package main

//go:generate go run github.com/heimdall-gateway/heimdall/sdk/go/cmd/heimdall-gen

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
)

// keyValue is the context value through which TransportInterceptor hands the hashed API key to PreHook.
const keyValue = "rate_limit_key"

// credentialHeaders are the headers the gateway strips from the hooks' context; only the transport sees them.
var credentialHeaders = []string{"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}

type config struct {
	RequestsPerMinute float64 `json:"requests_per_minute"`
	Burst             int     `json:"burst"`
	Key               string  `json:"key"` // "api_key" or "header:<name>"
	MaxKeys           int     `json:"max_keys"`
	Store             string  `json:"store"` // "shared" (the gateway's store, ABI 1.2) or "local" (this process)
}

// window is the shared counters' window: requests_per_minute is counted per calendar minute.
const window = time.Minute

type rateLimiter struct {
	mu     sync.Mutex // guards the fields against a re-Init; the limiter has its own lock
	cfg    config
	header string // the header to key on; "" keys on the API key
	lim    *limiter
	shared bool // count in the gateway's shared store
	now    func() time.Time
	// decisions counts allowed and limited requests in the gateway's /metrics (shared store only).
	decisions *heimdall.Counter
}

// thePlugin is the one instance this shared object serves.
var thePlugin = &rateLimiter{now: time.Now}

func init() { heimdall.Register(thePlugin) }

func (r *rateLimiter) Name() string { return "rate-limiter" }

func (r *rateLimiter) Init(raw []byte) error {
	cfg := config{RequestsPerMinute: 60, Burst: 10, Key: "api_key", MaxKeys: 100000, Store: "shared"}
	if err := heimdall.DecodeConfig(raw, &cfg); err != nil {
		return err
	}
	header, err := cfg.validate()
	if err != nil {
		return err
	}
	shared := cfg.Store == "shared"
	var decisions *heimdall.Counter
	if shared {
		// A gateway older than ABI 1.2 has no shared store: refuse, rather than silently limit per process.
		if !heimdall.HostAvailable() {
			return errors.New(`"store": "shared" (the default) counts in the gateway's shared store, which needs ` +
				`host services (ABI 1.2); this gateway did not provide them: it speaks an older ABI. Upgrade the ` +
				`gateway, or set "store": "local" to limit per gateway process`)
		}
		if decisions, err = heimdall.NewCounter("decisions_total", "Requests allowed and limited.", "outcome"); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cfg, r.header, r.shared, r.decisions = cfg, header, shared, decisions
	r.lim = newLimiter(cfg.RequestsPerMinute, cfg.Burst, cfg.MaxKeys, r.now)
	return nil
}

// validate checks the config and returns the header to key on ("" for the API key).
func (c *config) validate() (string, error) {
	if !(c.RequestsPerMinute > 0) || math.IsInf(c.RequestsPerMinute, 0) {
		return "", fmt.Errorf("requests_per_minute must be a positive number, got %v", c.RequestsPerMinute)
	}
	if c.Burst < 1 {
		return "", fmt.Errorf("burst must be at least 1, got %d", c.Burst)
	}
	if c.MaxKeys < 1 {
		return "", fmt.Errorf("max_keys must be at least 1, got %d", c.MaxKeys)
	}
	if c.Store != "shared" && c.Store != "local" {
		return "", fmt.Errorf(`store must be "shared" or "local", got %q`, c.Store)
	}
	if c.Key == "api_key" {
		return "", nil
	}
	name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(c.Key, "header:")))
	if !strings.HasPrefix(c.Key, "header:") || name == "" {
		return "", fmt.Errorf(`key must be "api_key" or "header:<name>", got %q`, c.Key)
	}
	for _, h := range credentialHeaders {
		if name == h {
			return "", fmt.Errorf(`key %q: the gateway does not show %s to hooks; use "key": "api_key" to limit per `+
				`API key`, c.Key, h)
		}
	}
	return name, nil
}

func (r *rateLimiter) state() (*limiter, string, config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lim, r.header, r.cfg
}

func (r *rateLimiter) sharedState() (bool, *heimdall.Counter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shared, r.decisions
}

// TransportInterceptor reads the caller's API key, which only the transport sees (the gateway strips credentials
// from the context of later hooks), and hands PreHook its SHA-256 instead: the raw key is never kept or passed on.
func (r *rateLimiter) TransportInterceptor(_ *heimdall.Context, req *heimdall.HTTPRequest) (
	heimdall.TransportResult, error) {
	if _, header, _ := r.state(); header != "" {
		return heimdall.TransportResult{}, nil
	}
	key := apiKey(req)
	if key == "" {
		return heimdall.TransportResult{}, nil
	}
	sum := sha256.Sum256([]byte(key))
	return heimdall.TransportResult{}.WithContext(keyValue, hex.EncodeToString(sum[:])), nil
}

// apiKey returns the request's API key: the bearer token, or the x-api-key or api-key header.
func apiKey(req *heimdall.HTTPRequest) string {
	if auth := strings.TrimSpace(req.Header("authorization")); auth != "" {
		if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			return strings.TrimSpace(auth[7:])
		}
		return auth
	}
	if key := req.Header("x-api-key"); key != "" {
		return key
	}
	return req.Header("api-key")
}

// PreHook spends a token of the request's bucket, or rejects the request with a 429 when there is none. It reads
// only the context, never the request, and an allowed request takes the ABI's fast path (no output).
func (r *rateLimiter) PreHook(ctx *heimdall.Context, _ *heimdall.Input[heimdall.Request]) (
	heimdall.PreHookResult, error) {
	lim, header, cfg := r.state()
	if lim == nil {
		return heimdall.PreHookResult{}, errors.New("not initialised")
	}
	// Requests without a key share one bucket, so leaving the key out is no way around the limit. Keys are hashed
	// again so that every bucket key has the same small size, whatever a header holds.
	var id string
	if header != "" {
		id = "header:" + ctx.Header(header)
	} else {
		id, _ = ctx.StringValue(keyValue)
		id = "api_key:" + id
	}
	sum := sha256.Sum256([]byte(id))
	ok, wait := lim.take(sum)
	shared, decisions := r.sharedState()
	if ok && shared {
		var err error
		if ok, wait, err = r.takeShared(ctx, sum, cfg); err != nil {
			return heimdall.PreHookResult{}, err
		}
	}
	if shared {
		outcome := "allowed"
		if !ok {
			outcome = "limited"
		}
		_ = decisions.Inc(outcome) // a metric that cannot be recorded never fails a request
	}
	if ok {
		return heimdall.PreHookResult{}, nil
	}
	retryAfter := int(math.Ceil(wait.Seconds()))
	if retryAfter < 1 {
		retryAfter = 1
	}
	return heimdall.PreHookResult{Error: &heimdall.Error{
		StatusCode: 429,
		Message: fmt.Sprintf("rate limit exceeded: %g requests per minute, bursts of %d; retry after %d s",
			cfg.RequestsPerMinute, cfg.Burst, retryAfter),
		Type:           "rate_limit_error",
		Code:           "rate_limited",
		AllowFallbacks: heimdall.Bool(false), // another model would not change the caller's budget
		RetryAfter:     retryAfter,
	}}.WithContext("retry_after", retryAfter), nil
}

// takeShared counts the request in the shared store: one counter per key and calendar minute, created with the
// minute as its TTL, so it is gone when its window is. Every worker and (with Redis) every gateway increments the
// same counter; docs/host-services.md says how far over the limit that can go (limit + processes x lease).
func (r *rateLimiter) takeShared(ctx *heimdall.Context, sum [32]byte, cfg config) (bool, time.Duration, error) {
	now := r.now()
	minute := now.Unix() / int64(window/time.Second)
	key := fmt.Sprintf("rl:%s:%d", hex.EncodeToString(sum[:16]), minute)
	n, err := heimdall.KV().Incr(key, 1, window)
	switch {
	case errors.Is(err, heimdall.ErrUnavailable):
		// Redis away or slow: n is this process's estimate. Limit on it (fail open below it), and say so once in a
		// while rather than on every request.
		if n%100 == 1 {
			heimdall.Logf(ctx, heimdall.LogWarn, "shared counter unavailable, limiting on this process's estimate (%d)", n)
		}
	case err != nil:
		return false, 0, err
	}
	if float64(n) <= cfg.RequestsPerMinute {
		return true, 0, nil
	}
	end := time.Unix((minute+1)*int64(window/time.Second), 0)
	return false, end.Sub(now), nil
}

func (r *rateLimiter) Cleanup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lim = nil
}
