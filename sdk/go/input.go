package heimdall

import (
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
		v := new(T)
		if err := json.Unmarshal(in.raw, v); err != nil {
			in.err = fmt.Errorf("cannot decode %T: %w", *v, err)
			return
		}
		in.v = v
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
// (lower-case, without credentials) and the values plugins set earlier in the same request.
//
// Every hook of every plugin gets one, and most read a field or two, so accessors do not decode the whole object:
// the first call finds where each top-level member lies in a single light scan, and each accessor then decodes
// only what it returns. Accessors return zero values for what is absent or malformed; Err checks the whole object.
type Context struct {
	raw  []byte
	once sync.Once
	// The raw JSON of each top-level member, as slices of raw.
	requestID, route, provider, model, stream, headers, values []byte
}

// NewContext wraps a context object's JSON. Plugins use it to call their hooks from tests.
func NewContext(raw []byte) *Context { return &Context{raw: raw} }

func (c *Context) load() {
	c.once.Do(func() {
		members(c.raw, func(key, value []byte) bool {
			switch string(key) {
			case "request_id":
				c.requestID = value
			case "route":
				c.route = value
			case "provider":
				c.provider = value
			case "model":
				c.model = value
			case "stream":
				c.stream = value
			case "headers":
				c.headers = value
			case "values":
				c.values = value
			}
			return true
		})
	})
}

// Raw returns the context's JSON as the host sent it.
func (c *Context) Raw() []byte { return c.raw }

// Err reports whether the context is malformed: not a JSON object, or with members of the wrong type.
func (c *Context) Err() error {
	var check struct {
		RequestID string                     `json:"request_id"`
		Route     string                     `json:"route"`
		Provider  string                     `json:"provider"`
		Model     string                     `json:"model"`
		Stream    bool                       `json:"stream"`
		Headers   Headers                    `json:"headers"`
		Values    map[string]json.RawMessage `json:"values"`
	}
	if len(c.raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.raw, &check); err != nil {
		return fmt.Errorf("malformed context: %w", err)
	}
	return nil
}

func (c *Context) RequestID() string { c.load(); return jsonString(c.requestID) }
func (c *Context) Route() string     { c.load(); return jsonString(c.route) }
func (c *Context) Provider() string  { c.load(); return jsonString(c.provider) }
func (c *Context) Model() string     { c.load(); return jsonString(c.model) }
func (c *Context) Stream() bool      { c.load(); return string(c.stream) == "true" }

// Header returns a request header's value ("" when absent). The name is matched case-insensitively.
func (c *Context) Header(name string) string {
	c.load()
	return headerValue(member(c.headers, strings.ToLower(name)))
}

// Headers returns all request headers the context carries, as a new map.
func (c *Context) Headers() Headers {
	c.load()
	var h Headers
	if len(c.headers) > 0 {
		_ = json.Unmarshal(c.headers, &h)
	}
	return h
}

// Value returns a context value set by a plugin earlier in this request, as JSON. Do not modify it.
func (c *Context) Value(key string) (json.RawMessage, bool) {
	c.load()
	v := member(c.values, key)
	return v, v != nil
}

// StringValue returns a context value that is a JSON string; ok is false when it is absent or not a string.
func (c *Context) StringValue(key string) (s string, ok bool) {
	v, found := c.Value(key)
	if !found || len(v) == 0 || v[0] != '"' {
		return "", false
	}
	return jsonString(v), true
}

// headerValue decodes a header's raw JSON value: a string, or an array of strings (a header sent more than once).
func headerValue(raw []byte) string {
	if len(raw) > 0 && raw[0] == '[' {
		var list []string
		_ = json.Unmarshal(raw, &list)
		return strings.Join(list, ", ")
	}
	return jsonString(raw)
}

// HTTPRequest is the raw HTTP request a TransportInterceptor sees: method, path and headers (lower-case, credentials
// included), and the body exactly as received. Like Context, it decodes only what an accessor returns.
type HTTPRequest struct {
	meta                  []byte
	body                  []byte
	once                  sync.Once
	method, path, headers []byte // raw JSON members of meta
}

// NewHTTPRequest wraps the {"method", "path", "headers"} JSON and the body. Plugins use it to call their hooks from
// tests.
func NewHTTPRequest(meta, body []byte) *HTTPRequest { return &HTTPRequest{meta: meta, body: body} }

func (r *HTTPRequest) load() {
	r.once.Do(func() {
		members(r.meta, func(key, value []byte) bool {
			switch string(key) {
			case "method":
				r.method = value
			case "path":
				r.path = value
			case "headers":
				r.headers = value
			}
			return true
		})
	})
}

// Err reports whether the request line and headers are malformed.
func (r *HTTPRequest) Err() error {
	var check struct {
		Method  string  `json:"method"`
		Path    string  `json:"path"`
		Headers Headers `json:"headers"`
	}
	if len(r.meta) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.meta, &check); err != nil {
		return fmt.Errorf("malformed HTTP request: %w", err)
	}
	return nil
}

func (r *HTTPRequest) Method() string { r.load(); return jsonString(r.method) }
func (r *HTTPRequest) Path() string   { r.load(); return jsonString(r.path) }

// Header returns a header's value ("" when absent). The name is matched case-insensitively.
func (r *HTTPRequest) Header(name string) string {
	r.load()
	return headerValue(member(r.headers, strings.ToLower(name)))
}

// Headers returns all headers, as a new map.
func (r *HTTPRequest) Headers() Headers {
	r.load()
	var h Headers
	if len(r.headers) > 0 {
		_ = json.Unmarshal(r.headers, &h)
	}
	return h
}

// Body returns the request body exactly as received.
func (r *HTTPRequest) Body() []byte { return r.body }

// DecodeBody parses the body as JSON into v.
func (r *HTTPRequest) DecodeBody(v any) error { return json.Unmarshal(r.body, v) }
