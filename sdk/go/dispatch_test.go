package heimdall

import (
	"errors"
	"strings"
	"testing"
)

// use registers p and declared exports for one test.
func use(t *testing.T, p Plugin, declared ...string) {
	t.Helper()
	oldPlugin, oldExports := registered, exports
	t.Cleanup(func() { registered, exports = oldPlugin, oldExports })
	Register(p)
	exports = declared
}

type namedOnly struct{ name string }

func (n namedOnly) Name() string { return n.name }

// allHooks implements every hook; each does what its behaviour function says.
type allHooks struct {
	namedOnly
	pre func(*Context, *Input[Request]) (PreHookResult, error)
}

func (a *allHooks) Init(config []byte) error {
	if string(config) == `{"fail":true}` {
		return errors.New("bad config: fail is set")
	}
	return nil
}
func (a *allHooks) TransportInterceptor(*Context, *HTTPRequest) (TransportResult, error) {
	return TransportResult{}.WithHeader("x", "y"), nil
}
func (a *allHooks) PreHook(c *Context, r *Input[Request]) (PreHookResult, error) { return a.pre(c, r) }
func (a *allHooks) PostHook(_ *Context, resp *Input[Response], e *Input[Error]) (PostHookResult, error) {
	if e.Empty() {
		return PostHookResult{}, nil
	}
	err, _ := e.Decode()
	return PostHookResult{Response: &Response{ID: "recovered " + err.Code}}, nil
}
func (a *allHooks) StreamChunkHook(*Context, *Input[Chunk]) (StreamChunkResult, error) {
	panic(errors.New("chunk boom"))
}
func (a *allHooks) Cleanup() { panic("cleanup boom") }

func TestCallPreHook(t *testing.T) {
	var sawRequest bool
	p := &allHooks{namedOnly: namedOnly{"all"}}
	use(t, p)
	cases := []struct {
		name       string
		pre        func(*Context, *Input[Request]) (PreHookResult, error)
		wantStatus int32
		wantOut    string
	}{
		{"continue", func(*Context, *Input[Request]) (PreHookResult, error) { return PreHookResult{}, nil }, StatusOK, ""},
		{"error", func(*Context, *Input[Request]) (PreHookResult, error) {
			return PreHookResult{Error: &Error{Message: "ignored"}}, errors.New("it failed")
		}, StatusError, "it failed"},
		{"empty error", func(*Context, *Input[Request]) (PreHookResult, error) { return PreHookResult{}, errors.New("") }, StatusError, "failed"},
		{"panic", func(*Context, *Input[Request]) (PreHookResult, error) { panic("boom") }, StatusError, "PreHook panicked: boom (at "},
		{"nil dereference", func(*Context, *Input[Request]) (PreHookResult, error) {
			var r *Request
			return PreHookResult{Request: r.Model}, nil
		}, StatusError, "PreHook panicked: runtime error: invalid memory address or nil pointer dereference (at github.com/heimdall-gateway/heimdall/sdk/go.TestCallPreHook"},
		{"bad result", func(*Context, *Input[Request]) (PreHookResult, error) {
			return PreHookResult{Request: raw(`{}`), Response: raw(`{}`)}, nil
		}, StatusError, "PreHook returned a result that cannot be sent: PreHookResult: set at most one"},
		{"context", func(c *Context, _ *Input[Request]) (PreHookResult, error) {
			return PreHookResult{}.WithContext("route", c.Route()), nil
		}, StatusOK, `{"context":{"route":"/v1/chat/completions"}}`},
		{"modify", func(_ *Context, in *Input[Request]) (PreHookResult, error) {
			sawRequest = true
			r, err := in.Decode()
			if err != nil {
				return PreHookResult{}, err
			}
			r.Model = "other"
			return PreHookResult{Request: r}, nil
		}, StatusOK, `{"request":{"model":"other","messages":[{"role":"user","content":"hi"}],"seed":1}}`},
	}
	for _, c := range cases {
		p.pre = c.pre
		status, out := CallPreHook([]byte(`{"route":"/v1/chat/completions"}`),
			[]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1}`))
		if status != c.wantStatus || !strings.HasPrefix(string(out), c.wantOut) || (c.wantOut == "" && out != nil) {
			t.Errorf("%s: got %d %q, want %d %q", c.name, status, out, c.wantStatus, c.wantOut)
		}
	}
	if !sawRequest {
		t.Fatal("modify case did not run")
	}
}

func raw(s string) []byte { return []byte(s) }

func TestAHookThatIgnoresTheRequestNeverParsesIt(t *testing.T) {
	use(t, &allHooks{namedOnly: namedOnly{"all"}, pre: func(c *Context, _ *Input[Request]) (PreHookResult, error) {
		return PreHookResult{}, nil
	}})
	// Neither input is valid JSON: a hook that reads neither must not notice.
	if status, out := CallPreHook(raw(`{not json`), raw(`{not json either`)); status != StatusOK || out != nil {
		t.Fatalf("got %d %s", status, out)
	}
}

func TestOtherHooks(t *testing.T) {
	use(t, &allHooks{namedOnly: namedOnly{"all"}})
	if status, out := CallTransportInterceptor(raw(`{}`), raw(`{"method":"POST"}`), raw(`{}`)); status != StatusOK ||
		string(out) != `{"headers":{"x":"y"}}` {
		t.Errorf("transport: %d %s", status, out)
	}
	if status, out := CallPostHook(raw(`{}`), raw(`{"id":"r"}`), nil); status != StatusOK || out != nil {
		t.Errorf("post with a response: %d %s", status, out)
	}
	if status, out := CallPostHook(raw(`{}`), nil, raw(`{"message":"m","code":"E"}`)); status != StatusOK ||
		string(out) != `{"response":{"id":"recovered E","choices":null}}` {
		t.Errorf("post with an error: %d %s", status, out)
	}
	if status, out := CallStreamChunkHook(raw(`{}`), raw(`{}`)); status != StatusError ||
		!strings.HasPrefix(string(out), "StreamChunkHook panicked: chunk boom") {
		t.Errorf("chunk: %d %s", status, out)
	}
	if err := CallCleanup(); err == nil || !strings.HasPrefix(err.Error(), "Cleanup panicked: cleanup boom") {
		t.Errorf("cleanup: %v", err)
	}
}

func TestCallInit(t *testing.T) {
	use(t, &allHooks{namedOnly: namedOnly{"all"}})
	if status, out := CallInit(raw(`{}`)); status != StatusOK || out != nil {
		t.Errorf("good config: %d %s", status, out)
	}
	if status, out := CallInit(raw(`{"fail":true}`)); status != StatusError || string(out) != "bad config: fail is set" {
		t.Errorf("bad config: %d %s", status, out)
	}
}

func TestHooksThePluginLacks(t *testing.T) {
	use(t, namedOnly{"bare"})
	if status, out := CallInit(nil); status != StatusOK {
		t.Errorf("Init without Initer: %d %s", status, out)
	}
	if status, out := CallPreHook(nil, nil); status != StatusError || !strings.Contains(string(out), "exports PreHook but does not implement it") {
		t.Errorf("PreHook: %d %s", status, out)
	}
	if err := CallCleanup(); err != nil {
		t.Errorf("Cleanup without Cleaner: %v", err)
	}
}

func TestNoPlugin(t *testing.T) {
	use(t, nil)
	if _, err := PluginName(); err == nil {
		t.Error("PluginName without a plugin")
	}
	if status, out := CallInit(nil); status != StatusError || !strings.Contains(string(out), "heimdall.Register") {
		t.Errorf("Init without a plugin: %d %s", status, out)
	}
	if status, _ := CallPostHook(nil, nil, nil); status != StatusError {
		t.Error("PostHook without a plugin")
	}
}

type panickyName struct{}

func (panickyName) Name() string { panic("no name") }

func TestPluginName(t *testing.T) {
	use(t, namedOnly{"x"})
	if name, err := PluginName(); name != "x" || err != nil {
		t.Errorf("%q %v", name, err)
	}
	use(t, namedOnly{""})
	if _, err := PluginName(); err == nil {
		t.Error("empty name accepted")
	}
	use(t, panickyName{})
	if _, err := PluginName(); err == nil || !strings.HasPrefix(err.Error(), "Name panicked: no name") {
		t.Errorf("panicking Name: %v", err)
	}
}

type wrongInit struct{ namedOnly }

func (wrongInit) Init() error { return nil }

func TestExportsCheck(t *testing.T) {
	all := &allHooks{namedOnly: namedOnly{"all"}}
	cases := []struct {
		plugin   Plugin
		declared []string
		want     string
	}{
		{all, []string{"TransportInterceptor", "PreHook", "PostHook", "StreamChunkHook"}, ""},
		{all, nil, ""}, // hand-written exports are not checked
		{all, []string{"PreHook", "PostHook", "StreamChunkHook"}, "implements TransportInterceptor, but the shared object does not export TransportInterceptor"},
		{namedOnly{"bare"}, []string{"PreHook"}, "exports PreHook, but heimdall.namedOnly does not implement heimdall's PreHooker"},
		{namedOnly{"bare"}, []string{}, ""},
		{wrongInit{namedOnly{"w"}}, []string{}, "has a method Init, but not heimdall's Init(config []byte) error"},
		{concurrent{namedOnly{"c"}, 64}, []string{"Concurrency"}, ""},
		{concurrent{namedOnly{"c"}, 64}, []string{}, "implements Concurrency, but the shared object does not export heimdall_plugin_concurrency: run go generate"},
		{namedOnly{"bare"}, []string{"Concurrency"}, "exports heimdall_plugin_concurrency, but heimdall.namedOnly does not implement heimdall's Concurrent"},
		{wrongConcurrency{namedOnly{"w"}}, []string{"Concurrency"}, "does not implement heimdall's Concurrent interface: check the method's signature"},
	}
	for i, c := range cases {
		use(t, c.plugin)
		if c.declared != nil {
			DeclareExports(c.declared...)
		}
		status, out := CallInit(nil)
		if c.want == "" && status != StatusOK || c.want != "" && !strings.Contains(string(out), c.want) {
			t.Errorf("case %d: got %d %q, want %q", i, status, out, c.want)
		}
	}
}

func TestABIVersion(t *testing.T) {
	if ABIVersion != 0x10002 {
		t.Fatalf("ABIVersion is %#x, want 0x10002 (ABI 1.2)", ABIVersion)
	}
}

type concurrent struct {
	namedOnly
	n uint32
}

func (c concurrent) Concurrency() uint32 { return c.n }

type wrongConcurrency struct{ namedOnly }

func (wrongConcurrency) Concurrency() int { return 8 }

type panickyConcurrency struct{ namedOnly }

func (panickyConcurrency) Concurrency() uint32 { panic("how many?") }

func TestPluginConcurrency(t *testing.T) {
	cases := []struct {
		plugin  Plugin
		want    uint32
		wantErr string
	}{
		{namedOnly{"serial"}, 1, ""},              // no opt-in: one call at a time
		{wrongConcurrency{namedOnly{"w"}}, 1, ""}, // not heimdall's Concurrent: one at a time
		{concurrent{namedOnly{"c"}, 64}, 64, ""},  // opted in
		{concurrent{namedOnly{"c"}, NoConcurrencyLimit}, 0xffffffff, ""},
		{panickyConcurrency{namedOnly{"p"}}, 1, "Concurrency panicked: how many?"},
		{nil, 1, ""}, // nothing registered: Init reports that
	}
	for i, c := range cases {
		use(t, c.plugin)
		n, err := PluginConcurrency()
		if n != c.want || (err == nil) != (c.wantErr == "") || err != nil && !strings.HasPrefix(err.Error(), c.wantErr) {
			t.Errorf("case %d: got %d %v, want %d %q", i, n, err, c.want, c.wantErr)
		}
	}
}
