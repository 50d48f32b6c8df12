package heimdall

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

func TestMembers(t *testing.T) {
	in := ` { "a" : 1 , "b":"x}\"y]" ,"c":{"d":[1,{"e":"}"}]},"f\u0067":true,"h":null, "i":-1.5e3,"j":[],"k":{} } `
	got := map[string]string{}
	var order []string
	members([]byte(in), func(k, v []byte) {
		got[string(k)] = string(v)
		order = append(order, string(k))
	})
	want := map[string]string{"a": "1", "b": `"x}\"y]"`, "c": `{"d":[1,{"e":"}"}]}`, "fg": "true", "h": "null",
		"i": "-1.5e3", "j": "[]", "k": "{}"}
	if !reflect.DeepEqual(got, want) || len(order) != len(want) {
		t.Fatalf("got %v", got)
	}
	for _, notObject := range []string{``, `null`, `[1]`, `"s"`, `{}`, ` { } `} {
		members([]byte(notObject), func(k, v []byte) { t.Errorf("%q has no members, got %s", notObject, k) })
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

// members must agree with encoding/json on every valid object.
func FuzzMembers(f *testing.F) {
	for _, seed := range []string{fullRequest, `{"a":"\\","b":"\"{"}`, `{"\u00e9":[{"x":"]"}],"n":0}`, `{}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want map[string]json.RawMessage
		// encoding/json replaces invalid UTF-8 in keys; members passes keys through (they are re-encoded later).
		if !utf8.ValidString(s) || json.Unmarshal([]byte(s), &want) != nil || want == nil {
			return
		}
		got := map[string]json.RawMessage{}
		members([]byte(s), func(k, v []byte) { got[string(k)] = append(json.RawMessage(nil), v...) })
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
