// Package heimdall is the Go SDK for Heimdall plugins: shared objects that the gateway loads and calls through the C
// ABI in native/include/heimdall_plugin.h.
//
// A plugin is a main package built with -buildmode=c-shared. It implements Plugin plus any of the optional hook
// interfaces, registers itself in an init function, and carries one generated file, heimdall_exports.go, that
// exports the C symbols (see cmd/heimdall-gen):
//
//	//go:generate go run github.com/heimdall-gateway/heimdall/sdk/go/cmd/heimdall-gen
//
//	type tagger struct{ tag string }
//
//	func init() { heimdall.Register(&tagger{}) }
//
//	func (t *tagger) Name() string { return "tagger" }
//
//	func (t *tagger) Init(config []byte) error {
//		var cfg struct{ Tag string `json:"tag"` }
//		if err := heimdall.DecodeConfig(config, &cfg); err != nil {
//			return err
//		}
//		t.tag = cfg.Tag
//		return nil
//	}
//
//	func (t *tagger) PreHook(ctx *heimdall.Context, req *heimdall.Input[heimdall.Request]) (
//		heimdall.PreHookResult, error) {
//		return heimdall.PreHookResult{}.WithContext("tag", t.tag), nil
//	}
//
// The SDK does the JSON and memory work: inputs are copied into Go memory and decoded only when a hook asks (so a
// hook that never looks at the request never pays for parsing it), results are encoded to the ABI's action objects
// (the zero result means "continue unchanged", the ABI's fast path), a returned error becomes a failure status with
// its message, and a panic is recovered and reported the same way instead of killing the gateway.
//
// The host calls a plugin one call at a time, but not always from the same OS thread; the SDK keeps no per-thread
// state. Plugins should still guard shared state with a mutex, which costs next to nothing when uncontended. A plugin
// whose hooks are safe for concurrent use can let the host make several calls at once by implementing Concurrent.
package heimdall

import "math"

// ABIVersion is the ABI this SDK implements: (major << 16) | minor, as HEIMDALL_ABI_VERSION in heimdall_plugin.h.
const ABIVersion uint32 = 1<<16 | 2

// Status codes returned by every hook (HEIMDALL_OK and HEIMDALL_ERROR).
const (
	StatusOK    int32 = 0
	StatusError int32 = 1
)

// Plugin is what every plugin implements. Name is an ASCII identifier such as "rate-limiter", used in the
// gateway's logs, metrics and status.
type Plugin interface {
	Name() string
}

// Initer is implemented by plugins that take configuration. config is the plugin's "config" object from
// config.json ({} when none was given). A non-nil error refuses to start, and its message is shown to the operator.
type Initer interface {
	Init(config []byte) error
}

// TransportInterceptor is implemented by plugins that see the raw HTTP request before the gateway parses its body.
// It is the only hook that sees credential headers (authorization, x-api-key, ...).
type TransportInterceptor interface {
	TransportInterceptor(ctx *Context, req *HTTPRequest) (TransportResult, error)
}

// PreHooker is implemented by plugins that see the chat-completions request before the provider call.
type PreHooker interface {
	PreHook(ctx *Context, req *Input[Request]) (PreHookResult, error)
}

// PostHooker is implemented by plugins that see the result. Exactly one of resp and err is non-empty.
type PostHooker interface {
	PostHook(ctx *Context, resp *Input[Response], err *Input[Error]) (PostHookResult, error)
}

// StreamChunkHooker is implemented by plugins that see each streamed chunk before the client does.
type StreamChunkHooker interface {
	StreamChunkHook(ctx *Context, chunk *Input[Chunk]) (StreamChunkResult, error)
}

// Cleaner is implemented by plugins that hold resources to release at shutdown.
type Cleaner interface {
	Cleanup()
}

// Concurrent is implemented by plugins whose hooks are safe for concurrent use, to let the gateway make up to
// Concurrency() hook calls at once, from different threads (heimdall_plugin_concurrency, ABI 1.1). Without it the
// gateway makes one call at a time. Only the gateway's "threaded" execution mode uses it, capped by the entry's
// "concurrency" setting; it pays off for hooks that wait on I/O (an HTTP or Redis call).
//
// Implement it only if every hook can run in several goroutines at once: no unsynchronised shared state (guard it
// with a sync.Mutex, or use sync/atomic). Concurrency is called once, before Init, so return a constant (the config
// is not known yet): 0 or 1 means one call at a time, NoConcurrencyLimit means no limit of the plugin's own. Init
// and Cleanup are never called concurrently with a hook.
type Concurrent interface {
	Concurrency() uint32
}

// NoConcurrencyLimit, returned by Concurrency, says the plugin has no limit of its own: the gateway's settings
// decide how many calls run at once.
const NoConcurrencyLimit uint32 = math.MaxUint32

// registered is the plugin this shared object serves. It is written by Register during package initialisation,
// before the host can make any call, and only read afterwards, so it needs no lock.
var registered Plugin

// Register makes p the plugin this shared object serves. Call it from an init function of the main package. A
// later call replaces an earlier one.
func Register(p Plugin) {
	registered = p
}

// Bool returns a pointer to b, for optional fields such as Error.AllowFallbacks.
func Bool(b bool) *bool { return &b }
