package heimdall

import (
	"bytes"
	"math"
	"strconv"
	"sync"
	"time"
)

// MemoryHost is a Host kept in Go memory, for a plugin's unit tests: install it with SetHost(NewMemoryHost()) and
// call the hooks. It keeps the gateway's default bounds (keys of 1-512 bytes, values up to 64 KiB, per-request state
// of 64 keys and 64 KiB) and answers with the same statuses, one process's worth: like the gateway's memory backend.
// Logs and metric values are kept for the test to look at.
type MemoryHost struct {
	mu      sync.Mutex
	Now     func() time.Time // the clock TTLs are measured with; time.Now by default
	kv      map[string]memEntry
	state   map[uint64]map[string][]byte
	metrics []memMetric
	logs    []LogLine
}

// LogLine is a line a plugin logged through a MemoryHost.
type LogLine struct {
	Request uint64
	Level   LogLevel
	Msg     string
}

type memEntry struct {
	value   []byte
	expires time.Time // zero: never
}

type memMetric struct {
	kind   MetricKind
	name   string
	labels string
	values map[string]float64 // counter totals, or histogram sums, by label values
	counts map[string]int     // observations, by label values
}

// NewMemoryHost returns an empty MemoryHost.
func NewMemoryHost() *MemoryHost {
	return &MemoryHost{Now: time.Now, kv: map[string]memEntry{}, state: map[uint64]map[string][]byte{}}
}

// Logs returns the lines logged so far.
func (m *MemoryHost) Logs() []LogLine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]LogLine(nil), m.logs...)
}

// MetricValue returns a counter's total, or a histogram's sum, for the label values (newline-separated), and the
// number of times it was recorded.
func (m *MemoryHost) MetricValue(name, labelValues string) (value float64, records int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mt := range m.metrics {
		if mt.name == name {
			return mt.values[labelValues], mt.counts[labelValues]
		}
	}
	return 0, 0
}

// EndRequest frees a request's state, as the gateway does when the request ends.
func (m *MemoryHost) EndRequest(request uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.state, request)
}

// StateKeys returns how many state keys a request holds.
func (m *MemoryHost) StateKeys(request uint64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.state[request])
}

func (m *MemoryHost) Log(request uint64, level LogLevel, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.logs = append(m.logs, LogLine{request, level, msg})
}

func validMetricName(s string) bool {
	if len(s) < 1 || len(s) > 64 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (m *MemoryHost) MetricDefine(kind MetricKind, name, help, labels string, buckets []float64) (uint32, int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !validMetricName(name) || kind != MetricCounter && kind != MetricHistogram || len(buckets) > 32 {
		return 0, hostInvalid
	}
	for i, mt := range m.metrics {
		if mt.name == name {
			if mt.kind != kind || mt.labels != labels {
				return 0, hostInvalid
			}
			return uint32(i), hostOK
		}
	}
	if len(m.metrics) >= 32 {
		return 0, hostLimit
	}
	m.metrics = append(m.metrics, memMetric{kind: kind, name: name, labels: labels,
		values: map[string]float64{}, counts: map[string]int{}})
	return uint32(len(m.metrics) - 1), hostOK
}

func (m *MemoryHost) MetricRecord(id uint32, labelValues string, value float64) int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(id) >= len(m.metrics) || math.IsNaN(value) || math.IsInf(value, 0) {
		return hostInvalid
	}
	mt := m.metrics[id]
	want := 0
	if mt.labels != "" {
		want = bytes.Count([]byte(mt.labels), []byte(",")) + 1
	}
	got := 0
	if labelValues != "" || want == 1 {
		got = bytes.Count([]byte(labelValues), []byte("\n")) + 1
	}
	if got != want || mt.kind == MetricCounter && value < 0 {
		return hostInvalid
	}
	mt.values[labelValues] += value
	mt.counts[labelValues]++
	return hostOK
}

func (m *MemoryHost) StateGet(request uint64, key string, buf []byte) (int, int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if request == 0 {
		return 0, hostInvalid
	}
	v, ok := m.state[request][key]
	if !ok {
		return 0, hostNotFound
	}
	copy(buf, v)
	return len(v), hostOK
}

func (m *MemoryHost) StateSet(request uint64, key string, value []byte) int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if request == 0 {
		return hostInvalid
	}
	s := m.state[request]
	if value == nil {
		delete(s, key)
		return hostOK
	}
	size := len(key) + len(value)
	for k, v := range s {
		if k != key {
			size += len(k) + len(v)
		}
	}
	if _, had := s[key]; (!had && len(s) >= 64) || size > 64<<10 {
		return hostLimit
	}
	if s == nil {
		s = map[string][]byte{}
		m.state[request] = s
	}
	s[key] = append([]byte(nil), value...)
	return hostOK
}

func (m *MemoryHost) live(key string) (memEntry, bool) {
	e, ok := m.kv[key]
	if ok && !e.expires.IsZero() && !m.Now().Before(e.expires) {
		delete(m.kv, key)
		return memEntry{}, false
	}
	return e, ok
}

func (m *MemoryHost) expiry(ttlMs uint64) time.Time {
	if ttlMs == 0 {
		return time.Time{}
	}
	return m.Now().Add(time.Duration(ttlMs) * time.Millisecond)
}

func (m *MemoryHost) KVGet(key string, buf []byte) (int, int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(key) > 512 {
		return 0, hostLimit
	}
	e, ok := m.live(key)
	if !ok {
		return 0, hostNotFound
	}
	copy(buf, e.value)
	return len(e.value), hostOK
}

func (m *MemoryHost) KVSet(key string, value []byte, ttlMs uint64) int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(key) < 1 || len(key) > 512 || len(value) > 64<<10 {
		return hostLimit
	}
	if value == nil {
		delete(m.kv, key)
		return hostOK
	}
	m.kv[key] = memEntry{append([]byte(nil), value...), m.expiry(ttlMs)}
	return hostOK
}

func (m *MemoryHost) KVIncr(key string, delta int64, ttlMs uint64) (int64, int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(key) < 1 || len(key) > 512 {
		return 0, hostLimit
	}
	e, ok := m.live(key)
	var n int64
	if ok {
		var err error
		if n, err = strconv.ParseInt(string(e.value), 10, 64); err != nil {
			return 0, hostInvalid
		}
	} else {
		e.expires = m.expiry(ttlMs)
	}
	if delta > 0 && n > math.MaxInt64-delta || delta < 0 && n < math.MinInt64-delta {
		return 0, hostLimit
	}
	n += delta
	e.value = []byte(strconv.FormatInt(n, 10))
	m.kv[key] = e
	return n, hostOK
}

func (m *MemoryHost) KVCAS(key string, expected, value []byte, ttlMs uint64) int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(key) < 1 || len(key) > 512 || len(value) > 64<<10 {
		return hostLimit
	}
	e, ok := m.live(key)
	if expected == nil && ok || expected != nil && (!ok || !bytes.Equal(e.value, expected)) {
		return hostConflict
	}
	m.kv[key] = memEntry{append([]byte(nil), value...), m.expiry(ttlMs)}
	return hostOK
}
