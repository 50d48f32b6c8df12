package heimdall

import (
	"strings"
	"testing"
)

var benchCtx = []byte(`{"request_id":"4b1c2d3e","route":"/v1/chat/completions","provider":"openai","model":"gpt-4o-mini",` +
	`"stream":false,"headers":{"user-agent":"curl/8.5","x-team":"search","content-type":"application/json"},` +
	`"values":{"rate_limit_key":"9418b81169b79003fd8c4481e61b79a762e996a0c172cda188c927714b5ee05b"}}`)

var benchReq = []byte(`{"model":"openai/gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},` +
	`{"role":"user","content":"` + strings.Repeat("Hello there, ", 20) + `"}],"temperature":0.2,"seed":1}`)

func benchPlugin(b *testing.B, pre func(*Context, *Input[Request]) (PreHookResult, error)) {
	old := registered
	b.Cleanup(func() { registered = old })
	Register(&allHooks{namedOnly: namedOnly{"bench"}, pre: pre})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if status, out := CallPreHook(benchCtx, benchReq); status != StatusOK {
			b.Fatal(string(out))
		}
	}
}

// The fast path: a hook that reads one context value and continues.
func BenchmarkPreHookContextOnly(b *testing.B) {
	benchPlugin(b, func(c *Context, _ *Input[Request]) (PreHookResult, error) {
		c.StringValue("rate_limit_key")
		return PreHookResult{}, nil
	})
}

// A hook that decodes the request, changes a field and hands it back.
func BenchmarkPreHookModifyRequest(b *testing.B) {
	benchPlugin(b, func(_ *Context, in *Input[Request]) (PreHookResult, error) {
		r, err := in.Decode()
		if err != nil {
			return PreHookResult{}, err
		}
		t := 0.5
		r.Temperature = &t
		return PreHookResult{Request: r}, nil
	})
}
