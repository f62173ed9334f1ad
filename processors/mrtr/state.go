package mrtr

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// DefaultTTL is how long a requestState stays valid: long enough for a
// person to answer an elicitation, short enough to bound replays (the spec
// asks for a short expiry).
const DefaultTTL = 30 * time.Minute

// defaultKey signs states when no key is configured: tamper-evident, but
// forgeable by whoever reads the source (as the cursors' default key).
var defaultKey = []byte("mcpstream list cursor key v1")

const (
	stateVersion = 1
	macSize      = 32
)

// ErrBadState is what a requestState that fails verification gives, for
// whatever reason (malformed, forged, expired, handed out for another
// request or principal); the reason is wrapped for logs only.
var ErrBadState = errors.New("requestState failed verification")

// Signer seals and opens requestState values. Every processor and
// executor of a deployment needs the same key: a round may be answered by
// another instance than the one that asked.
type Signer struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewSigner signs with a key derived from key (the deployment's cursor
// key; empty: the built-in key). Deriving keeps a requestState from ever
// verifying as a cursor or the reverse.
func NewSigner(key []byte) *Signer {
	if len(key) == 0 {
		key = defaultKey
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("mcpstream requestState v1"))
	return &Signer{key: m.Sum(nil), ttl: DefaultTTL, now: time.Now}
}

// WithClock returns a copy of s reading time from now (tests).
func (s *Signer) WithClock(now func() time.Time) *Signer {
	c := *s
	c.now = now
	return &c
}

// Origin is the request a state belongs to. A state is accepted only on a
// retry of the same request by the same principal.
type Origin struct {
	Principal string
	// Method is tools/call, prompts/get or resources/read.
	Method string
	// Name is the tool or prompt name, or the resource URI.
	Name string
	// Arguments are the request's arguments (tools/call, prompts/get);
	// bound by digest, so a state cannot be carried over to a call with
	// other arguments.
	Arguments json.RawMessage
}

func (o Origin) digest() string {
	sum := sha256.Sum256(canonical(o.Arguments))
	return hex.EncodeToString(sum[:16])
}

// canonical re-encodes JSON with sorted keys and no spaces, so a client
// that re-serialises its arguments between rounds still matches. Invalid
// or absent JSON is taken as it is.
func canonical(raw json.RawMessage) []byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

type payload struct {
	V       int                        `json:"v"`
	Round   int                        `json:"r"`
	Exp     int64                      `json:"exp"`
	Who     string                     `json:"p"`
	Method  string                     `json:"m"`
	Name    string                     `json:"n"`
	Args    string                     `json:"a"`
	Answers map[string]json.RawMessage `json:"ans,omitempty"`
}

// Seal returns the requestState of round (1 for the first input_required
// result of a call) carrying the answers gathered so far.
func (s *Signer) Seal(o Origin, round int, answers map[string]json.RawMessage) (string, error) {
	p := payload{V: stateVersion, Round: round, Exp: s.now().Add(s.ttl).UnixMilli(), Who: o.Principal,
		Method: o.Method, Name: o.Name, Args: o.digest(), Answers: answers}
	body, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encoding requestState: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(body) + "." + enc.EncodeToString(s.mac(body)), nil
}

func (s *Signer) mac(body []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(body)
	return m.Sum(nil)
}

// Open verifies state for a retry of o and returns its round and answers.
// Every failure wraps ErrBadState.
func (s *Signer) Open(o Origin, state string) (int, map[string]json.RawMessage, error) {
	bad := func(why string) (int, map[string]json.RawMessage, error) {
		return 0, nil, fmt.Errorf("%w: %s", ErrBadState, why)
	}
	b64, sig, ok := strings.Cut(state, ".")
	if !ok {
		return bad("malformed")
	}
	enc := base64.RawURLEncoding
	body, err1 := enc.DecodeString(b64)
	sum, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || len(sum) != macSize {
		return bad("malformed")
	}
	if !hmac.Equal(sum, s.mac(body)) {
		return bad("signature mismatch")
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil || p.V != stateVersion {
		return bad("unknown format")
	}
	switch {
	case s.now().UnixMilli() > p.Exp:
		return bad("expired")
	case p.Who != o.Principal:
		return bad("handed out to another principal")
	case p.Method != o.Method || p.Name != o.Name || p.Args != o.digest():
		return bad("handed out for another request")
	}
	return p.Round, p.Answers, nil
}

// Retry is what a 2026-07-28 request answering an input_required result
// carries.
type Retry struct {
	// Responses is inputResponses by key; RawResponses the object as sent.
	Responses    map[string]json.RawMessage
	RawResponses json.RawMessage
	// State is the echoed requestState; empty when none was sent.
	State string
}

// Present reports whether the request answers an earlier round at all.
func (r Retry) Present() bool { return r.RawResponses != nil || r.State != "" }

// ParseRetry reads inputResponses and requestState from a request's
// params. A value of the wrong shape is a protocol error (the caller
// answers -32602): inputResponses must be an object of objects, and
// requestState a string.
func ParseRetry(params []byte) (Retry, error) {
	var p struct {
		InputResponses json.RawMessage `json:"inputResponses"`
		RequestState   json.RawMessage `json:"requestState"`
	}
	if len(bytes.TrimSpace(params)) == 0 {
		return Retry{}, nil
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return Retry{}, fmt.Errorf("invalid params: %w", err)
	}
	var r Retry
	if p.InputResponses != nil {
		if err := json.Unmarshal(p.InputResponses, &r.Responses); err != nil || r.Responses == nil {
			return Retry{}, errors.New("inputResponses must be an object")
		}
		for k, v := range r.Responses {
			if v = bytes.TrimSpace(v); len(v) == 0 || v[0] != '{' {
				return Retry{}, fmt.Errorf("inputResponses[%q] must be an object (a result of the request it answers)", k)
			}
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, p.InputResponses); err != nil {
			return Retry{}, fmt.Errorf("inputResponses: %w", err)
		}
		r.RawResponses = buf.Bytes()
	}
	if p.RequestState != nil {
		if err := json.Unmarshal(p.RequestState, &r.State); err != nil {
			return Retry{}, errors.New("requestState must be a string")
		}
	}
	return r, nil
}

// RoundIdentity is what makes a retry a new request: its inputResponses
// and requestState, canonically encoded. Nil when the request is no retry.
func RoundIdentity(params []byte) []byte {
	var p struct {
		InputResponses json.RawMessage `json:"inputResponses"`
		RequestState   json.RawMessage `json:"requestState"`
	}
	if json.Unmarshal(params, &p) != nil || (p.InputResponses == nil && p.RequestState == nil) {
		return nil
	}
	out := append(canonical(p.InputResponses), 0)
	return append(out, canonical(p.RequestState)...)
}

// Given is what a run may answer from: the answers of earlier rounds
// (from the verified state) and this round's responses, which win.
func Given(fromState, responses map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(fromState)+len(responses))
	for k, v := range fromState {
		out[k] = v
	}
	for k, v := range responses {
		out[k] = v
	}
	return out
}

// InputRequired builds the input_required result of a round: the requests
// still unanswered, keyed, and the state carrying the answers so far.
func InputRequired(reqs []tools.InputRequest, state string) map[string]any {
	ir := make(map[string]any, len(reqs))
	for _, r := range reqs {
		var params any = map[string]any{}
		if r.Params != nil {
			params = r.Params
		}
		ir[r.Key] = map[string]any{"method": r.Method, "params": params}
	}
	return map[string]any{"resultType": "input_required", "inputRequests": ir, "requestState": state}
}
