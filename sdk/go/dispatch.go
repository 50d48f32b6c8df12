package heimdall

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
)

// The Call functions run the registered plugin's hooks on JSON in, JSON out, with the ABI's meaning: status
// StatusOK with nil output is "continue unchanged", StatusOK with output is an action object, and any other status
// is a failure with a plain-text message. They are pure Go: the cabi package wraps them with the C memory work, and
// plugins can call them from tests to see exactly what the gateway would receive.
//
// Every Call function recovers panics, since a Go panic that unwinds into the host kills the gateway.

var errNoPlugin = errors.New("no plugin registered: call heimdall.Register from an init function of the plugin")

// PluginName returns the registered plugin's name.
func PluginName() (name string, err error) {
	defer recoverErr("Name", &err)
	if registered == nil {
		return "", errNoPlugin
	}
	name = registered.Name()
	if name == "" {
		return "", errors.New("the plugin's Name() is empty")
	}
	return name, nil
}

// PluginConcurrency returns how many hook calls the registered plugin takes at once: its Concurrency() when it
// implements Concurrent, else 1 (one at a time). A panic in Concurrency is returned as an error, with 1.
func PluginConcurrency() (n uint32, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 1, panicError("Concurrency", r)
		}
	}()
	p, ok := registered.(Concurrent)
	if !ok {
		return 1, nil
	}
	return p.Concurrency(), nil
}

// CallInit runs the plugin's Init with its config. It first checks that the exports match the hooks the plugin
// implements, so a forgotten `go generate` fails at start-up instead of silently skipping a hook.
func CallInit(config []byte) (status int32, out []byte) {
	defer recoverStatus("Init", &status, &out)
	if registered == nil {
		return fail(errNoPlugin)
	}
	if err := checkExports(registered); err != nil {
		return fail(err)
	}
	if p, ok := registered.(Initer); ok {
		if err := p.Init(config); err != nil {
			return fail(err)
		}
	}
	return StatusOK, nil
}

// CallTransportInterceptor runs the plugin's TransportInterceptor.
func CallTransportInterceptor(ctx, http, body []byte) (status int32, out []byte) {
	defer recoverStatus("TransportInterceptor", &status, &out)
	p, ok := registered.(TransportInterceptor)
	if !ok {
		return notImplemented("TransportInterceptor")
	}
	res, err := p.TransportInterceptor(NewContext(ctx), NewHTTPRequest(http, body))
	return finish("TransportInterceptor", res, err)
}

// CallPreHook runs the plugin's PreHook.
func CallPreHook(ctx, request []byte) (status int32, out []byte) {
	defer recoverStatus("PreHook", &status, &out)
	p, ok := registered.(PreHooker)
	if !ok {
		return notImplemented("PreHook")
	}
	res, err := p.PreHook(NewContext(ctx), NewInput[Request](request))
	return finish("PreHook", res, err)
}

// CallPostHook runs the plugin's PostHook.
func CallPostHook(ctx, response, errorObject []byte) (status int32, out []byte) {
	defer recoverStatus("PostHook", &status, &out)
	p, ok := registered.(PostHooker)
	if !ok {
		return notImplemented("PostHook")
	}
	res, err := p.PostHook(NewContext(ctx), NewInput[Response](response), NewInput[Error](errorObject))
	return finish("PostHook", res, err)
}

// CallStreamChunkHook runs the plugin's StreamChunkHook.
func CallStreamChunkHook(ctx, chunk []byte) (status int32, out []byte) {
	defer recoverStatus("StreamChunkHook", &status, &out)
	p, ok := registered.(StreamChunkHooker)
	if !ok {
		return notImplemented("StreamChunkHook")
	}
	res, err := p.StreamChunkHook(NewContext(ctx), NewInput[Chunk](chunk))
	return finish("StreamChunkHook", res, err)
}

// CallCleanup runs the plugin's Cleanup. The ABI gives Cleanup no way to report a failure, so a panic is returned
// as an error for the caller to log.
func CallCleanup() (err error) {
	defer recoverErr("Cleanup", &err)
	if p, ok := registered.(Cleaner); ok {
		p.Cleanup()
	}
	return nil
}

type encoder interface{ encode() ([]byte, error) }

func finish(hook string, res encoder, err error) (int32, []byte) {
	if err != nil {
		return fail(err)
	}
	out, err := res.encode()
	if err != nil {
		return fail(fmt.Errorf("%s returned a result that cannot be sent: %w", hook, err))
	}
	return StatusOK, out
}

func fail(err error) (int32, []byte) {
	msg := err.Error()
	if msg == "" {
		msg = "failed"
	}
	return StatusError, []byte(msg)
}

func notImplemented(hook string) (int32, []byte) {
	return fail(fmt.Errorf("the plugin exports %s but does not implement it", hook))
}

func recoverStatus(hook string, status *int32, out *[]byte) {
	if r := recover(); r != nil {
		*status, *out = fail(panicError(hook, r))
	}
}

func recoverErr(what string, err *error) {
	if r := recover(); r != nil {
		*err = panicError(what, r)
	}
}

// panicError describes a recovered panic with the place it happened, so the gateway's log says where to look.
func panicError(hook string, r any) error {
	return fmt.Errorf("%s panicked: %v%s", hook, r, panicSite())
}

// panicSite finds the frame that panicked: the first one past runtime.gopanic that is not in the runtime (a nil
// dereference passes through runtime.sigpanic, for instance).
func panicSite() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	seenPanic := false
	for {
		f, more := frames.Next()
		if seenPanic && !strings.HasPrefix(f.Function, "runtime.") {
			return fmt.Sprintf(" (at %s, %s:%d)", f.Function, f.File, f.Line)
		}
		if f.Function == "runtime.gopanic" {
			seenPanic = true
		}
		if !more {
			return ""
		}
	}
}

// exports is the list of optional exports the generated heimdall_exports.go has (the hooks, and "Concurrency" for
// heimdall_plugin_concurrency), or nil when exports are hand-written.
var exports []string

// DeclareExports records which optional exports the plugin's shared object has: hook names, and "Concurrency" for
// heimdall_plugin_concurrency. The file cmd/heimdall-gen generates calls it; hand-written exports need not.
func DeclareExports(hooks ...string) { exports = append([]string{}, hooks...) }

// checkExports compares the declared exports with the hook interfaces the plugin implements.
func checkExports(p Plugin) error {
	if exports == nil {
		return nil
	}
	exported := make(map[string]bool, len(exports))
	for _, h := range exports {
		exported[h] = true
	}
	implements := map[string]bool{
		"TransportInterceptor": is[TransportInterceptor](p),
		"PreHook":              is[PreHooker](p),
		"PostHook":             is[PostHooker](p),
		"StreamChunkHook":      is[StreamChunkHooker](p),
		"Concurrency":          is[Concurrent](p),
	}
	// Init and Cleanup are always exported; a method of that name with another signature would be silently unused.
	if _, ok := reflect.TypeOf(p).MethodByName("Init"); ok && !is[Initer](p) {
		return fmt.Errorf("%T has a method Init, but not heimdall's Init(config []byte) error", p)
	}
	if _, ok := reflect.TypeOf(p).MethodByName("Cleanup"); ok && !is[Cleaner](p) {
		return fmt.Errorf("%T has a method Cleanup, but not heimdall's Cleanup()", p)
	}
	for _, hook := range []string{"TransportInterceptor", "PreHook", "PostHook", "StreamChunkHook", "Concurrency"} {
		switch {
		case implements[hook] && !exported[hook]:
			return fmt.Errorf("%T implements %s, but the shared object does not export %s: run go generate "+
				"(heimdall-gen) and rebuild", p, hook, exportSymbol(hook))
		case exported[hook] && !implements[hook]:
			return fmt.Errorf("the shared object exports %s, but %T does not implement heimdall's %s interface: "+
				"check the method's signature, or run go generate (heimdall-gen) and rebuild", exportSymbol(hook), p,
				hookInterface[hook])
		}
	}
	return nil
}

var hookInterface = map[string]string{
	"TransportInterceptor": "TransportInterceptor",
	"PreHook":              "PreHooker",
	"PostHook":             "PostHooker",
	"StreamChunkHook":      "StreamChunkHooker",
	"Concurrency":          "Concurrent",
}

// exportSymbol is the C symbol of an optional export: the hook's name, or heimdall_plugin_concurrency.
func exportSymbol(name string) string {
	if name == "Concurrency" {
		return "heimdall_plugin_concurrency"
	}
	return name
}

func is[I any](p Plugin) bool {
	_, ok := p.(I)
	return ok
}
