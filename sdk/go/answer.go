package heimdall

// Helpers to change the answer the client reads, whole or streamed. A streamed answer reaches the client chunk by
// chunk, through StreamChunkHook; PostHook then sees the same answer assembled into a Response, after the client
// has it. So a change to a streamed answer is made on its chunks (usually the last one, which carries the
// finish_reason), and PostHook must leave it alone for a streamed request (ctx.Stream()), or the change is made
// twice for every later PostHook and log. See "Changing a streamed answer" in docs/writing-plugins.md.

// AppendText adds text to the content: to the string, or to the last text part (a new text part when there is
// none).
func (c *Content) AppendText(text string) {
	if c.Parts == nil {
		c.Text += text
		return
	}
	for i := len(c.Parts) - 1; i >= 0; i-- {
		if c.Parts[i].Type == "text" {
			c.Parts[i].Text += text
			return
		}
	}
	c.Parts = append(c.Parts, ContentPart{Type: "text", Text: text})
}

// AppendText appends text to the answer: the first choice's message. It returns false, changing nothing, when
// there is no choice or the message has no content (a tool call).
func (r *Response) AppendText(text string) bool {
	if len(r.Choices) == 0 || r.Choices[0].Message.Content == nil {
		return false
	}
	r.Choices[0].Message.Content.AppendText(text)
	return true
}

// IsLast reports whether the chunk ends the answer: its first choice has a finish_reason.
func (c *Chunk) IsLast() bool {
	return len(c.Choices) > 0 && c.Choices[0].FinishReason != nil
}

// AppendTextIfLast appends text to a streamed answer, on its last chunk only (IsLast), in the delta's content. It
// reports whether the chunk changed: return StreamChunkResult{Chunk: c} then, and the zero result otherwise.
func (c *Chunk) AppendTextIfLast(text string) bool {
	if !c.IsLast() {
		return false
	}
	delta := &c.Choices[0].Delta
	if delta.Content == nil {
		delta.Content = TextContent(text)
	} else {
		delta.Content.AppendText(text)
	}
	return true
}
