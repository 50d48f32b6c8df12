package heimdall

import (
	"encoding/json"
	"strings"
	"testing"
)

type encodeCase struct {
	name string
	res  encoder
	want string // "" for no output; "error: ..." for an encoding error containing the text
}

func checkEncode(t *testing.T, cases []encodeCase) {
	t.Helper()
	for _, c := range cases {
		out, err := c.res.encode()
		switch {
		case strings.HasPrefix(c.want, "error: "):
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "error: ")) {
				t.Errorf("%s: want %s, got %s %v", c.name, c.want, out, err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == "":
			if out != nil {
				t.Errorf("%s: want no output, got %s", c.name, out)
			}
		default:
			if string(out) != c.want {
				t.Errorf("%s:\n got %s\nwant %s", c.name, out, c.want)
			}
		}
	}
}

func TestPreHookResultEncoding(t *testing.T) {
	var nilReq *Request
	checkEncode(t, []encodeCase{
		{"zero", PreHookResult{}, ""},
		{"continue", Continue(), ""},
		{"typed nil request", ModifiedRequest(nilReq), ""},
		{"nil raw", ModifiedRequest(json.RawMessage(nil)), ""},
		{"empty context", PreHookResult{Context: Values{}}, ""},
		{"request", ModifiedRequest(&Request{Model: "m"}), `{"request":{"model":"m"}}`},
		{"raw bytes are JSON", ModifiedRequest([]byte(`{"model":"m"}`)), `{"request":{"model":"m"}}`},
		{"map", ModifiedRequest(map[string]any{"model": "m"}), `{"request":{"model":"m"}}`},
		{"response", ShortCircuitResponse(json.RawMessage(`{"id":"x"}`)), `{"response":{"id":"x"}}`},
		{"error", ShortCircuitError(&Error{StatusCode: 400, Message: "no"}), `{"error":{"status_code":400,"message":"no"}}`},
		{"context only", Continue().WithContext("a", 1).WithContext("b", nil), `{"context":{"a":1,"b":null}}`},
		{"error and context", ShortCircuitError(&Error{Message: "x"}).WithContext("k", "v"),
			`{"error":{"message":"x"},"context":{"k":"v"}}`},
		{"two actions", PreHookResult{Request: &Request{}, Error: &Error{}}, "error: at most one"},
		{"invalid raw JSON", ModifiedRequest([]byte(`{`)), "error: "},
		{"unencodable", ModifiedRequest(func() {}), "error: unsupported type"},
	})
}

func TestWithContextDoesNotShareMaps(t *testing.T) {
	base := Continue().WithContext("a", 1)
	x := base.WithContext("b", 2)
	if len(base.Context) != 1 || len(x.Context) != 2 {
		t.Fatalf("base %v, x %v", base.Context, x.Context)
	}
}

func TestPostHookResultEncoding(t *testing.T) {
	checkEncode(t, []encodeCase{
		{"zero", PostHookResult{}, ""},
		{"response", PostHookResult{Response: &Response{ID: "r", Choices: []Choice{}}}, `{"response":{"id":"r","choices":[]}}`},
		{"error", PostHookResult{Error: &Error{Message: "bad"}}.WithContext("k", true), `{"error":{"message":"bad"},"context":{"k":true}}`},
		{"both", PostHookResult{Response: json.RawMessage(`{}`), Error: &Error{}}, "error: at most one"},
	})
}

func TestStreamChunkResultEncoding(t *testing.T) {
	checkEncode(t, []encodeCase{
		{"zero", StreamChunkResult{}, ""},
		{"drop", StreamChunkResult{Drop: true}, `{"drop":true}`},
		{"chunk", StreamChunkResult{Chunk: &Chunk{ID: "c", Choices: []ChunkChoice{{Delta: Message{Content: TextContent("x")}}}}},
			`{"chunk":{"id":"c","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}}`},
		{"error", StreamChunkResult{Error: &Error{Message: "stop"}}, `{"error":{"message":"stop"}}`},
		{"drop and chunk", StreamChunkResult{Drop: true, Chunk: json.RawMessage(`{}`)}, "error: at most one"},
	})
}

func TestTransportResultEncoding(t *testing.T) {
	checkEncode(t, []encodeCase{
		{"zero", TransportResult{}, ""},
		{"headers", TransportResult{}.WithHeader("x-team", "search").WithoutHeader("x-debug"),
			`{"headers":{"x-debug":null,"x-team":"search"}}`},
		{"body and context", TransportResult{Body: json.RawMessage(`{"model":"m"}`)}.WithContext("k", "v"),
			`{"body":{"model":"m"},"context":{"k":"v"}}`},
		{"response", TransportResult{Response: &HTTPResponse{StatusCode: 403, Headers: map[string]string{"x-reason": "geo"},
			Body: []byte(`{"error":"no"}`)}}, `{"response":{"status_code":403,"headers":{"x-reason":"geo"},"body":{"error":"no"}}}`},
		{"response with more", TransportResult{Response: &HTTPResponse{StatusCode: 403}}.WithHeader("a", "b"), "error: alone"},
	})
}
