//! The serde types: what a decode/encode round trip keeps, key order included, on realistic OpenAI and gateway JSON.

use heimdall_plugin::{json, serde_json, ChatRequest, ChatResponse, Choice, Message, StreamChunk, Value};

/// Parses `text` as T and writes it back out (compact).
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(text: &str) -> String {
    let value: T = serde_json::from_str(text).unwrap();
    serde_json::to_string(&value).unwrap()
}

/// `text` without the whitespace between tokens (the fixtures below are written over several lines).
fn compact(text: &str) -> String {
    serde_json::to_string(&serde_json::from_str::<Value>(text).unwrap()).unwrap()
}

/// A chat.completion as OpenAI sends it: `created` between `object` and `model`, `logprobs` before `finish_reason`,
/// `service_tier` and `system_fingerprint` after `usage`.
const OPENAI_RESPONSE: &str = r#"{
  "id": "chatcmpl-BJ1x6kZ2fTq9", "object": "chat.completion", "created": 1743950113, "model": "gpt-4o-2024-08-06",
  "choices": [
    {"index": 0,
     "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": null, "annotations": []},
     "logprobs": null, "finish_reason": "stop"},
    {"index": 1,
     "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
       "function": {"name": "look", "arguments": "{\"z\":1,\"a\":2}"}}], "refusal": null, "annotations": []},
     "logprobs": {"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}], "refusal": null},
     "finish_reason": "tool_calls"}
  ],
  "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0}},
  "service_tier": "default", "system_fingerprint": "fp_f5bdcc3276"
}"#;

/// A stream as OpenAI sends it with stream_options.include_usage, apart from the `"usage": null` of every chunk but
/// the last (left out: see `what_a_round_trip_changes`).
const OPENAI_CHUNKS: &[&str] = &[
    r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":1743950113,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_b376dfbbd5","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"obfuscation":"wl1L4u"}"#,
    r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":1743950113,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_b376dfbbd5","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"obfuscation":"MKX"}"#,
    r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":1743950113,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_b376dfbbd5","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"obfuscation":"RX"}"#,
    r#"{"id":"chatcmpl-X","object":"chat.completion.chunk","created":1743950113,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_b376dfbbd5","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"obfuscation":"q"}"#,
];

/// What the gateway's mock provider hands plugins.
const GATEWAY_RESPONSE: &str = r#"{"id":"chatcmpl-mock-1","object":"chat.completion","created":1795598222,"model":"echo","choices":[{"index":0,"message":{"role":"assistant","content":"Mock reply from echo. You said: Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":7,"total_tokens":8}}"#;
const GATEWAY_CHUNKS: &[&str] = &[
    r#"{"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1795598222,"model":"echo","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1795598222,"model":"echo","choices":[{"index":0,"delta":{"content":"Mock "},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-mock-2","object":"chat.completion.chunk","created":1795598222,"model":"echo","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":7,"total_tokens":8}}"#,
];

/// A request as many clients write it: model and messages first, and each message's role and content first. Nested
/// objects (a tool's JSON Schema, whose property
/// order steers the model) keep their order.
const REQUEST: &str = r#"{
  "model": "gpt-4o-mini",
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "What is this?"},
      {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}]},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
      "function": {"name": "look", "arguments": "{}"}}]},
    {"role": "tool", "content": "a cat", "tool_call_id": "c1"}
  ],
  "stream": true,
  "stream_options": {"include_usage": true},
  "temperature": 0.2,
  "max_tokens": 5000,
  "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object",
    "properties": {"zeta": {"type": "string"}, "alpha": {"type": "integer"}, "mid": {"type": "boolean"}},
    "required": ["zeta", "alpha"]}}}],
  "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object",
    "properties": {"z": {"type": "string"}, "a": {"type": "string"}}}}},
  "seed": 7,
  "x_vendor": {"b": 1, "a": [2, {"d": 3, "c": 4}]}
}"#;

#[test]
fn openai_responses_and_chunks_come_back_out_byte_for_byte() {
    let response = compact(OPENAI_RESPONSE);
    assert_eq!(round_trip::<ChatResponse>(&response), response);
    for chunk in OPENAI_CHUNKS {
        assert_eq!(round_trip::<StreamChunk>(chunk), *chunk);
    }
}

#[test]
fn mock_responses_and_chunks_come_back_out_byte_for_byte() {
    assert_eq!(round_trip::<ChatResponse>(GATEWAY_RESPONSE), GATEWAY_RESPONSE);
    for chunk in GATEWAY_CHUNKS {
        assert_eq!(round_trip::<StreamChunk>(chunk), *chunk);
    }
}

#[test]
fn a_request_in_the_usual_order_comes_back_out_byte_for_byte() {
    let request = compact(REQUEST);
    assert_eq!(round_trip::<ChatRequest>(&request), request);
}

#[test]
fn created_and_logprobs_stay_in_extra() {
    // Where plugins written against earlier versions read them.
    let resp: ChatResponse = serde_json::from_str(OPENAI_RESPONSE).unwrap();
    assert_eq!(resp.extra["created"], json!(1743950113));
    assert_eq!(resp.extra.keys().collect::<Vec<_>>(), ["created", "service_tier", "system_fingerprint"]);
    assert_eq!(resp.choices[0].extra["logprobs"], Value::Null);
    let chunk: StreamChunk = serde_json::from_str(OPENAI_CHUNKS[0]).unwrap();
    assert_eq!(chunk.extra["created"], json!(1743950113));
    assert_eq!(chunk.choices[0].extra["logprobs"], Value::Null);
}

#[test]
fn a_modified_response_keeps_the_order() {
    // The usual plugin edit: change a field, add a member. The new member goes last.
    let mut resp: ChatResponse = serde_json::from_str(GATEWAY_RESPONSE).unwrap();
    resp.choices[0].message = Message::new("assistant", "[redacted]");
    resp.extra.insert("model_guard".into(), json!({"max_tokens": 256, "requested": 5000}));
    assert_eq!(
        serde_json::to_string(&resp).unwrap(),
        r#"{"id":"chatcmpl-mock-1","object":"chat.completion","created":1795598222,"model":"echo","choices":[{"index":0,"message":{"role":"assistant","content":"[redacted]"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":7,"total_tokens":8},"model_guard":{"max_tokens":256,"requested":5000}}"#
    );

    // Built from scratch, with members inserted in any order: still OpenAI's order.
    let mut built = ChatResponse::assistant("m", "hi");
    built.extra.insert("system_fingerprint".into(), json!("fp"));
    built.extra.insert("created".into(), json!(1));
    built.choices[0].extra.insert("logprobs".into(), Value::Null);
    assert_eq!(
        serde_json::to_string(&built).unwrap(),
        r#"{"object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":"stop"}],"system_fingerprint":"fp"}"#
    );

    // serde_json::to_value (a Map, in insertion order) agrees with to_string.
    let value = serde_json::to_value(&built).unwrap();
    let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["object", "created", "model", "choices", "system_fingerprint"]);
}

#[test]
fn what_a_round_trip_changes() {
    // A request's named fields are written first: a client that put them elsewhere sees them moved (no provider
    // cares). Everything else keeps its order.
    assert_eq!(
        round_trip::<ChatRequest>(r#"{"messages":[],"temperature":0.2,"model":"m","stream":false,"max_tokens":9}"#),
        r#"{"model":"m","messages":[],"stream":false,"temperature":0.2,"max_tokens":9}"#
    );
    // The same for a message: role and content first (the order of OpenAI's responses), then the rest in order.
    assert_eq!(
        round_trip::<Message>(r#"{"role":"tool","tool_call_id":"c1","name":"n","content":"a cat"}"#),
        r#"{"role":"tool","content":"a cat","tool_call_id":"c1","name":"n"}"#
    );
    // A choice's members the types do not place go after the named ones (this is the order some providers use).
    assert_eq!(
        round_trip::<Choice>(
            r#"{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop","logprobs":null,"x":1}"#
        ),
        r#"{"index":0,"message":{"role":"assistant","content":"x"},"logprobs":null,"finish_reason":"stop","x":1}"#
    );
    // Values the types cannot tell from absent ones: "usage": null and empty strings are left out, a missing
    // finish_reason and message content are written as null.
    assert_eq!(
        round_trip::<StreamChunk>(
            r#"{"id":"","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"#
        ),
        r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"#
    );
    assert_eq!(
        round_trip::<ChatResponse>(r#"{"choices":[{"index":0,"message":{"role":"assistant"}}]}"#),
        r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":null}]}"#
    );
}

#[test]
fn token_limits() {
    let mut req: ChatRequest = serde_json::from_str(&compact(REQUEST)).unwrap();
    assert_eq!(req.max_tokens(), Some(5000));
    assert_eq!(req.max_completion_tokens(), None);
    assert_eq!(req.extra["max_tokens"], 5000, "still in extra, as before");

    // Set in place: the request comes back out as it was, but for the number.
    req.set_max_tokens(256);
    let expected = compact(REQUEST).replace(r#""max_tokens":5000"#, r#""max_tokens":256"#);
    assert_eq!(serde_json::to_string(&req).unwrap(), expected);

    // A member the request did not have goes last.
    req.set_max_completion_tokens(100);
    assert_eq!(req.max_completion_tokens(), Some(100));
    assert_eq!(req.extra.keys().next_back().map(String::as_str), Some("max_completion_tokens"));

    // Not a non-negative integer: None, like an absent one; the value itself is left alone.
    for bad in [json!(-1), json!(2.5), json!("100"), Value::Null] {
        let req: ChatRequest = serde_json::from_value(
            json!({"model": "m", "messages": [], "max_tokens": bad.clone(), "max_completion_tokens": bad.clone()}),
        )
        .unwrap();
        assert_eq!((req.max_tokens(), req.max_completion_tokens()), (None, None), "{bad}");
        assert_eq!(req.extra["max_tokens"], bad);
    }
}

#[test]
fn own_types_derive_through_the_reexported_serde() {
    // No serde dependency needed: the derive macros and the crate path come from heimdall_plugin.
    #[derive(Debug, PartialEq, heimdall_plugin::Deserialize, heimdall_plugin::Serialize)]
    #[serde(crate = "heimdall_plugin::serde", deny_unknown_fields)]
    struct Config {
        #[serde(default = "default_limit")]
        max_tokens: u64,
    }
    fn default_limit() -> u64 {
        1024
    }

    let cfg: Config = heimdall_plugin::config(json!({})).unwrap();
    assert_eq!(cfg, Config { max_tokens: 1024 });
    let cfg: Config = heimdall_plugin::config(json!({"max_tokens": 256})).unwrap();
    assert_eq!(serde_json::to_value(&cfg).unwrap(), json!({"max_tokens": 256}));
    let err = heimdall_plugin::config::<Config>(json!({"max_token": 1})).err().unwrap().to_string();
    assert!(err.contains("unknown field `max_token`"), "{err}");
}
