package cabi

// The host services table (ABI 1.2). Go cannot call a C function pointer, so each member is called through a small C
// trampoline below. The struct mirrors heimdall_host_t in native/include/heimdall_plugin.h member for member (the
// SDK builds outside this repository too, without the header); a test checks the layout against the header.

/*
#include <stddef.h>
#include <stdint.h>

typedef struct hm_host {
	uint32_t size;
	uint32_t abi_version;
	void (*log)(uint64_t request, int32_t level, const uint8_t *msg, size_t msg_len);
	int32_t (*metric_define)(int32_t kind, const uint8_t *name, size_t name_len, const uint8_t *help, size_t help_len,
	                         const uint8_t *labels, size_t labels_len, const double *buckets, size_t buckets_len,
	                         uint32_t *id);
	int32_t (*metric_record)(uint32_t id, const uint8_t *label_values, size_t label_values_len, double value);
	int32_t (*state_get)(uint64_t request, const uint8_t *key, size_t key_len, uint8_t *value, size_t cap,
	                     size_t *value_len);
	int32_t (*state_set)(uint64_t request, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len);
	int32_t (*kv_get)(const uint8_t *key, size_t key_len, uint8_t *value, size_t cap, size_t *value_len);
	int32_t (*kv_set)(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len, uint64_t ttl_ms);
	int32_t (*kv_incr)(const uint8_t *key, size_t key_len, int64_t delta, uint64_t ttl_ms, int64_t *value);
	int32_t (*kv_cas)(const uint8_t *key, size_t key_len, const uint8_t *expected, size_t expected_len,
	                  const uint8_t *value, size_t value_len, uint64_t ttl_ms);
} hm_host;

// A member is there when the host's table is long enough to hold it (later minor versions append members).
#define HM_HAS(h, m) ((h) != NULL && offsetof(hm_host, m) + sizeof((h)->m) <= (h)->size && (h)->m != NULL)
#define HM_UNAVAILABLE 6

// A zero-length value still needs a non-NULL pointer: NULL means "delete" (kv_set, state_set) or "absent" (kv_cas).
static const uint8_t hm_empty[1];

static void hm_log(const hm_host *h, uint64_t request, int32_t level, const void *msg, size_t len) {
	if (HM_HAS(h, log)) h->log(request, level, (const uint8_t *)msg, len);
}
static int32_t hm_metric_define(const hm_host *h, int32_t kind, const void *name, size_t name_len, const void *help,
                                size_t help_len, const void *labels, size_t labels_len, const double *buckets,
                                size_t buckets_len, uint32_t *id) {
	if (!HM_HAS(h, metric_define)) return HM_UNAVAILABLE;
	return h->metric_define(kind, (const uint8_t *)name, name_len, (const uint8_t *)help, help_len,
	                        labels_len ? (const uint8_t *)labels : hm_empty, labels_len, buckets, buckets_len, id);
}
static int32_t hm_metric_record(const hm_host *h, uint32_t id, const void *values, size_t len, double value) {
	if (!HM_HAS(h, metric_record)) return HM_UNAVAILABLE;
	return h->metric_record(id, len ? (const uint8_t *)values : hm_empty, len, value);
}
static int32_t hm_state_get(const hm_host *h, uint64_t request, const void *key, size_t key_len, void *value,
                            size_t cap, size_t *value_len) {
	if (!HM_HAS(h, state_get)) return HM_UNAVAILABLE;
	return h->state_get(request, (const uint8_t *)key, key_len, (uint8_t *)value, cap, value_len);
}
static int32_t hm_state_set(const hm_host *h, uint64_t request, const void *key, size_t key_len, const void *value,
                            size_t value_len, int remove) {
	if (!HM_HAS(h, state_set)) return HM_UNAVAILABLE;
	return h->state_set(request, (const uint8_t *)key, key_len,
	                    remove ? NULL : value_len ? (const uint8_t *)value : hm_empty, remove ? 0 : value_len);
}
static int32_t hm_kv_get(const hm_host *h, const void *key, size_t key_len, void *value, size_t cap,
                         size_t *value_len) {
	if (!HM_HAS(h, kv_get)) return HM_UNAVAILABLE;
	return h->kv_get((const uint8_t *)key, key_len, (uint8_t *)value, cap, value_len);
}
static int32_t hm_kv_set(const hm_host *h, const void *key, size_t key_len, const void *value, size_t value_len,
                         int remove, uint64_t ttl_ms) {
	if (!HM_HAS(h, kv_set)) return HM_UNAVAILABLE;
	return h->kv_set((const uint8_t *)key, key_len, remove ? NULL : value_len ? (const uint8_t *)value : hm_empty,
	                 remove ? 0 : value_len, ttl_ms);
}
static int32_t hm_kv_incr(const hm_host *h, const void *key, size_t key_len, int64_t delta, uint64_t ttl_ms,
                          int64_t *value) {
	if (!HM_HAS(h, kv_incr)) return HM_UNAVAILABLE;
	return h->kv_incr((const uint8_t *)key, key_len, delta, ttl_ms, value);
}
static int32_t hm_kv_cas(const hm_host *h, const void *key, size_t key_len, const void *expected, size_t expected_len,
                         int absent, const void *value, size_t value_len, uint64_t ttl_ms) {
	if (!HM_HAS(h, kv_cas)) return HM_UNAVAILABLE;
	return h->kv_cas((const uint8_t *)key, key_len,
	                 absent ? NULL : expected_len ? (const uint8_t *)expected : hm_empty, absent ? 0 : expected_len,
	                 value_len ? (const uint8_t *)value : hm_empty, value_len, ttl_ms);
}
*/
import "C"

import (
	"unsafe"

	heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
)

// SetHost takes the gateway's heimdall_host_t (the heimdall_plugin_set_host export) and installs the Host that
// calls through it. The table is the host's, valid until Cleanup returns; a NULL table removes the services.
func SetHost(table unsafe.Pointer) {
	if table == nil {
		heimdall.SetHost(nil)
		return
	}
	heimdall.SetHost(cHost{(*C.hm_host)(table)})
}

// cHost calls the gateway's table. Go memory is passed to C only for the call (the host copies what it keeps before
// returning), which cgo's pointer rules allow: none of it holds Go pointers.
type cHost struct{ t *C.hm_host }

// ptr returns a pointer to b's bytes, or nil for an empty b (the trampolines substitute a non-NULL empty buffer).
func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func (h cHost) Log(request uint64, level heimdall.LogLevel, msg string) {
	b := []byte(msg)
	C.hm_log(h.t, C.uint64_t(request), C.int32_t(level), bytesPtr(b), C.size_t(len(b)))
}

func (h cHost) MetricDefine(kind heimdall.MetricKind, name, help, labels string, buckets []float64) (uint32, int32) {
	n, hp, l := []byte(name), []byte(help), []byte(labels)
	var id C.uint32_t
	var bp *C.double
	if len(buckets) > 0 {
		bp = (*C.double)(unsafe.Pointer(&buckets[0]))
	}
	st := C.hm_metric_define(h.t, C.int32_t(kind), bytesPtr(n), C.size_t(len(n)), bytesPtr(hp), C.size_t(len(hp)), bytesPtr(l),
		C.size_t(len(l)), bp, C.size_t(len(buckets)), &id)
	return uint32(id), int32(st)
}

func (h cHost) MetricRecord(id uint32, labelValues string, value float64) int32 {
	v := []byte(labelValues)
	return int32(C.hm_metric_record(h.t, C.uint32_t(id), bytesPtr(v), C.size_t(len(v)), C.double(value)))
}

func (h cHost) StateGet(request uint64, key string, buf []byte) (int, int32) {
	k := []byte(key)
	var n C.size_t
	st := C.hm_state_get(h.t, C.uint64_t(request), bytesPtr(k), C.size_t(len(k)), bytesPtr(buf), C.size_t(len(buf)), &n)
	return int(n), int32(st)
}

func (h cHost) StateSet(request uint64, key string, value []byte) int32 {
	k := []byte(key)
	return int32(C.hm_state_set(h.t, C.uint64_t(request), bytesPtr(k), C.size_t(len(k)), bytesPtr(value), C.size_t(len(value)),
		flag(value == nil)))
}

func (h cHost) KVGet(key string, buf []byte) (int, int32) {
	k := []byte(key)
	var n C.size_t
	st := C.hm_kv_get(h.t, bytesPtr(k), C.size_t(len(k)), bytesPtr(buf), C.size_t(len(buf)), &n)
	return int(n), int32(st)
}

func (h cHost) KVSet(key string, value []byte, ttlMs uint64) int32 {
	k := []byte(key)
	return int32(C.hm_kv_set(h.t, bytesPtr(k), C.size_t(len(k)), bytesPtr(value), C.size_t(len(value)), flag(value == nil),
		C.uint64_t(ttlMs)))
}

func (h cHost) KVIncr(key string, delta int64, ttlMs uint64) (int64, int32) {
	k := []byte(key)
	var v C.int64_t
	st := C.hm_kv_incr(h.t, bytesPtr(k), C.size_t(len(k)), C.int64_t(delta), C.uint64_t(ttlMs), &v)
	return int64(v), int32(st)
}

func (h cHost) KVCAS(key string, expected, value []byte, ttlMs uint64) int32 {
	k := []byte(key)
	return int32(C.hm_kv_cas(h.t, bytesPtr(k), C.size_t(len(k)), bytesPtr(expected), C.size_t(len(expected)),
		flag(expected == nil), bytesPtr(value), C.size_t(len(value)), C.uint64_t(ttlMs)))
}

func flag(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// hostLayout returns the offsets of the mirror's members and its size, for the test against the header.
func hostLayout() (size uintptr, offsets []uintptr) {
	var t C.hm_host
	return unsafe.Sizeof(t), []uintptr{
		unsafe.Offsetof(t.size), unsafe.Offsetof(t.abi_version), unsafe.Offsetof(t.log), unsafe.Offsetof(t.metric_define),
		unsafe.Offsetof(t.metric_record), unsafe.Offsetof(t.state_get), unsafe.Offsetof(t.state_set),
		unsafe.Offsetof(t.kv_get), unsafe.Offsetof(t.kv_set), unsafe.Offsetof(t.kv_incr), unsafe.Offsetof(t.kv_cas),
	}
}
