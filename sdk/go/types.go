package heimdall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// The OpenAI chat-completions shapes that cross the ABI. Each struct names the common fields and keeps every other
// member in Extra, so a decode/encode round trip loses nothing a plugin did not change. Extra must not hold the
// name of a named field (the field wins).

// Request is a chat-completions request, the input of PreHook.
type Request struct {
	Model string `json:"model,omitempty"`
	// Messages is left out of the JSON when nil (no "messages" member, or null), and written as [] when empty but
	// not nil, so "messages": [] survives a decode/encode round trip.
	Messages    []Message       `json:"messages,omitempty"`
	Stream      bool            `json:"stream,omitempty"`
	MaxTokens   *int            `json:"max_tokens,omitempty"`
	Temperature *float64        `json:"temperature,omitempty"`
	TopP        *float64        `json:"top_p,omitempty"`
	Stop        json.RawMessage `json:"stop,omitempty"` // a string or an array of strings
	User        string          `json:"user,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// Message is one message of a request, a response's choice, or a chunk's delta.
type Message struct {
	Role       string          `json:"role,omitempty"`
	Content    *Content        `json:"content,omitempty"` // nil when absent or null
	Name       string          `json:"name,omitempty"`
	ToolCalls  json.RawMessage `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// Content is a message's content: a plain string (Text), or an array of parts (Parts: text, image_url,
// input_audio, ...). It encodes as an array when Parts is non-nil, else as a string.
type Content struct {
	Text  string
	Parts []ContentPart
}

// ContentPart is one part of an array content.
type ContentPart struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"` // for "text" parts; other kinds keep their payload in Extra

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// Response is a chat.completion object.
type Response struct {
	ID      string   `json:"id,omitempty"`
	Object  string   `json:"object,omitempty"`
	Created int64    `json:"created,omitempty"`
	Model   string   `json:"model,omitempty"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// Choice is one choice of a Response.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// Usage counts a response's tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// Chunk is a chat.completion.chunk object, one event of a streamed response.
type Chunk struct {
	ID      string        `json:"id,omitempty"`
	Object  string        `json:"object,omitempty"`
	Created int64         `json:"created,omitempty"`
	Model   string        `json:"model,omitempty"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// ChunkChoice is one choice of a Chunk. FinishReason is nil (JSON null) until the choice's last chunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Message `json:"delta"`
	FinishReason *string `json:"finish_reason"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// Error is a request's error: the input of PostHook when the result is an error, and what PreHook, PostHook and
// StreamChunkHook return to fail a request on purpose.
type Error struct {
	StatusCode int    `json:"status_code,omitempty"` // the HTTP status
	Message    string `json:"message"`
	Type       string `json:"type,omitempty"` // OpenAI's error type: "invalid_request_error", "rate_limit_error", ...
	Code       string `json:"code,omitempty"` // a stable, searchable code such as "rate_limited"
	// AllowFallbacks says whether the gateway may try the request's fallback models; nil means the default, true.
	AllowFallbacks *bool `json:"allow_fallbacks,omitempty"`
	// RetryAfter, in seconds, asks the gateway to send a retry-after header with the error (0: none).
	RetryAfter int `json:"retry_after,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`

	extraOrder []string // Extra's keys in the order they came, then were set: they are written back in it
}

// FallbacksAllowed reports AllowFallbacks with its default applied.
func (e *Error) FallbacksAllowed() bool { return e.AllowFallbacks == nil || *e.AllowFallbacks }

// TextContent returns a plain string content.
func TextContent(s string) *Content { return &Content{Text: s} }

// String returns the content as text: the string, or the text of the text parts joined with newlines.
func (c *Content) String() string {
	if c == nil {
		return ""
	}
	if c.Parts == nil {
		return c.Text
	}
	var texts []string
	for _, p := range c.Parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

func (c Content) MarshalJSON() ([]byte, error) {
	if c.Parts != nil {
		return marshal(c.Parts)
	}
	return marshal(c.Text)
}

func (c *Content) UnmarshalJSON(data []byte) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		c.Text = ""
		c.Parts = []ContentPart{}
		return json.Unmarshal(data, &c.Parts)
	}
	if len(trimmed) > 0 && trimmed[0] == '"' {
		c.Parts = nil
		return json.Unmarshal(data, &c.Text)
	}
	return fmt.Errorf("heimdall: message content must be a string or an array of parts, got %.20s", trimmed)
}

// SetExtra sets the member key of r.Extra to v encoded as JSON, making the map if it is nil; a new key is written
// after the others. v may be any JSON-encodable value, or raw JSON text as json.RawMessage or []byte; nil is written
// as null. A key that names one of the struct's fields ("model", ...), or a v that does not encode, is a mistake in
// the plugin: SetExtra panics, and the SDK turns the panic into the hook's failure, with the message and the line.
// The same method exists on every type with an Extra map.
func (r *Request) SetExtra(key string, v any) { setExtra(&r.Extra, &r.extraOrder, requestType, key, v) }

// SetExtra sets a member of m.Extra; see Request.SetExtra.
func (m *Message) SetExtra(key string, v any) { setExtra(&m.Extra, &m.extraOrder, messageType, key, v) }

// SetExtra sets a member of p.Extra; see Request.SetExtra.
func (p *ContentPart) SetExtra(key string, v any) {
	setExtra(&p.Extra, &p.extraOrder, contentPartType, key, v)
}

// SetExtra sets a member of r.Extra, such as a tag the client should see; see Request.SetExtra.
func (r *Response) SetExtra(key string, v any) {
	setExtra(&r.Extra, &r.extraOrder, responseType, key, v)
}

// SetExtra sets a member of c.Extra; see Request.SetExtra.
func (c *Choice) SetExtra(key string, v any) { setExtra(&c.Extra, &c.extraOrder, choiceType, key, v) }

// SetExtra sets a member of u.Extra; see Request.SetExtra.
func (u *Usage) SetExtra(key string, v any) { setExtra(&u.Extra, &u.extraOrder, usageType, key, v) }

// SetExtra sets a member of c.Extra; see Request.SetExtra.
func (c *Chunk) SetExtra(key string, v any) { setExtra(&c.Extra, &c.extraOrder, chunkType, key, v) }

// SetExtra sets a member of c.Extra; see Request.SetExtra.
func (c *ChunkChoice) SetExtra(key string, v any) {
	setExtra(&c.Extra, &c.extraOrder, chunkChoiceType, key, v)
}

// SetExtra sets a member of e.Extra; see Request.SetExtra.
func (e *Error) SetExtra(key string, v any) { setExtra(&e.Extra, &e.extraOrder, errorType, key, v) }

var (
	requestType     = reflect.TypeOf(Request{})
	messageType     = reflect.TypeOf(Message{})
	contentPartType = reflect.TypeOf(ContentPart{})
	responseType    = reflect.TypeOf(Response{})
	choiceType      = reflect.TypeOf(Choice{})
	usageType       = reflect.TypeOf(Usage{})
	chunkType       = reflect.TypeOf(Chunk{})
	chunkChoiceType = reflect.TypeOf(ChunkChoice{})
	errorType       = reflect.TypeOf(Error{})
)

// The (Un)MarshalJSON pairs below route each struct through decodeWithExtra/encodeWithExtra, using a defined type
// with the same fields but without these methods, so encoding/json does not recurse into them.

type (
	requestFields     Request
	messageFields     Message
	contentPartFields ContentPart
	responseFields    Response
	choiceFields      Choice
	usageFields       Usage
	chunkFields       Chunk
	chunkChoiceFields ChunkChoice
	errorFields       Error
)

func (r Request) MarshalJSON() ([]byte, error) {
	b, err := encodeWithExtra(requestFields(r), r.Extra, r.extraOrder)
	if err != nil || r.Messages == nil || len(r.Messages) > 0 {
		return b, err
	}
	// omitempty has dropped an empty, non-nil Messages (what "messages": [] decodes to): put it back in its place,
	// after "model", the only field before it.
	at := 1 // just past the opening brace
	if prefix := `{"model":`; bytes.HasPrefix(b, []byte(prefix)) {
		at = skipValue(b, len(prefix))
	}
	return insertMember(b, at, `"messages":[]`), nil
}
func (r *Request) UnmarshalJSON(data []byte) (err error) {
	var f requestFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*r = Request(f)
	return err
}

func (m Message) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(messageFields(m), m.Extra, m.extraOrder)
}
func (m *Message) UnmarshalJSON(data []byte) (err error) {
	var f messageFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*m = Message(f)
	return err
}

func (p ContentPart) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(contentPartFields(p), p.Extra, p.extraOrder)
}
func (p *ContentPart) UnmarshalJSON(data []byte) (err error) {
	var f contentPartFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*p = ContentPart(f)
	return err
}

func (r Response) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(responseFields(r), r.Extra, r.extraOrder)
}
func (r *Response) UnmarshalJSON(data []byte) (err error) {
	var f responseFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*r = Response(f)
	return err
}

func (c Choice) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(choiceFields(c), c.Extra, c.extraOrder)
}
func (c *Choice) UnmarshalJSON(data []byte) (err error) {
	var f choiceFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*c = Choice(f)
	return err
}

func (u Usage) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(usageFields(u), u.Extra, u.extraOrder)
}
func (u *Usage) UnmarshalJSON(data []byte) (err error) {
	var f usageFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*u = Usage(f)
	return err
}

func (c Chunk) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(chunkFields(c), c.Extra, c.extraOrder)
}
func (c *Chunk) UnmarshalJSON(data []byte) (err error) {
	var f chunkFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*c = Chunk(f)
	return err
}

func (c ChunkChoice) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(chunkChoiceFields(c), c.Extra, c.extraOrder)
}
func (c *ChunkChoice) UnmarshalJSON(data []byte) (err error) {
	var f chunkChoiceFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*c = ChunkChoice(f)
	return err
}

func (e Error) MarshalJSON() ([]byte, error) {
	return encodeWithExtra(errorFields(e), e.Extra, e.extraOrder)
}
func (e *Error) UnmarshalJSON(data []byte) (err error) {
	var f errorFields
	f.Extra, f.extraOrder, err = decodeWithExtra(data, &f)
	*e = Error(f)
	return err
}
