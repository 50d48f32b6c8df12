package heimdall

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// DecodeConfig decodes a plugin's config into v, refusing unknown fields so that a typo in config.json is reported
// at start-up instead of being silently ignored. An empty config leaves v unchanged, so set defaults in v first.
func DecodeConfig(config []byte, v any) error {
	if len(bytes.TrimSpace(config)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	if dec.More() {
		return errors.New("invalid config: more than one JSON value")
	}
	return nil
}

// marshal encodes v without escaping <, > and & (the output goes to a gateway, not into HTML), and without the
// trailing newline json.Encoder adds.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// The typed structs keep the fields they do not name in an Extra map, so a plugin that changes one field of a
// request hands every other field on untouched (tools, response_format, provider-specific options, ...).
// decodeWithExtra and encodeWithExtra implement that for a struct's "fields" type: the same struct without the
// custom (Un)MarshalJSON methods, so encoding/json handles the named fields.

// decodeWithExtra decodes data into fields (a pointer to a struct) and returns the members fields does not name.
// The unnamed members are found by a light scan of the top level, not a second full decode: most objects have few
// or none, and a request's messages would otherwise be parsed twice more.
func decodeWithExtra(data []byte, fields any) (map[string]json.RawMessage, []string, error) {
	if err := json.Unmarshal(data, fields); err != nil {
		return nil, nil, err
	}
	named := jsonNames(reflect.TypeOf(fields).Elem())
	var extra map[string]json.RawMessage
	var order []string
	members(data, func(key, value []byte) bool {
		if named[string(key)] {
			return true
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		k := string(key)
		if _, seen := extra[k]; !seen {
			order = append(order, k)
		}
		// encoding/json may reuse data after UnmarshalJSON returns: keep a copy.
		extra[k] = append(json.RawMessage(nil), value...)
		return true
	})
	return extra, order, nil
}

// members calls fn with the key and the raw value of each member of the JSON object in data, until fn returns
// false. It is a light scan, not a parser: on valid JSON it agrees with encoding/json (FuzzMembers checks that);
// on anything else it returns garbage but never panics and always ends. Anything but an object has no members.
func members(data []byte, fn func(key, value []byte) bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] != '"' {
			return // '}'
		}
		end := skipValue(data, i)
		if end < i+2 || data[end-1] != '"' {
			return // an unterminated key
		}
		key := data[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 { // an escaped key: rare, let encoding/json unescape it
			var s string
			_ = json.Unmarshal(data[i:end], &s)
			key = []byte(s)
		}
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		if i >= len(data) {
			return // no value
		}
		end = skipValue(data, i)
		if !fn(key, data[i:end]) {
			return
		}
		i = skipSpace(data, end)
		if i < len(data) && data[i] == ',' {
			i++
		}
	}
}

// member returns the raw value of the member key of the JSON object in data, or nil. Like encoding/json, it takes
// the last of duplicate keys.
func member(data []byte, key string) []byte {
	var found []byte
	members(data, func(k, v []byte) bool {
		if string(k) == key {
			found = v
		}
		return true
	})
	return found
}

// jsonString returns the JSON string in raw, or "" when raw is not a string.
func jsonString(raw []byte) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 { // no escapes: the text between the quotes is the string
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

// skipValue returns the index just past the JSON value that starts at data[i] (len(data) at most).
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return len(data)
	}
	switch data[i] {
	case '"':
		for i++; i < len(data); i++ {
			switch data[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = skipValue(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default: // a number, true, false or null
		for ; i < len(data); i++ {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
		}
	}
	return len(data)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	return i
}

// encodeWithExtra encodes fields (a struct) and appends the extra members: those in order first, in that order (the
// order they came in, so a request's unknown members are handed on as the client sent them), then any other, in key
// order. An extra member that has the name of a named field is skipped: the field wins.
func encodeWithExtra(fields any, extra map[string]json.RawMessage, order []string) ([]byte, error) {
	b, err := marshal(fields)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	named := jsonNames(reflect.TypeOf(fields))
	keys := make([]string, 0, len(extra))
	placed := make(map[string]bool, len(order))
	for _, k := range order {
		if _, ok := extra[k]; ok && !named[k] && !placed[k] {
			keys = append(keys, k)
			placed[k] = true
		}
	}
	rest := make([]string, 0, len(extra)-len(keys))
	for k := range extra {
		if !named[k] && !placed[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	keys = append(keys, rest...)
	out := b[:len(b)-1] // drop the closing brace
	for _, k := range keys {
		v := extra[k]
		if len(v) == 0 {
			v = json.RawMessage("null")
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		kb, _ := marshal(k) // a string always encodes
		out = append(out, kb...)
		out = append(out, ':')
		out = append(out, v...)
	}
	return append(out, '}'), nil
}

// insertMember inserts member (`"key":value`) into the JSON object obj at index at, which is just past the opening
// brace or just past a member's value.
func insertMember(obj []byte, at int, member string) []byte {
	out := make([]byte, 0, len(obj)+len(member)+1)
	out = append(out, obj[:at]...)
	if at > 1 {
		out = append(out, ',')
	}
	out = append(out, member...)
	if at == 1 && obj[skipSpace(obj, 1)] != '}' {
		out = append(out, ',')
	}
	return append(out, obj[at:]...)
}

// setExtra implements the SetExtra methods: it sets (*extra)[key] to v as JSON (a new key goes last in *order), t
// being the struct type whose named fields key must not name. A misuse panics (see Request.SetExtra).
func setExtra(extra *map[string]json.RawMessage, order *[]string, t reflect.Type, key string, v any) {
	if jsonNames(t)[key] {
		panic(fmt.Sprintf("heimdall: SetExtra(%q): %q is a field of %s, not an extra member: set the field instead", key, key, t.Name()))
	}
	raw, err := marshal(jsonValue(v)) // raw bytes are JSON text; a nil pointer, map or slice is null
	if err != nil {
		panic(fmt.Sprintf("heimdall: SetExtra(%q) on %s: the value does not encode as JSON: %v", key, t.Name(), err))
	}
	if *extra == nil {
		*extra = make(map[string]json.RawMessage)
	}
	if _, ok := (*extra)[key]; !ok {
		*order = append(*order, key)
	}
	(*extra)[key] = raw
}

var jsonNamesCache sync.Map // reflect.Type -> map[string]bool

// jsonNames is the set of JSON member names a struct type's fields encode to.
func jsonNames(t reflect.Type) map[string]bool {
	if cached, ok := jsonNamesCache.Load(t); ok {
		return cached.(map[string]bool)
	}
	names := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	jsonNamesCache.Store(t, names)
	return names
}

// jsonValue normalises a value a plugin put in a result: nil, a nil pointer, map or slice mean "not set" (nil), and
// raw bytes are taken as JSON text rather than base64-encoded.
func jsonValue(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case json.RawMessage:
		if x == nil {
			return nil
		}
		return x
	case []byte:
		if x == nil {
			return nil
		}
		return json.RawMessage(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
	}
	return v
}
