package main

import (
	"crypto/sha256"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func key(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestBurstThenRefill(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(60, 3, 100, clock.now) // one token a second, bursts of 3
	for i := 0; i < 3; i++ {
		if ok, _ := l.take(key("a")); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.take(key("a"))
	if ok || wait != time.Second {
		t.Fatalf("4th request: ok=%v wait=%v, want refused for 1s", ok, wait)
	}
	if ok, _ := l.take(key("b")); !ok {
		t.Fatal("another key has its own bucket")
	}

	clock.advance(500 * time.Millisecond)
	if ok, wait := l.take(key("a")); ok || wait != 500*time.Millisecond {
		t.Fatalf("after 0.5s: ok=%v wait=%v", ok, wait)
	}
	clock.advance(500 * time.Millisecond)
	if ok, _ := l.take(key("a")); !ok {
		t.Fatal("after 1s a token is back")
	}
	clock.advance(time.Hour)
	for i := 0; i < 3; i++ {
		if ok, _ := l.take(key("a")); !ok {
			t.Fatal("a full bucket again after a long pause")
		}
	}
	if ok, _ := l.take(key("a")); ok {
		t.Fatal("the bucket never holds more than burst")
	}
}

func TestIdleBucketsAreForgotten(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(60, 10, 100, clock.now) // refills from empty in 10 s
	l.take(key("a"))
	clock.advance(5 * time.Second)
	l.take(key("b"))
	if l.size() != 2 {
		t.Fatalf("size %d", l.size())
	}
	clock.advance(6 * time.Second) // a idle 11 s (full again), b idle 6 s
	l.take(key("c"))
	if l.size() != 2 {
		t.Fatalf("a should be forgotten: size %d", l.size())
	}
	if _, ok := l.buckets[key("a")]; ok {
		t.Fatal("a still held")
	}
}

func TestKeysAreCapped(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(60, 1, 3, clock.now)
	for _, k := range []string{"a", "b", "c"} {
		l.take(key(k))
	}
	l.take(key("a")) // a is now the most recently used; b the least
	l.take(key("d"))
	if l.size() != 3 {
		t.Fatalf("size %d, want the cap of 3", l.size())
	}
	if _, ok := l.buckets[key("b")]; ok {
		t.Fatal("the least recently used bucket (b) should be gone")
	}
	if ok, _ := l.take(key("a")); ok {
		t.Fatal("a keeps its empty bucket")
	}
}
