// Command testplugin is a Go plugin that exercises every hook and every way a hook can end, for testing the SDK
// and the gateway's loader. The request's x-test header (which the context carries) chooses what each hook does,
// so one build serves every case:
//
//	go build -buildmode=c-shared -o go-testplugin.so ./internal/testplugin
//
//	x-test    TransportInterceptor      PreHook                      PostHook                   StreamChunkHook
//	(none)    continue                  continue (request unparsed)  continue                   continue
//	panic     panics                    panics                       panics                     panics
//	nil       -                         nil dereference              -                          -
//	error     fails                     fails                        fails                      fails
//	modify    sets x-added, drops       sets temperature 0.5         uppercases the content     uppercases the delta
//	          x-remove
//	respond   answers 403 itself        short-circuits: response     turns an error into a      drops the chunk
//	                                                                 response
//	reject    -                         short-circuits: 400 error    turns into a 502 error     aborts: 500 error
//	context   sets "transport_tag"      sets "tag"                   -                          -
//	invalid   -                         sets both request and error  -                          -
//
// Init takes {"tag": "...", "fail": "message", "panic": true}: fail refuses to start, panic panics.
package main

//go:generate go run github.com/heimdall-gateway/heimdall/sdk/go/cmd/heimdall-gen

import (
	"errors"
	"strings"

	heimdall "github.com/heimdall-gateway/heimdall/sdk/go"
)

type testPlugin struct {
	tag string
}

func init() { heimdall.Register(&testPlugin{}) }

func (p *testPlugin) Name() string { return "go-testplugin" }

func (p *testPlugin) Init(config []byte) error {
	cfg := struct {
		Tag   string `json:"tag"`
		Fail  string `json:"fail"`
		Panic bool   `json:"panic"`
	}{Tag: "default"}
	if err := heimdall.DecodeConfig(config, &cfg); err != nil {
		return err
	}
	if cfg.Panic {
		panic("Init was told to panic")
	}
	if cfg.Fail != "" {
		return errors.New(cfg.Fail)
	}
	p.tag = cfg.Tag
	return nil
}

func (p *testPlugin) TransportInterceptor(_ *heimdall.Context, req *heimdall.HTTPRequest) (
	heimdall.TransportResult, error) {
	switch req.Header("x-test") {
	case "panic":
		panic("TransportInterceptor was told to panic")
	case "error":
		return heimdall.TransportResult{}, errors.New("TransportInterceptor was told to fail")
	case "modify":
		return heimdall.TransportResult{}.WithHeader("x-added", p.tag).WithoutHeader("x-remove"), nil
	case "respond":
		return heimdall.TransportResult{Response: &heimdall.HTTPResponse{
			StatusCode: 403,
			Headers:    map[string]string{"x-reason": "test"},
			Body:       map[string]any{"error": map[string]any{"message": "forbidden by go-testplugin"}},
		}}, nil
	case "context":
		return heimdall.TransportResult{}.WithContext("transport_tag", p.tag), nil
	}
	return heimdall.TransportResult{}, nil
}

func (p *testPlugin) PreHook(ctx *heimdall.Context, in *heimdall.Input[heimdall.Request]) (
	heimdall.PreHookResult, error) {
	switch ctx.Header("x-test") {
	case "panic":
		panic("PreHook was told to panic")
	case "nil":
		var req *heimdall.Request
		return heimdall.PreHookResult{Request: req.Model}, nil // a nil dereference, on purpose
	case "error":
		return heimdall.PreHookResult{}, errors.New("PreHook was told to fail")
	case "modify":
		req, err := in.Decode()
		if err != nil {
			return heimdall.PreHookResult{}, err
		}
		t := 0.5
		req.Temperature = &t
		return heimdall.PreHookResult{Request: req}, nil
	case "respond":
		return heimdall.PreHookResult{Response: &heimdall.Response{
			ID: "chatcmpl-go-testplugin", Object: "chat.completion", Model: ctx.Model(),
			Choices: []heimdall.Choice{{
				Message:      heimdall.Message{Role: "assistant", Content: heimdall.TextContent("from go-testplugin")},
				FinishReason: "stop",
			}},
		}}, nil
	case "reject":
		return heimdall.PreHookResult{Error: &heimdall.Error{
			StatusCode: 400, Message: "rejected by go-testplugin", Type: "invalid_request_error",
			Code: "go_testplugin", AllowFallbacks: heimdall.Bool(false),
		}}, nil
	case "context":
		return heimdall.PreHookResult{}.WithContext("tag", p.tag), nil
	case "invalid":
		return heimdall.PreHookResult{Request: in.Raw(), Error: &heimdall.Error{Message: "both"}}, nil
	}
	return heimdall.PreHookResult{}, nil
}

func (p *testPlugin) PostHook(ctx *heimdall.Context, resp *heimdall.Input[heimdall.Response],
	errIn *heimdall.Input[heimdall.Error]) (heimdall.PostHookResult, error) {
	switch ctx.Header("x-test") {
	case "panic":
		panic("PostHook was told to panic")
	case "error":
		return heimdall.PostHookResult{}, errors.New("PostHook was told to fail")
	case "modify":
		r, err := resp.Decode()
		if err != nil || r == nil {
			return heimdall.PostHookResult{}, err
		}
		for i := range r.Choices {
			if c := r.Choices[i].Message.Content; c != nil && c.Parts == nil {
				c.Text = strings.ToUpper(c.Text)
			}
		}
		return heimdall.PostHookResult{Response: r}, nil
	case "respond":
		if errIn.Empty() {
			return heimdall.PostHookResult{}, nil
		}
		e, err := errIn.Decode()
		if err != nil {
			return heimdall.PostHookResult{}, err
		}
		return heimdall.PostHookResult{Response: &heimdall.Response{
			Object: "chat.completion",
			Choices: []heimdall.Choice{{
				Message:      heimdall.Message{Role: "assistant", Content: heimdall.TextContent("recovered: " + e.Message)},
				FinishReason: "stop",
			}},
		}}, nil
	case "reject":
		return heimdall.PostHookResult{Error: &heimdall.Error{StatusCode: 502, Message: "invalidated by go-testplugin"}},
			nil
	}
	return heimdall.PostHookResult{}, nil
}

func (p *testPlugin) StreamChunkHook(ctx *heimdall.Context, in *heimdall.Input[heimdall.Chunk]) (
	heimdall.StreamChunkResult, error) {
	switch ctx.Header("x-test") {
	case "panic":
		panic("StreamChunkHook was told to panic")
	case "error":
		return heimdall.StreamChunkResult{}, errors.New("StreamChunkHook was told to fail")
	case "modify":
		chunk, err := in.Decode()
		if err != nil {
			return heimdall.StreamChunkResult{}, err
		}
		for i := range chunk.Choices {
			if c := chunk.Choices[i].Delta.Content; c != nil {
				c.Text = strings.ToUpper(c.Text)
			}
		}
		return heimdall.StreamChunkResult{Chunk: chunk}, nil
	case "respond":
		return heimdall.StreamChunkResult{Drop: true}, nil
	case "reject":
		return heimdall.StreamChunkResult{Error: &heimdall.Error{StatusCode: 500,
			Message: "stream aborted by go-testplugin"}}, nil
	}
	return heimdall.StreamChunkResult{}, nil
}

func (p *testPlugin) Cleanup() {}
