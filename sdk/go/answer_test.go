package heimdall

import (
	"encoding/json"
	"testing"
)

func TestAppendTextWholeAnswer(t *testing.T) {
	var r Response
	if err := json.Unmarshal([]byte(`{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}],"tag":1}`), &r); err != nil {
		t.Fatal(err)
	}
	if !r.AppendText(" (checked)") || r.Choices[0].Message.Content.String() != "Hi (checked)" {
		t.Fatalf("got %q", r.Choices[0].Message.Content.String())
	}
	parts := &Content{Parts: []ContentPart{{Type: "text", Text: "a"}, {Type: "image_url"}}}
	parts.AppendText("b")
	if parts.Parts[0].Text != "ab" || len(parts.Parts) != 2 {
		t.Fatalf("parts: %+v", parts.Parts)
	}
	images := &Content{Parts: []ContentPart{{Type: "image_url"}}}
	images.AppendText("c")
	if len(images.Parts) != 2 || images.Parts[1].Text != "c" {
		t.Fatalf("a new text part: %+v", images.Parts)
	}
	var tool Response
	_ = json.Unmarshal([]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[]}}]}`), &tool)
	if tool.AppendText("x") {
		t.Fatal("a tool call's answer has no text to append to")
	}
}

func TestAppendTextIfLast(t *testing.T) {
	var middle, last Chunk
	_ = json.Unmarshal([]byte(`{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`), &middle)
	_ = json.Unmarshal([]byte(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`), &last)
	if middle.IsLast() || middle.AppendTextIfLast("x") {
		t.Fatal("a chunk without finish_reason is not the last")
	}
	if !last.AppendTextIfLast(" (checked)") {
		t.Fatal("the last chunk was not changed")
	}
	out, _ := json.Marshal(&last)
	if got := string(out); got != `{"choices":[{"index":0,"delta":{"content":" (checked)"},"finish_reason":"stop"}]}` {
		t.Fatalf("got %s", got)
	}
}
