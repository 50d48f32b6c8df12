package heimdall

import (
	"testing"
)

func TestContextAccessors(t *testing.T) {
	c := NewContext([]byte(`{"request_id":"r1","route":"/v1/chat/completions","provider":"openai","model":"gpt-4o-mini",` +
		`"stream":true,"headers":{"user-agent":"curl/8.5","x-multi":["a","b"]},` +
		`"values":{"k":"v","n":3,"z":null}}`))
	if c.RequestID() != "r1" || c.Route() != "/v1/chat/completions" || c.Provider() != "openai" ||
		c.Model() != "gpt-4o-mini" || !c.Stream() || c.Err() != nil {
		t.Fatalf("context: %s", c.Raw())
	}
	if c.Header("User-Agent") != "curl/8.5" || c.Header("x-multi") != "a, b" || c.Header("x-none") != "" {
		t.Fatalf("headers: %v", c.Headers())
	}
	if s, ok := c.StringValue("k"); !ok || s != "v" {
		t.Fatalf("k: %q %v", s, ok)
	}
	for _, key := range []string{"n", "z", "absent"} {
		if _, ok := c.StringValue(key); ok {
			t.Fatalf("%s is not a string value", key)
		}
	}
	if v, ok := c.Value("n"); !ok || string(v) != "3" {
		t.Fatalf("n: %s %v", v, ok)
	}
}

func TestBadContextGivesZeroValues(t *testing.T) {
	c := NewContext([]byte(`{"request_id":`))
	if c.RequestID() != "" || c.Header("x") != "" || c.Err() == nil {
		t.Fatal("a bad context should give zero values and an error")
	}
	if NewContext(nil).Err() != nil {
		t.Fatal("an empty context is no error")
	}
}

func TestInputDecodesOnceAndLazily(t *testing.T) {
	in := NewInput[Request]([]byte(`{"model":"m"}`))
	if in.v != nil {
		t.Fatal("decoded before asked")
	}
	a, err := in.Decode()
	if err != nil || a.Model != "m" {
		t.Fatalf("%v %v", a, err)
	}
	a.Model = "changed"
	b, _ := in.Decode()
	if a != b || b.Model != "changed" {
		t.Fatal("Decode should return the same value every time")
	}

	empty := NewInput[Response](nil)
	if r, err := empty.Decode(); !empty.Empty() || r != nil || err != nil {
		t.Fatalf("empty input: %v %v", r, err)
	}
	if _, err := NewInput[Request]([]byte(`{`)).Decode(); err == nil {
		t.Fatal("bad JSON decodes")
	}
}

func TestHTTPRequest(t *testing.T) {
	r := NewHTTPRequest([]byte(`{"method":"POST","path":"/v1/chat/completions","headers":{"authorization":"Bearer k"}}`),
		[]byte(`{"model":"m"}`))
	if r.Method() != "POST" || r.Path() != "/v1/chat/completions" || r.Header("Authorization") != "Bearer k" {
		t.Fatalf("request: %s %s", r.Method(), r.Path())
	}
	var body Request
	if err := r.DecodeBody(&body); err != nil || body.Model != "m" || string(r.Body()) != `{"model":"m"}` {
		t.Fatalf("body: %+v %v", body, err)
	}
}
