package heimdall

// Host services (ABI 1.2): the plugin calls the gateway to log, record metrics, keep per-request state and use the
// shared key-value store. The gateway hands its table of C functions to heimdall_plugin_set_host before Init; the
// generated heimdall_exports.go passes it to the cabi package, which installs a Host that calls through it.
//
// Call the services from the hook's own goroutine while the hook runs (or from Init), never from a goroutine of your
// own: in the gateway's inline mode a call is served by the event loop, which the hook is holding.

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Statuses of the host services (HEIMDALL_OK, HEIMDALL_NOT_FOUND, ... in heimdall_plugin.h).
const (
	hostOK          int32 = 0
	hostNotFound    int32 = 2
	hostConflict    int32 = 3
	hostLimit       int32 = 4
	hostInvalid     int32 = 5
	hostUnavailable int32 = 6
)

// The errors a host call returns, one per status; test with errors.Is. Each returned error is a *HostError that
// also names the call and the key.
var (
	// ErrNotFound: no such key (HEIMDALL_NOT_FOUND). With the redis backend also "not in this process's view yet":
	// the gateway fetches it in the background, so a later call may find it.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a compare-and-set found another value (HEIMDALL_CONFLICT); nothing was written.
	ErrConflict = errors.New("conflict: the key holds another value")
	// ErrLimit: over one of the gateway's bounds (HEIMDALL_E_LIMIT): a key or value too large, too many metrics,
	// labels, series or request-state keys, or an increment that overflows. Nothing was written.
	ErrLimit = errors.New("over a limit of the gateway")
	// ErrInvalid: a bad argument (HEIMDALL_E_INVALID): a bad metric name, a request handle that is not live, a value
	// that is not an integer for Incr.
	ErrInvalid = errors.New("invalid argument")
	// ErrUnavailable: the service cannot answer now (HEIMDALL_E_UNAVAILABLE): no host services at all (a gateway
	// older than ABI 1.2, or a heimdall_exports.go generated before them), or the redis backend cannot take a write
	// or lease a count (Redis away).
	ErrUnavailable = errors.New("unavailable")
)

// HostError is the error of a host call that did not succeed: the call ("kv incr"), the key if any, and the status.
type HostError struct {
	Op     string
	Key    string
	Status int32
	Detail string // why, when the SDK knows more than the status says
}

func (e *HostError) Error() string {
	msg := "heimdall: " + e.Op
	if e.Key != "" {
		msg += " " + strconv.Quote(e.Key)
	}
	msg += ": " + statusName(e.Status) + ": " + e.Unwrap().Error()
	if e.Detail != "" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// Unwrap returns the ErrNotFound, ErrConflict, ... the status stands for.
func (e *HostError) Unwrap() error {
	switch e.Status {
	case hostNotFound:
		return ErrNotFound
	case hostConflict:
		return ErrConflict
	case hostLimit:
		return ErrLimit
	case hostInvalid:
		return ErrInvalid
	case hostUnavailable:
		return ErrUnavailable
	}
	return fmt.Errorf("unknown status %d", e.Status)
}

func statusName(s int32) string {
	switch s {
	case hostNotFound:
		return "HEIMDALL_NOT_FOUND"
	case hostConflict:
		return "HEIMDALL_CONFLICT"
	case hostLimit:
		return "HEIMDALL_E_LIMIT"
	case hostInvalid:
		return "HEIMDALL_E_INVALID"
	case hostUnavailable:
		return "HEIMDALL_E_UNAVAILABLE"
	}
	return "status " + strconv.Itoa(int(s))
}

func hostErr(op, key string, status int32) error {
	if status == hostOK {
		return nil
	}
	e := &HostError{Op: op, Key: key, Status: status}
	if status == hostUnavailable && CurrentHost() == nil {
		e.Detail = "the gateway handed over no host services: it speaks an ABI older than 1.2, or heimdall_exports.go " +
			"was generated before them (run go generate and rebuild)"
	}
	return e
}

// Host is the table of host services as Go sees it: one method per member of heimdall_host_t, returning the
// member's status. The cabi package installs the one that calls the gateway; NewMemoryHost is one for tests.
// Plugins use the functions of this package (Log, Counter, KV, Context.State), not this interface.
type Host interface {
	Log(request uint64, level LogLevel, msg string)
	MetricDefine(kind MetricKind, name, help, labels string, buckets []float64) (id uint32, status int32)
	MetricRecord(id uint32, labelValues string, value float64) int32
	// StateGet and KVGet copy the value into buf when it fits, and always return its full length.
	StateGet(request uint64, key string, buf []byte) (n int, status int32)
	// StateSet with value nil removes the key.
	StateSet(request uint64, key string, value []byte) int32
	KVGet(key string, buf []byte) (n int, status int32)
	// KVSet with value nil deletes the key.
	KVSet(key string, value []byte, ttlMs uint64) int32
	KVIncr(key string, delta int64, ttlMs uint64) (value int64, status int32)
	// KVCAS with expected nil writes only if the key is absent.
	KVCAS(key string, expected, value []byte, ttlMs uint64) int32
}

type hostBox struct{ h Host }

var host atomic.Value // of hostBox

// SetHost installs the host services the package's functions call. The generated heimdall_plugin_set_host export
// calls it (through the cabi package) with the gateway's table; tests call it with NewMemoryHost(). nil removes it.
func SetHost(h Host) { host.Store(hostBox{h}) }

// CurrentHost returns the installed host services, or nil when the gateway handed over none (an older gateway).
func CurrentHost() Host {
	b, _ := host.Load().(hostBox)
	return b.h
}

// HostAvailable reports whether the gateway handed over its services. A plugin that cannot work without them
// refuses in Init with RequireHost.
func HostAvailable() bool { return CurrentHost() != nil }

// RequireHost returns the versioned error to refuse Init with when the gateway handed over no host services (as
// HEIMDALL_REQUIRE_HOST does in C), or nil.
func RequireHost() error {
	if HostAvailable() {
		return nil
	}
	return errors.New("this plugin needs host services (ABI 1.2); the gateway did not provide them: it speaks an " +
		"older ABI. Upgrade the gateway to one that speaks ABI 1.2")
}

// ---- Log ------------------------------------------------------------------------------------------------------

// LogLevel is a level of the gateway's logger (HEIMDALL_LOG_*).
type LogLevel int32

const (
	LogDebug LogLevel = 0
	LogInfo  LogLevel = 1
	LogWarn  LogLevel = 2
	LogError LogLevel = 3
)

// Log writes msg through the gateway's logger at level, with the plugin's name and, when ctx is a hook's context,
// the request's id. ctx may be nil (Init, Cleanup). Messages over the gateway's bound (4096 bytes by default) are
// cut. Without host services it does nothing: logging never fails a hook.
func Log(ctx *Context, level LogLevel, msg string) {
	if h := CurrentHost(); h != nil {
		h.Log(ctx.RequestHandle(), level, msg)
	}
}

// Logf is Log with fmt.Sprintf's formatting.
func Logf(ctx *Context, level LogLevel, format string, args ...any) {
	if h := CurrentHost(); h != nil {
		h.Log(ctx.RequestHandle(), level, fmt.Sprintf(format, args...))
	}
}

// ---- Request handle -------------------------------------------------------------------------------------------

// RequestHandle returns the handle the gateway put first in the context ({"request_handle":17,...}): the request
// the host services' per-request state and log lines are for. 0 for a nil context or one without a handle (a host
// older than ABI 1.2, or a test context that gives none).
func (c *Context) RequestHandle() uint64 {
	if c == nil {
		return 0
	}
	const prefix = `{"request_handle":`
	raw := c.raw
	if len(raw) > len(prefix) && string(raw[:len(prefix)]) == prefix { // the host always writes it first
		var n uint64
		i := len(prefix)
		for ; i < len(raw) && raw[i] >= '0' && raw[i] <= '9' && i < len(prefix)+20; i++ {
			n = n*10 + uint64(raw[i]-'0')
		}
		if i > len(prefix) {
			return n
		}
	}
	var n uint64
	members(raw, func(key, value []byte) bool { // a hand-written context (tests) may put it anywhere
		if string(key) == "request_handle" {
			n, _ = strconv.ParseUint(string(value), 10, 64)
			return false
		}
		return true
	})
	return n
}

// ---- TTLs -----------------------------------------------------------------------------------------------------

// ttlMs turns a TTL into the ABI's milliseconds: 0 is "no expiry", a positive TTL under a millisecond is one
// millisecond (not 0, which would keep the key forever), a negative one is refused.
func ttlMs(op, key string, ttl time.Duration) (uint64, error) {
	switch {
	case ttl < 0:
		return 0, &HostError{Op: op, Key: key, Status: hostInvalid, Detail: "negative TTL " + ttl.String()}
	case ttl == 0:
		return 0, nil
	case ttl < time.Millisecond:
		return 1, nil
	}
	return uint64((ttl + time.Millisecond - 1) / time.Millisecond), nil
}

// maxValueBytes bounds what Get will allocate for one value, whatever length a host reports: the gateway's own
// bounds are far below it (64 KiB by default).
const maxValueBytes = 64 << 20

// readInto calls get with a buffer on the stack's size first and again with the length it reported, for a value
// that changes in between (another hook) up to a few times.
func readInto(op, key string, get func(buf []byte) (int, int32)) ([]byte, error) {
	buf := make([]byte, 256)
	for try := 0; try < 4; try++ {
		n, st := get(buf)
		if st != hostOK {
			return nil, hostErr(op, key, st)
		}
		if n <= len(buf) {
			return buf[:n], nil
		}
		if n > maxValueBytes {
			return nil, &HostError{Op: op, Key: key, Status: hostLimit, Detail: fmt.Sprintf("value of %d bytes", n)}
		}
		buf = make([]byte, n)
	}
	return nil, &HostError{Op: op, Key: key, Status: hostUnavailable, Detail: "the value kept changing size"}
}
