package heimdall

import "errors"

// A hook's result is encoded to the ABI's "action" object. Every result is written as a struct literal, the same way
// in every hook: PreHookResult{Request: req}, PostHookResult{Error: e}, StreamChunkResult{Chunk: c}, TransportResult{
// Response: r}. The zero value of every result type means "continue
// unchanged": the SDK then hands back an empty buffer and the host parses nothing, so a hook that only observes
// should return it. Values of type any (a request, response, chunk or body) may be the SDK's typed structs, maps,
// any JSON-encodable value, or raw JSON as json.RawMessage or []byte.

// Values are context values to set for later hooks of the same request. A nil value removes the key.
type Values map[string]any

// with returns a copy of v with key set, so results built from a common base do not share a map.
func (v Values) with(key string, value any) Values {
	out := make(Values, len(v)+1)
	for k, x := range v {
		out[k] = x
	}
	out[key] = value
	return out
}

// PreHookResult is what PreHook returns: continue (the zero value), replace the request, or short-circuit with a
// response or an error; any of them may set context values.
type PreHookResult struct {
	Request  any    // replaces the request for later plugins and the provider
	Response any    // short-circuits with this chat.completion (a cache hit)
	Error    *Error // short-circuits with this error
	Context  Values
}

// The constructors below predate the one style every result now uses, the struct literal (PreHookResult{},
// PreHookResult{Request: req}, PostHookResult{Response: r}, StreamChunkResult{Drop: true}, ...). They still work.

// Continue returns the result that changes nothing.
//
// Deprecated: use PreHookResult{}.
func Continue() PreHookResult { return PreHookResult{} }

// ModifiedRequest replaces the request, typically the *Request a hook decoded and changed.
//
// Deprecated: use PreHookResult{Request: req}.
func ModifiedRequest(req any) PreHookResult { return PreHookResult{Request: req} }

// ShortCircuitResponse answers the request with resp; the provider and later PreHooks are skipped.
//
// Deprecated: use PreHookResult{Response: resp}.
func ShortCircuitResponse(resp any) PreHookResult { return PreHookResult{Response: resp} }

// ShortCircuitError fails the request with e; the provider and later PreHooks are skipped.
//
// Deprecated: use PreHookResult{Error: e}.
func ShortCircuitError(e *Error) PreHookResult { return PreHookResult{Error: e} }

// WithContext returns r that also sets the context value key (nil removes it).
func (r PreHookResult) WithContext(key string, value any) PreHookResult {
	r.Context = r.Context.with(key, value)
	return r
}

func (r PreHookResult) encode() ([]byte, error) {
	req, resp := jsonValue(r.Request), jsonValue(r.Response)
	if count(req != nil, resp != nil, r.Error != nil) > 1 {
		return nil, errors.New("PreHookResult: set at most one of Request, Response and Error")
	}
	if req == nil && resp == nil && r.Error == nil && len(r.Context) == 0 {
		return nil, nil
	}
	return marshal(struct {
		Request  any    `json:"request,omitempty"`
		Response any    `json:"response,omitempty"`
		Error    *Error `json:"error,omitempty"`
		Context  Values `json:"context,omitempty"`
	}{req, resp, r.Error, r.Context})
}

// PostHookResult is what PostHook returns: continue (the zero value), replace the response (or recover from an
// error with one), or replace the error (or turn a response into one); any of them may set context values.
type PostHookResult struct {
	Response any
	Error    *Error
	Context  Values
}

// WithContext returns r that also sets the context value key (nil removes it).
func (r PostHookResult) WithContext(key string, value any) PostHookResult {
	r.Context = r.Context.with(key, value)
	return r
}

func (r PostHookResult) encode() ([]byte, error) {
	resp := jsonValue(r.Response)
	if resp != nil && r.Error != nil {
		return nil, errors.New("PostHookResult: set at most one of Response and Error")
	}
	if resp == nil && r.Error == nil && len(r.Context) == 0 {
		return nil, nil
	}
	return marshal(struct {
		Response any    `json:"response,omitempty"`
		Error    *Error `json:"error,omitempty"`
		Context  Values `json:"context,omitempty"`
	}{resp, r.Error, r.Context})
}

// StreamChunkResult is what StreamChunkHook returns: continue (the zero value), replace the chunk, drop it, or
// abort the stream with an error.
type StreamChunkResult struct {
	Chunk any
	Drop  bool
	Error *Error
}

func (r StreamChunkResult) encode() ([]byte, error) {
	chunk := jsonValue(r.Chunk)
	if count(chunk != nil, r.Drop, r.Error != nil) > 1 {
		return nil, errors.New("StreamChunkResult: set at most one of Chunk, Drop and Error")
	}
	if chunk == nil && !r.Drop && r.Error == nil {
		return nil, nil
	}
	return marshal(struct {
		Chunk any    `json:"chunk,omitempty"`
		Drop  bool   `json:"drop,omitempty"`
		Error *Error `json:"error,omitempty"`
	}{chunk, r.Drop, r.Error})
}

// TransportResult is what TransportInterceptor returns: continue (the zero value), or any combination of header
// changes, a new body and context values; or, alone, a Response that answers the request directly (nothing after
// this plugin runs, not even the provider).
type TransportResult struct {
	Headers  map[string]*string // a nil value removes the header; see WithHeader and WithoutHeader
	Body     any                // replaces the body
	Context  Values
	Response *HTTPResponse
}

// HTTPResponse is an answer a TransportInterceptor gives instead of the gateway.
type HTTPResponse struct {
	StatusCode int               `json:"status_code"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       any               `json:"body,omitempty"`
}

// WithHeader returns r that also sets a request header.
func (r TransportResult) WithHeader(name, value string) TransportResult {
	r.Headers = withHeader(r.Headers, name, &value)
	return r
}

// WithoutHeader returns r that also removes a request header.
func (r TransportResult) WithoutHeader(name string) TransportResult {
	r.Headers = withHeader(r.Headers, name, nil)
	return r
}

// WithContext returns r that also sets the context value key (nil removes it).
func (r TransportResult) WithContext(key string, value any) TransportResult {
	r.Context = r.Context.with(key, value)
	return r
}

func withHeader(h map[string]*string, name string, value *string) map[string]*string {
	out := make(map[string]*string, len(h)+1)
	for k, v := range h {
		out[k] = v
	}
	out[name] = value
	return out
}

func (r TransportResult) encode() ([]byte, error) {
	body := jsonValue(r.Body)
	changes := len(r.Headers) > 0 || body != nil || len(r.Context) > 0
	if r.Response != nil {
		if changes {
			return nil, errors.New("TransportResult: a Response must come alone, without Headers, Body or Context")
		}
		resp := *r.Response
		resp.Body = jsonValue(resp.Body)
		return marshal(struct {
			Response HTTPResponse `json:"response"`
		}{resp})
	}
	if !changes {
		return nil, nil
	}
	return marshal(struct {
		Headers map[string]*string `json:"headers,omitempty"`
		Body    any                `json:"body,omitempty"`
		Context Values             `json:"context,omitempty"`
	}{r.Headers, body, r.Context})
}

// count returns how many of the flags are true.
func count(flags ...bool) int {
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	return n
}
