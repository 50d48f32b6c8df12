package heimdall

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// jsonEqual compares two JSON texts as values, ignoring member order and whitespace.
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}

const fullRequest = `{
  "model": "openai/gpt-4o-mini",
  "messages": [
    {"role": "system", "content": "Be brief.", "name": "sys"},
    {"role": "user", "content": [
      {"type": "text", "text": "What is this?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
    ]},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "look", "arguments": "{}"}}], "refusal": null},
    {"role": "tool", "tool_call_id": "c1", "content": "a cat"}
  ],
  "stream": true,
  "max_tokens": 100,
  "temperature": 0,
  "top_p": 0.9,
  "stop": ["\n\n"],
  "user": "u1",
  "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
  "response_format": {"type": "json_object"},
  "seed": 7,
  "x_vendor": {"nested": [1, 2, {"deep": true}]}
}`

func TestRequestRoundTripKeepsEverything(t *testing.T) {
	var req Request
	if err := json.Unmarshal([]byte(fullRequest), &req); err != nil {
		t.Fatal(err)
	}
	if req.Model != "openai/gpt-4o-mini" || !req.Stream || *req.MaxTokens != 100 || *req.Temperature != 0 {
		t.Fatalf("named fields: %+v", req)
	}
	if len(req.Extra) != 4 || req.Extra["seed"] == nil || req.Extra["x_vendor"] == nil {
		t.Fatalf("extra: %v", req.Extra)
	}
	if got := req.Messages[1].Content; got.Parts == nil || got.Parts[1].Type != "image_url" || got.Parts[1].Extra["image_url"] == nil {
		t.Fatalf("parts: %+v", got)
	}
	if req.Messages[2].Content != nil || req.Messages[2].Extra["refusal"] == nil {
		t.Fatalf("assistant message: %+v", req.Messages[2])
	}

	out, err := json.Marshal(&req)
	if err != nil {
		t.Fatal(err)
	}
	// The one change a round trip makes: a null content is left out, which the API treats the same.
	var want map[string]any
	_ = json.Unmarshal([]byte(fullRequest), &want)
	delete(want["messages"].([]any)[2].(map[string]any), "content")
	wantJSON, _ := json.Marshal(want)
	jsonEqual(t, out, wantJSON)
}

func TestModifyingOneFieldKeepsTheOthers(t *testing.T) {
	in := NewInput[Request]([]byte(fullRequest))
	req, err := in.Decode()
	if err != nil {
		t.Fatal(err)
	}
	temp := 0.7
	req.Temperature = &temp
	req.Messages[0].Content = TextContent("Be very brief.")

	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(out, &got)
	if got["temperature"] != 0.7 || got["seed"] != float64(7) || got["response_format"] == nil || got["tools"] == nil {
		t.Fatalf("fields lost or unchanged: %s", out)
	}
	sys := got["messages"].([]any)[0].(map[string]any)
	if sys["content"] != "Be very brief." || sys["name"] != "sys" {
		t.Fatalf("system message: %v", sys)
	}
}

func TestContent(t *testing.T) {
	var c Content
	if err := json.Unmarshal([]byte(`"hi"`), &c); err != nil || c.Text != "hi" || c.Parts != nil {
		t.Fatalf("string: %+v %v", c, err)
	}
	if err := json.Unmarshal([]byte(`[{"type":"text","text":"a"},{"type":"input_audio","input_audio":{}},{"type":"text","text":"b"}]`), &c); err != nil {
		t.Fatal(err)
	}
	if c.String() != "a\nb" || len(c.Parts) != 3 {
		t.Fatalf("parts: %+v", c)
	}
	if err := json.Unmarshal([]byte(`[]`), &c); err != nil || c.Parts == nil {
		t.Fatalf("an empty array stays an array: %+v %v", c, err)
	}
	if out, _ := json.Marshal(c); string(out) != `[]` {
		t.Fatalf("empty parts encode as %s", out)
	}
	if err := json.Unmarshal([]byte(`42`), &c); err == nil {
		t.Fatal("a number is not content")
	}
	if out, _ := marshal(TextContent(`<b>&`)); string(out) != `"<b>&"` {
		t.Fatalf("HTML is not escaped: %s", out)
	}
	var nilContent *Content
	if nilContent.String() != "" {
		t.Fatal("nil content is empty")
	}
}

func TestResponseAndChunkRoundTrip(t *testing.T) {
	resp := `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",
	  "choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,"finish_reason":"stop"}],
	  "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":0}},
	  "system_fingerprint":"fp_1"}`
	var r Response
	if err := json.Unmarshal([]byte(resp), &r); err != nil {
		t.Fatal(err)
	}
	if r.Choices[0].Message.Content.Text != "Hi" || r.Usage.TotalTokens != 4 || r.Extra["system_fingerprint"] == nil {
		t.Fatalf("response: %+v", r)
	}
	out, _ := json.Marshal(r)
	jsonEqual(t, out, []byte(resp))

	chunk := `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",
	  "choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`
	var c Chunk
	if err := json.Unmarshal([]byte(chunk), &c); err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].FinishReason != nil || c.Choices[0].Delta.Content == nil {
		t.Fatalf("chunk: %+v", c)
	}
	out, _ = json.Marshal(c)
	jsonEqual(t, out, []byte(chunk))

	last := `{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	if err := json.Unmarshal([]byte(last), &c); err != nil {
		t.Fatal(err)
	}
	out, _ = json.Marshal(c)
	jsonEqual(t, out, []byte(last))
}

func TestError(t *testing.T) {
	in := `{"status_code":502,"message":"upstream: connection refused","type":"upstream_error","code":"HEIMDALL_ERR_UPSTREAM","param":null}`
	var e Error
	if err := json.Unmarshal([]byte(in), &e); err != nil {
		t.Fatal(err)
	}
	if e.StatusCode != 502 || !e.FallbacksAllowed() || e.Extra["param"] == nil {
		t.Fatalf("error: %+v", e)
	}
	out, _ := json.Marshal(e)
	jsonEqual(t, out, []byte(in))

	e = Error{StatusCode: 429, Message: "slow down", Type: "rate_limit_error", Code: "rate_limited",
		AllowFallbacks: Bool(false), RetryAfter: 3}
	out, _ = json.Marshal(&e)
	jsonEqual(t, out, []byte(`{"status_code":429,"message":"slow down","type":"rate_limit_error","code":"rate_limited","allow_fallbacks":false,"retry_after":3}`))
	if e.FallbacksAllowed() {
		t.Fatal("AllowFallbacks false")
	}
}

func TestExtraNeverOverridesANamedField(t *testing.T) {
	req := Request{Model: "a", Extra: map[string]json.RawMessage{"model": json.RawMessage(`"b"`), "z": nil}}
	out, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"model":"a","z":null}` {
		t.Fatalf("got %s", out)
	}
}

func TestDecodeConfig(t *testing.T) {
	cfg := struct {
		N int `json:"n"`
	}{N: 5}
	if err := DecodeConfig(nil, &cfg); err != nil || cfg.N != 5 {
		t.Fatalf("empty config keeps defaults: %v %v", cfg, err)
	}
	if err := DecodeConfig([]byte(`{}`), &cfg); err != nil || cfg.N != 5 {
		t.Fatalf("{} keeps defaults: %v %v", cfg, err)
	}
	if err := DecodeConfig([]byte(`{"n": 2}`), &cfg); err != nil || cfg.N != 2 {
		t.Fatalf("n: %v %v", cfg, err)
	}
	if err := DecodeConfig([]byte(`{"m": 2}`), &cfg); err == nil {
		t.Fatal("unknown field accepted")
	}
	if err := DecodeConfig([]byte(`{"n": "x"}`), &cfg); err == nil {
		t.Fatal("wrong type accepted")
	}
	if err := DecodeConfig([]byte(`{} {}`), &cfg); err == nil {
		t.Fatal("two values accepted")
	}
}

func TestRequestRoundTripKeepsMessagesAsTheyWere(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"model":"m","messages":[]}`, `{"model":"m","messages":[]}`},
		{`{"messages":[]}`, `{"messages":[]}`},
		{`{"messages":[],"model":"m","max_tokens":5,"seed":1}`, `{"model":"m","messages":[],"max_tokens":5,"seed":1}`},
		{`{"messages":[],"stream":true}`, `{"messages":[],"stream":true}`},
		{`{"messages":[],"seed":1}`, `{"messages":[],"seed":1}`},
		{`{"model":"m\"x","messages":[],"tools":[]}`, `{"model":"m\"x","messages":[],"tools":[]}`},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		// No messages member, or null: nothing is written (the gateway reads both as "no messages").
		{`{"model":"m","max_tokens":5}`, `{"model":"m","max_tokens":5}`},
		{`{"model":"m","messages":null}`, `{"model":"m"}`},
		{`{}`, `{}`},
	} {
		var req Request
		if err := json.Unmarshal([]byte(c.in), &req); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(req)
		if err != nil || string(out) != c.want {
			t.Errorf("%s: got %s (%v), want %s", c.in, out, err, c.want)
		}
	}

	// Built by hand: a nil slice is left out, an empty one is written.
	if out, _ := json.Marshal(Request{Model: "m"}); string(out) != `{"model":"m"}` {
		t.Errorf("nil messages: %s", out)
	}
	if out, _ := json.Marshal(&Request{Messages: []Message{}, MaxTokens: new(int)}); string(out) != `{"messages":[],"max_tokens":0}` {
		t.Errorf("empty messages: %s", out)
	}

	// And through a hook's result, as the gateway receives it.
	req, err := NewInput[Request]([]byte(`{"model":"m","messages":[],"max_tokens":5000}`)).Decode()
	if err != nil {
		t.Fatal(err)
	}
	*req.MaxTokens = 256
	out, err := PreHookResult{Request: req}.encode()
	if err != nil || string(out) != `{"request":{"model":"m","messages":[],"max_tokens":256}}` {
		t.Fatalf("result: %s %v", out, err)
	}
}

// panicMessage runs fn and returns what it panicked with ("" when it did not).
func panicMessage(fn func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	fn()
	return ""
}

func TestSetExtra(t *testing.T) {
	var r Response // Extra is nil
	r.SetExtra("model_guard", map[string]any{"max_tokens": 256, "requested": 5000})
	r.SetExtra("raw", json.RawMessage(` {"a": [1, 2]} `))
	r.SetExtra("bytes", []byte(`"<b>"`)) // []byte is JSON text, as in results
	r.SetExtra("html", "<&>")
	r.SetExtra("none", nil)
	var nilMap map[string]int
	r.SetExtra("nil_map", nilMap)
	r.Choices = []Choice{}
	out, err := marshal(r) // how the SDK encodes results: <, > and & are not escaped
	// Members are written in the order they were set.
	want := `{"choices":[],"model_guard":{"max_tokens":256,"requested":5000},"raw":{"a":[1,2]},"bytes":"<b>","html":"<&>","none":null,"nil_map":null}`
	if err != nil || string(out) != want {
		t.Fatalf("got  %s (%v)\nwant %s", out, err, want)
	}

	// Setting a member again replaces it, in its place.
	r.SetExtra("none", 1)
	if string(r.Extra["none"]) != `1` {
		t.Fatalf("replace: %s", r.Extra["none"])
	}

	// A named field is a mistake: a panic (a hook failure, through the SDK), and nothing is stored.
	if msg := panicMessage(func() { r.SetExtra("model", "x") }); msg != `heimdall: SetExtra("model"): "model" is a field of Response, not an extra member: set the field instead` {
		t.Fatalf("named field: %q", msg)
	}
	if _, ok := r.Extra["model"]; ok {
		t.Fatal("a refused member was stored")
	}
	// Values that cannot be encoded too, with the key in the message.
	if msg := panicMessage(func() { r.SetExtra("bad", []byte(`{not json`)) }); !strings.Contains(msg, `SetExtra("bad")`) {
		t.Fatalf("invalid raw JSON: %q", msg)
	}
	if msg := panicMessage(func() { r.SetExtra("bad", func() {}) }); msg == "" {
		t.Fatal("a func was encoded")
	}
	if _, ok := r.Extra["bad"]; ok {
		t.Fatal("a refused value was stored")
	}

	// Every type with an Extra map has it, and refuses its own field names.
	type setter interface{ SetExtra(string, any) }
	for _, c := range []struct {
		v     setter
		field string
	}{
		{&Request{}, "max_tokens"}, {&Message{}, "tool_call_id"}, {&ContentPart{}, "type"}, {&Response{}, "created"},
		{&Choice{}, "finish_reason"}, {&Usage{}, "total_tokens"}, {&Chunk{}, "choices"}, {&ChunkChoice{}, "delta"},
		{&Error{}, "retry_after"},
	} {
		if msg := panicMessage(func() { c.v.SetExtra(c.field, 1) }); msg == "" {
			t.Errorf("%T accepted its field %q", c.v, c.field)
		}
		c.v.SetExtra("x_vendor", true)
		out, _ := json.Marshal(c.v)
		if !strings.HasSuffix(string(out), `"x_vendor":true}`) {
			t.Errorf("%T encodes as %s", c.v, out)
		}
	}
}

func TestUnknownMembersKeepTheirOrder(t *testing.T) {
	in := `{"model":"m","zeta":1,"messages":[],"alpha":{"b":2,"a":1},"tools":[],"mid":"x","max_tokens":5}`
	var r Request
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	r.SetExtra("added", true)
	out, err := json.Marshal(&r)
	want := `{"model":"m","messages":[],"max_tokens":5,"zeta":1,"alpha":{"b":2,"a":1},"tools":[],"mid":"x","added":true}`
	if err != nil || string(out) != want {
		t.Fatalf("got  %s (%v)\nwant %s", out, err, want)
	}
	// A member set straight into the map (no order known) goes after them, in key order.
	r.Extra["aaa"] = json.RawMessage(`0`)
	out, _ = json.Marshal(&r)
	if !strings.HasSuffix(string(out), `"mid":"x","added":true,"aaa":0}`) {
		t.Fatalf("got %s", out)
	}
}
