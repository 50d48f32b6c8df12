package main

import (
	"container/list"
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key. A bucket holds up to burst tokens, refills at rate tokens per
// second, and each request spends one.
//
// Memory is bounded two ways. A bucket left alone long enough to refill completely is indistinguishable from a new
// one, so it is forgotten, which costs no accuracy; and the number of buckets is capped at maxKeys, past which the
// least recently used one is forgotten (its key gets a fresh burst if it comes back). Both use an LRU list, so
// every request does O(1) work, evictions included, and no background goroutine is needed.
type limiter struct {
	mu      sync.Mutex // the host calls one hook at a time, but a mutex keeps that an assumption we do not rely on
	rate    float64    // tokens per second
	burst   float64
	idle    time.Duration // the time an empty bucket takes to fill up
	maxKeys int
	buckets map[[32]byte]*list.Element
	lru     *list.List // of *bucket, most recently used at the front
	now     func() time.Time
}

type bucket struct {
	key    [32]byte
	tokens float64
	last   time.Time // when tokens was last brought up to date
}

func newLimiter(perMinute float64, burst, maxKeys int, now func() time.Time) *limiter {
	rate := perMinute / 60
	return &limiter{
		rate:    rate,
		burst:   float64(burst),
		idle:    time.Duration(float64(burst) / rate * float64(time.Second)),
		maxKeys: maxKeys,
		buckets: make(map[[32]byte]*list.Element),
		lru:     list.New(),
		now:     now,
	}
}

// take spends a token from key's bucket. When the bucket is empty it returns false and the time until the next
// token.
func (l *limiter) take(key [32]byte) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.forgetIdle(now)

	var b *bucket
	if e, found := l.buckets[key]; found {
		b = e.Value.(*bucket)
		l.lru.MoveToFront(e)
		if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
			b.tokens += elapsed * l.rate
			if b.tokens > l.burst {
				b.tokens = l.burst
			}
		}
		b.last = now
	} else {
		if l.lru.Len() >= l.maxKeys {
			l.remove(l.lru.Back())
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		l.buckets[key] = l.lru.PushFront(b)
	}

	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// forgetIdle drops the buckets that have had time to fill up since their last use. They sit at the back of the LRU
// list, so this stops at the first bucket still in use.
func (l *limiter) forgetIdle(now time.Time) {
	for e := l.lru.Back(); e != nil && now.Sub(e.Value.(*bucket).last) >= l.idle; e = l.lru.Back() {
		l.remove(e)
	}
}

func (l *limiter) remove(e *list.Element) {
	delete(l.buckets, e.Value.(*bucket).key)
	l.lru.Remove(e)
}

// size returns the number of buckets held.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
