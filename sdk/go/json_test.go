package heimdall

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func collect(data string) map[string]string {
	got := map[string]string{}
	members([]byte(data), func(k, v []byte) bool {
		got[string(k)] = string(v)
		return true
	})
	return got
}

func TestMembers(t *testing.T) {
	in := ` { "a" : 1 , "b":"x}\"y]" ,"c":{"d":[1,{"e":"}"}]},"f\u0067":true,"h":null, "i":-1.5e3,"j":[],"k":{} } `
	want := map[string]string{"a": "1", "b": `"x}\"y]"`, "c": `{"d":[1,{"e":"}"}]}`, "fg": "true", "h": "null",
		"i": "-1.5e3", "j": "[]", "k": "{}"}
	if got := collect(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
	for _, notObject := range []string{``, `null`, `[1]`, `"s"`, `{}`, ` { } `} {
		if got := collect(notObject); len(got) != 0 {
			t.Errorf("%q has no members, got %v", notObject, got)
		}
	}
	if v := member([]byte(in), "c"); string(v) != `{"d":[1,{"e":"}"}]}` {
		t.Errorf("member c: %s", v)
	}
	if v := member([]byte(in), "zz"); v != nil {
		t.Errorf("member zz: %s", v)
	}
}

func TestJSONString(t *testing.T) {
	for raw, want := range map[string]string{`"abc"`: "abc", `"a\"b\u00e9"`: `a"bé`, `""`: "", `12`: "", `null`: "", ``: ""} {
		if got := jsonString([]byte(raw)); got != want {
			t.Errorf("%s: got %q, want %q", raw, got, want)
		}
	}
}

func TestExtrasAreCopies(t *testing.T) {
	data := []byte(`{"model":"m","x":{"y":1}}`)
	var r Request
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	copy(data, make([]byte, len(data))) // the caller reuses its buffer
	if string(r.Extra["x"]) != `{"y":1}` {
		t.Fatalf("extra %s", r.Extra["x"])
	}
}

// On any input members never panics and ends; on a valid object it agrees with encoding/json.
func FuzzMembers(f *testing.F) {
	for _, seed := range []string{fullRequest, `{"a":"\\","b":"\"{"}`, `{"\u00e9":[{"x":"]"}],"n":0}`, `{}`, `{"`,
		`{"a`, `{"a":`, `{"a":"`, `{"a":[`, `{"a" 1}`, `{,}`, `{"a":1,,}`, `{"\`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := map[string]json.RawMessage{}
		members([]byte(s), func(k, v []byte) bool {
			got[string(k)] = append(json.RawMessage(nil), v...)
			return true
		})
		var want map[string]json.RawMessage
		// encoding/json replaces invalid UTF-8 in keys; members passes keys through (they are re-encoded later).
		if !utf8.ValidString(s) || json.Unmarshal([]byte(s), &want) != nil || want == nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %d members, want %d", s, len(got), len(want))
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Fatalf("%s: member %q: got %s, want %s", s, k, got[k], v)
			}
		}
	})
}

// The Context accessors agree with a full decode by encoding/json on every valid context.
func FuzzContext(f *testing.F) {
	f.Add(`{"request_id":"r\"1","route":"/v1","provider":"p","model":"m","stream":true,` +
		`"headers":{"a":"1","b":["x","y"],"c":"\u00e9"},"values":{"k":"v","n":1,"s":"\\"}}`)
	f.Add(`{"stream":false,"headers":{},"values":{}}`)
	f.Fuzz(func(t *testing.T, s string) {
		c := NewContext([]byte(s))
		_, _, _ = c.RequestID(), c.Header("a"), c.Stream() // must not panic, whatever s is
		var want struct {
			RequestID string                     `json:"request_id"`
			Route     string                     `json:"route"`
			Provider  string                     `json:"provider"`
			Model     string                     `json:"model"`
			Stream    bool                       `json:"stream"`
			Headers   Headers                    `json:"headers"`
			Values    map[string]json.RawMessage `json:"values"`
		}
		if !utf8.ValidString(s) || !strings.HasPrefix(strings.TrimSpace(s), "{") || json.Unmarshal([]byte(s), &want) != nil {
			return
		}
		if c.Err() != nil {
			t.Fatalf("%s: Err %v", s, c.Err())
		}
		if c.RequestID() != want.RequestID || c.Route() != want.Route || c.Provider() != want.Provider ||
			c.Model() != want.Model || c.Stream() != want.Stream {
			t.Fatalf("%s: scalar fields differ", s)
		}
		for name, v := range want.Headers {
			if strings.ToLower(name) == name && c.Header(name) != v {
				t.Fatalf("%s: header %q: got %q, want %q", s, name, c.Header(name), v)
			}
		}
		for key, v := range want.Values {
			got, ok := c.Value(key)
			if !ok || string(got) != string(v) {
				t.Fatalf("%s: value %q: got %s, want %s", s, key, got, v)
			}
		}
	})
}
