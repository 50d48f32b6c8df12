package heimdall

import (
	"fmt"
	"strings"
	"time"
)

// ---- Metrics --------------------------------------------------------------------------------------------------

// MetricKind is HEIMDALL_METRIC_COUNTER or HEIMDALL_METRIC_HISTOGRAM.
type MetricKind int32

const (
	MetricCounter   MetricKind = 0
	MetricHistogram MetricKind = 1
)

type metric struct {
	name   string
	id     uint32
	labels int
}

// Counter is a plugin-defined counter in the gateway's /metrics, as heimdall_plugin_<plugin>_<name>.
type Counter struct{ m metric }

// Histogram is a plugin-defined histogram in the gateway's /metrics, as heimdall_plugin_<plugin>_<name>.
type Histogram struct{ m metric }

// NewCounter defines a counter. Call it in Init: name is 1-64 characters of [A-Za-z0-9_] starting with a letter or
// "_" (the gateway prefixes it with heimdall_plugin_<plugin>_), labels are the label names. Defining the same name
// again with the same labels gives the same counter.
func NewCounter(name, help string, labels ...string) (*Counter, error) {
	m, err := define(MetricCounter, name, help, labels, nil)
	if err != nil {
		return nil, err
	}
	return &Counter{m}, nil
}

// NewHistogram defines a histogram with the given bucket upper bounds (increasing, at most 32; nil for the default
// Prometheus ones). Call it in Init.
func NewHistogram(name, help string, buckets []float64, labels ...string) (*Histogram, error) {
	m, err := define(MetricHistogram, name, help, labels, buckets)
	if err != nil {
		return nil, err
	}
	return &Histogram{m}, nil
}

func define(kind MetricKind, name, help string, labels []string, buckets []float64) (metric, error) {
	op := "metric define"
	for _, l := range labels {
		if l == "" || strings.ContainsAny(l, ",\n") {
			return metric{}, &HostError{Op: op, Key: name, Status: hostInvalid, Detail: fmt.Sprintf("label name %q", l)}
		}
	}
	h := CurrentHost()
	if h == nil {
		return metric{}, hostErr(op, name, hostUnavailable)
	}
	id, st := h.MetricDefine(kind, name, help, strings.Join(labels, ","), buckets)
	if err := hostErr(op, name, st); err != nil {
		return metric{}, err
	}
	return metric{name: name, id: id, labels: len(labels)}, nil
}

func (m metric) record(op string, value float64, labelValues []string) error {
	if m.name == "" {
		return &HostError{Op: op, Status: hostInvalid, Detail: "a metric that was never defined"}
	}
	if len(labelValues) != m.labels {
		return &HostError{Op: op, Key: m.name, Status: hostInvalid,
			Detail: fmt.Sprintf("%d label values for %d labels", len(labelValues), m.labels)}
	}
	for _, v := range labelValues {
		if strings.Contains(v, "\n") {
			return &HostError{Op: op, Key: m.name, Status: hostInvalid, Detail: "a label value with a newline"}
		}
	}
	h := CurrentHost()
	if h == nil {
		return hostErr(op, m.name, hostUnavailable)
	}
	return hostErr(op, m.name, h.MetricRecord(m.id, strings.Join(labelValues, "\n"), value))
}

// Add adds v (>= 0) to the counter's series for the label values, given in the order of the definition's labels.
// A nil counter (its definition failed) does nothing and says so.
func (c *Counter) Add(v float64, labelValues ...string) error {
	if c == nil {
		return &HostError{Op: "counter add", Status: hostInvalid, Detail: "a nil counter (its definition failed?)"}
	}
	return c.m.record("counter add", v, labelValues)
}

// Inc adds 1.
func (c *Counter) Inc(labelValues ...string) error { return c.Add(1, labelValues...) }

// Observe records v in the histogram's series for the label values.
func (h *Histogram) Observe(v float64, labelValues ...string) error {
	if h == nil {
		return &HostError{Op: "histogram observe", Status: hostInvalid, Detail: "a nil histogram (its definition failed?)"}
	}
	return h.m.record("histogram observe", v, labelValues)
}

// ---- Per-request state ----------------------------------------------------------------------------------------

// State is a request's own small key-value, kept by the gateway from the request's first hook to its last (every
// stream chunk included) and freed when the request ends. It is this plugin's: other plugins never see it. Bounds:
// 64 keys and 64 KiB a request (keys and values counted), by default; past them ErrLimit and nothing is written.
type State struct{ request uint64 }

// State returns the per-request state of the request this context belongs to.
func (c *Context) State() State { return State{c.RequestHandle()} }

func (s State) check(op, key string) (Host, error) {
	h := CurrentHost()
	if h == nil {
		return nil, hostErr(op, key, hostUnavailable)
	}
	if s.request == 0 {
		return nil, &HostError{Op: op, Key: key, Status: hostInvalid, Detail: "no request: the context has no " +
			"request_handle (Init, Cleanup, or a context made without one)"}
	}
	return h, nil
}

// Get returns the value of key, or ErrNotFound.
func (s State) Get(key string) ([]byte, error) {
	h, err := s.check("state get", key)
	if err != nil {
		return nil, err
	}
	return readInto("state get", key, func(buf []byte) (int, int32) { return h.StateGet(s.request, key, buf) })
}

// Set sets key to value (an empty value is a value; Delete removes a key).
func (s State) Set(key string, value []byte) error {
	h, err := s.check("state set", key)
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return hostErr("state set", key, h.StateSet(s.request, key, value))
}

// Delete removes key (a missing key is not an error).
func (s State) Delete(key string) error {
	h, err := s.check("state delete", key)
	if err != nil {
		return err
	}
	return hostErr("state delete", key, h.StateSet(s.request, key, nil))
}

// ---- Shared key-value store -----------------------------------------------------------------------------------

// Store is the gateway's shared key-value store: this plugin's namespace in it, the same on every worker process
// and, with the redis backend, on every gateway sharing the Redis. Keys are 1-512 bytes, values up to 64 KiB (the
// gateway's defaults). docs/host-services.md says how consistent each backend is.
type Store struct{}

// KV returns the shared store.
func KV() Store { return Store{} }

func kvHost(op, key string) (Host, error) {
	if key == "" {
		return nil, &HostError{Op: op, Status: hostInvalid, Detail: "an empty key"}
	}
	h := CurrentHost()
	if h == nil {
		return nil, hostErr(op, key, hostUnavailable)
	}
	return h, nil
}

// Get returns the value of key, or ErrNotFound (no such key, expired, or with redis not in this process's view
// yet).
func (Store) Get(key string) ([]byte, error) {
	h, err := kvHost("kv get", key)
	if err != nil {
		return nil, err
	}
	return readInto("kv get", key, func(buf []byte) (int, int32) { return h.KVGet(key, buf) })
}

// Set sets key to value, expiring after ttl (0: no expiry of its own).
func (Store) Set(key string, value []byte, ttl time.Duration) error {
	h, err := kvHost("kv set", key)
	if err != nil {
		return err
	}
	ms, err := ttlMs("kv set", key, ttl)
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return hostErr("kv set", key, h.KVSet(key, value, ms))
}

// Delete deletes key.
func (Store) Delete(key string) error {
	h, err := kvHost("kv delete", key)
	if err != nil {
		return err
	}
	return hostErr("kv delete", key, h.KVSet(key, nil, 0))
}

// Incr adds delta to the integer at key (a missing key counts as 0) and returns the new value. A key it creates
// expires after ttl (0: never); an existing key keeps its expiry, so a counter per window is a key per window with
// the window's length as its TTL.
//
// With the redis backend, ErrUnavailable comes with the process's own estimate of the total (Redis is away or slow
// and the process's allowance of unleased increments is used up): a plugin may use it to fail open.
func (Store) Incr(key string, delta int64, ttl time.Duration) (int64, error) {
	h, err := kvHost("kv incr", key)
	if err != nil {
		return 0, err
	}
	ms, err := ttlMs("kv incr", key, ttl)
	if err != nil {
		return 0, err
	}
	n, st := h.KVIncr(key, delta, ms)
	return n, hostErr("kv incr", key, st)
}

// CAS writes value (expiring after ttl) only if key now holds exactly expected; expected nil means "only if the
// key does not exist" (an empty, non-nil expected matches an empty value). ErrConflict when it held something
// else. Atomic within a process; across processes with redis it is optimistic (docs/host-services.md).
func (Store) CAS(key string, expected, value []byte, ttl time.Duration) error {
	h, err := kvHost("kv cas", key)
	if err != nil {
		return err
	}
	ms, err := ttlMs("kv cas", key, ttl)
	if err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return hostErr("kv cas", key, h.KVCAS(key, expected, value, ms))
}
