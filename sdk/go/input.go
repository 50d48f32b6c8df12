package heimdall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Hook inputs are decoded lazily: the SDK hands a hook the bytes the host sent, and parses them the first time the
// hook asks for a decoded value. A hook that only looks at the context, or that only hashes the raw request, never
// pays for parsing the rest. Decoding happens once; later calls return the same values.
//
// The bytes are the SDK's own copy (the host's buffers die when the hook returns), so a hook may keep them.

// Input is a lazily decoded JSON input of type T: a Request, Response, Error or Chunk.
type Input[T any] struct {
	raw  []byte
	once sync.Once
	v    *T
	err  error
}

// NewInput wraps raw JSON as an Input. Plugins use it to call their hooks from tests.
func NewInput[T any](raw []byte) *Input[T] { return &Input[T]{raw: raw} }

// Raw returns the JSON text exactly as the host sent it.
func (in *Input[T]) Raw() []byte { return in.raw }

// Empty reports whether the host sent nothing: PostHook's response when the result is an error, and its error when
// the result is a response.
func (in *Input[T]) Empty() bool { return len(in.raw) == 0 }

// Decode parses the input on first use and returns the value, the same pointer on every call, so a hook can change
// it and return it (for example in ModifiedRequest). An empty input decodes to nil, nil.
func (in *Input[T]) Decode() (*T, error) {
	in.once.Do(func() {
		if len(in.raw) == 0 {
			return
		}
		in.v = new(T)
		if err := json.Unmarshal(in.raw, in.v); err != nil {
			in.v, in.err = nil, fmt.Errorf("cannot decode %T: %w", *in.v, err)
		}
	})
	return in.v, in.err
}

// Headers are HTTP request headers, keyed by lower-case name. A header sent more than once arrives as one value,
// joined with ", ".
type Headers map[string]string

func (h *Headers) UnmarshalJSON(data []byte) error {
	var plain map[string]string
	if json.Unmarshal(data, &plain) == nil { // the usual case: one value per header
		*h = plain
		return nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	out := make(Headers, len(raw))
	for name, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			out[name] = s
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return err
		}
		out[name] = strings.Join(list, ", ")
	}
	*h = out
	return nil
}

// Context is the context object every hook receives: the request's id, route, provider and model, its headers
// (lower-case, without credentials) and the values plugins set earlier in the same request. Accessors return zero
// values when the context could not be parsed; Err says why.
type Context struct {
	raw  []byte
	once sync.Once
	err  error
	data struct {
		RequestID string                     `json:"request_id"`
		Route     string                     `json:"route"`
		Provider  string                     `json:"provider"`
		Model     string                     `json:"model"`
		Stream    bool                       `json:"stream"`
		Headers   Headers                    `json:"headers"`
		Values    map[string]json.RawMessage `json:"values"`
	}
}

// NewContext wraps a context object's JSON. Plugins use it to call their hooks from tests.
func NewContext(raw []byte) *Context { return &Context{raw: raw} }

func (c *Context) load() {
	c.once.Do(func() {
		if len(c.raw) > 0 {
			c.err = json.Unmarshal(c.raw, &c.data)
		}
	})
}

// Raw returns the context's JSON as the host sent it.
func (c *Context) Raw() []byte { return c.raw }

// Err returns the error from parsing the context, if any.
func (c *Context) Err() error { c.load(); return c.err }

func (c *Context) RequestID() string { c.load(); return c.data.RequestID }
func (c *Context) Route() string     { c.load(); return c.data.Route }
func (c *Context) Provider() string  { c.load(); return c.data.Provider }
func (c *Context) Model() string     { c.load(); return c.data.Model }
func (c *Context) Stream() bool      { c.load(); return c.data.Stream }

// Header returns a request header's value ("" when absent). The name is matched case-insensitively.
func (c *Context) Header(name string) string {
	c.load()
	return c.data.Headers[strings.ToLower(name)]
}

// Headers returns all request headers the context carries. Do not modify the map.
func (c *Context) Headers() Headers { c.load(); return c.data.Headers }

// Value returns a context value set by a plugin earlier in this request, as JSON.
func (c *Context) Value(key string) (json.RawMessage, bool) {
	c.load()
	v, ok := c.data.Values[key]
	return v, ok
}

// StringValue returns a context value that is a JSON string; ok is false when it is absent or not a string.
func (c *Context) StringValue(key string) (s string, ok bool) {
	v, found := c.Value(key)
	v = bytes.TrimSpace(v)
	// Check the type first: null would unmarshal into a string without complaint.
	if !found || len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// HTTPRequest is the raw HTTP request a TransportInterceptor sees: method, path and headers (lower-case, credentials
// included), and the body exactly as received. Accessors return zero values when the request line could not be
// parsed; Err says why.
type HTTPRequest struct {
	meta []byte
	body []byte
	once sync.Once
	err  error
	data struct {
		Method  string  `json:"method"`
		Path    string  `json:"path"`
		Headers Headers `json:"headers"`
	}
}

// NewHTTPRequest wraps the {"method", "path", "headers"} JSON and the body. Plugins use it to call their hooks from
// tests.
func NewHTTPRequest(meta, body []byte) *HTTPRequest { return &HTTPRequest{meta: meta, body: body} }

func (r *HTTPRequest) load() {
	r.once.Do(func() {
		if len(r.meta) > 0 {
			r.err = json.Unmarshal(r.meta, &r.data)
		}
	})
}

// Err returns the error from parsing the request line and headers, if any.
func (r *HTTPRequest) Err() error { r.load(); return r.err }

func (r *HTTPRequest) Method() string { r.load(); return r.data.Method }
func (r *HTTPRequest) Path() string   { r.load(); return r.data.Path }

// Header returns a header's value ("" when absent). The name is matched case-insensitively.
func (r *HTTPRequest) Header(name string) string {
	r.load()
	return r.data.Headers[strings.ToLower(name)]
}

// Headers returns all headers. Do not modify the map.
func (r *HTTPRequest) Headers() Headers { r.load(); return r.data.Headers }

// Body returns the request body exactly as received.
func (r *HTTPRequest) Body() []byte { return r.body }

// DecodeBody parses the body as JSON into v.
func (r *HTTPRequest) DecodeBody(v any) error { return json.Unmarshal(r.body, v) }
