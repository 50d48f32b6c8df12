// Package cabi does the C side of the Heimdall plugin ABI for Go plugins: it copies the host's input buffers into
// Go memory, runs the heimdall package's Call functions, and hands results back in C.malloc'd buffers.
//
// cgo only allows //export in the plugin's main package, and a cgo type such as C.size_t is a different Go type in
// every package, so the exported Go functions live in the plugin's generated heimdall_exports.go (see
// cmd/heimdall-gen) and pass everything here as unsafe.Pointer and uintptr. The two exports that need no Go,
// heimdall_plugin_abi_version and heimdall_plugin_free, are plain C functions defined in this package.
//
// heimdall_plugin_concurrency (ABI 1.1) is a Go export in the generated file, present only when the plugin implements
// heimdall.Concurrent. It has to enter Go, even though it returns a number: a call into Go waits for the package init
// functions (heimdall.Register) to have run, which a C function reading a variable would not, and the host calls it
// right after loading the library.
//
// No Go pointer ever reaches the host: output buffers are C memory, and GetName's string is allocated once in C.
package cabi

/*
#include <stdint.h>
#include <stdlib.h>

// The two ABI exports that need no Go are defined here, in C: calling them does not enter the Go runtime, which
// costs microseconds per call with Go releases before 1.21. The host calls heimdall_plugin_free after every hook
// that hands something back. Every plugin links this package once, so they are defined once.
__attribute__((visibility("default"))) uint32_t heimdall_plugin_abi_version(void) { return (1u << 16) | 2u; }

__attribute__((visibility("default"))) void heimdall_plugin_free(uint8_t *data, size_t len) {
	(void)len;
	free(data);
}
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
)

// abiVersion is what the C heimdall_plugin_abi_version returns; a test checks it against heimdall.ABIVersion.
func abiVersion() uint32 { return uint32(C.heimdall_plugin_abi_version()) }

// buf has the layout of heimdall_buf_t: { uint8_t *data; size_t len; }.
type buf struct {
	data unsafe.Pointer
	len  uintptr
}

// input copies a host buffer into Go memory: the host's bytes are only valid during the call, and the copy lets a
// hook keep what it is given. The copy costs far less than any JSON work done on it.
func input(p unsafe.Pointer, n uintptr) []byte {
	if p == nil || n == 0 {
		return nil
	}
	b := make([]byte, n)
	copy(b, unsafe.Slice((*byte)(p), n))
	return b
}

// output hands b to the host in *out, in C memory the host releases through Free, and returns status.
func output(out unsafe.Pointer, status int32, b []byte) int32 {
	if out != nil && len(b) > 0 {
		o := (*buf)(out)
		o.data = C.CBytes(b)
		o.len = uintptr(len(b))
	}
	return status
}

// guard turns a panic in the SDK's own C-side work (the Call functions recover the plugin's) into a failure status:
// a Go panic that unwinds into the host kills it.
func guard(out unsafe.Pointer, status *int32) {
	if r := recover(); r != nil {
		*status = output(out, heimdall.StatusError, []byte(fmt.Sprintf("heimdall plugin: %v", r)))
	}
}

// Free releases a buffer handed out by output, as heimdall_plugin_free does.
func Free(data unsafe.Pointer, _ uintptr) {
	C.free(data)
}

var (
	nameOnce sync.Once
	name     *C.char
)

// Name returns the plugin's name as a NUL-terminated C string, allocated on first use and kept for the life of the
// process (GetName). It returns nil, and says why on stderr, when there is no usable name.
func Name() unsafe.Pointer {
	nameOnce.Do(func() {
		n, err := heimdall.PluginName()
		if err != nil {
			fmt.Fprintf(os.Stderr, "heimdall plugin: GetName: %v\n", err)
			return
		}
		name = C.CString(n)
	})
	return unsafe.Pointer(name)
}

// Concurrency returns how many hook calls the plugin takes at once (the heimdall_plugin_concurrency export): its
// Concurrency(), or 1 when it does not implement heimdall.Concurrent. A panic there is reported on stderr and counts
// as 1.
func Concurrency() uint32 {
	n, err := heimdall.PluginConcurrency()
	if err != nil {
		fmt.Fprintf(os.Stderr, "heimdall plugin: %v\n", err)
	}
	return n
}

// DeclareExports records the optional exports the shared object has; see heimdall.DeclareExports.
func DeclareExports(hooks ...string) { heimdall.DeclareExports(hooks...) }

// Init runs the plugin's Init (the Init export).
func Init(config unsafe.Pointer, configLen uintptr, out unsafe.Pointer) (status int32) {
	defer guard(out, &status)
	st, b := heimdall.CallInit(input(config, configLen))
	return output(out, st, b)
}

// TransportInterceptor runs the plugin's TransportInterceptor (the TransportInterceptor export).
func TransportInterceptor(ctx unsafe.Pointer, ctxLen uintptr, http unsafe.Pointer, httpLen uintptr,
	body unsafe.Pointer, bodyLen uintptr, out unsafe.Pointer) (status int32) {
	defer guard(out, &status)
	st, b := heimdall.CallTransportInterceptor(input(ctx, ctxLen), input(http, httpLen), input(body, bodyLen))
	return output(out, st, b)
}

// PreHook runs the plugin's PreHook (the PreHook export).
func PreHook(ctx unsafe.Pointer, ctxLen uintptr, req unsafe.Pointer, reqLen uintptr,
	out unsafe.Pointer) (status int32) {
	defer guard(out, &status)
	st, b := heimdall.CallPreHook(input(ctx, ctxLen), input(req, reqLen))
	return output(out, st, b)
}

// PostHook runs the plugin's PostHook (the PostHook export).
func PostHook(ctx unsafe.Pointer, ctxLen uintptr, resp unsafe.Pointer, respLen uintptr,
	errObj unsafe.Pointer, errLen uintptr, out unsafe.Pointer) (status int32) {
	defer guard(out, &status)
	st, b := heimdall.CallPostHook(input(ctx, ctxLen), input(resp, respLen), input(errObj, errLen))
	return output(out, st, b)
}

// StreamChunkHook runs the plugin's StreamChunkHook (the StreamChunkHook export).
func StreamChunkHook(ctx unsafe.Pointer, ctxLen uintptr, chunk unsafe.Pointer, chunkLen uintptr,
	out unsafe.Pointer) (status int32) {
	defer guard(out, &status)
	st, b := heimdall.CallStreamChunkHook(input(ctx, ctxLen), input(chunk, chunkLen))
	return output(out, st, b)
}

// Cleanup runs the plugin's Cleanup (the Cleanup export). A panic there has nowhere to go but stderr.
func Cleanup() {
	if err := heimdall.CallCleanup(); err != nil {
		fmt.Fprintf(os.Stderr, "heimdall plugin: %v\n", err)
	}
}
