package tools

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The catalog is the non-tool surface of MCP: resources, resource templates,
// prompts and argument completion. Its providers are consulted by the
// sessions processor inside its partition loop, so the ones registered today
// must answer from memory, instantly (built-ins). Upstream-backed resources
// and prompts, whose reads can block on the network, will be served through
// executors like tools are, not through these interfaces in the processor.

// Resource is one entry of a resources/list result.
type Resource struct {
	URI         string          `json:"uri"`
	Name        string          `json:"name"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	MIMEType    string          `json:"mimeType,omitempty"`
	Size        *int64          `json:"size,omitempty"`
	Annotations json.RawMessage `json:"annotations,omitempty"`
	Icons       json.RawMessage `json:"icons,omitempty"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
}

// ResourceTemplate is one entry of a resources/templates/list result. Its
// URITemplate is an RFC 6570 template (e.g. "test://template/{id}/data").
type ResourceTemplate struct {
	URITemplate string          `json:"uriTemplate"`
	Name        string          `json:"name"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description,omitempty"`
	MIMEType    string          `json:"mimeType,omitempty"`
	Annotations json.RawMessage `json:"annotations,omitempty"`
	Icons       json.RawMessage `json:"icons,omitempty"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
}

// ResourceContents is one item of a resources/read result: text when Blob is
// nil, binary otherwise. The wire carries exactly one of "text" and "blob"
// (base64), which is why the type has its own JSON methods.
type ResourceContents struct {
	URI      string
	MIMEType string
	Text     string
	Blob     []byte
	Meta     json.RawMessage
}

type resourceContentsWire struct {
	URI      string          `json:"uri"`
	MIMEType string          `json:"mimeType,omitempty"`
	Text     *string         `json:"text,omitempty"`
	Blob     *string         `json:"blob,omitempty"`
	Meta     json.RawMessage `json:"_meta,omitempty"`
}

// MarshalJSON emits "text" for text contents (even when empty) and "blob"
// for binary ones, never both.
func (c ResourceContents) MarshalJSON() ([]byte, error) {
	w := resourceContentsWire{URI: c.URI, MIMEType: c.MIMEType, Meta: c.Meta}
	if c.Blob != nil {
		b := base64.StdEncoding.EncodeToString(c.Blob)
		w.Blob = &b
	} else {
		t := c.Text
		w.Text = &t
	}
	return json.Marshal(w)
}

// UnmarshalJSON accepts either form; a "blob" that is not base64 is an error.
func (c *ResourceContents) UnmarshalJSON(b []byte) error {
	var w resourceContentsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = ResourceContents{URI: w.URI, MIMEType: w.MIMEType, Meta: w.Meta}
	switch {
	case w.Blob != nil:
		raw, err := base64.StdEncoding.DecodeString(*w.Blob)
		if err != nil {
			return fmt.Errorf("resource contents %q: blob is not base64: %w", w.URI, err)
		}
		c.Blob = raw
	case w.Text != nil:
		c.Text = *w.Text
	}
	return nil
}

// ReadResourceResult is a resources/read result.
type ReadResourceResult struct {
	Contents []ResourceContents `json:"contents"`
	Meta     json.RawMessage    `json:"_meta,omitempty"`

	// TTL and Public are the 2026-07-28 caching hints (ttlMs, cacheScope)
	// of this read. The zero value (ttlMs 0, "private") is the safe answer
	// for content that may differ per caller or change at any time; a
	// provider sets them for content that is the same for everyone.
	TTL    time.Duration `json:"-"`
	Public bool          `json:"-"`
}

// Prompt is one entry of a prompts/list result.
type Prompt struct {
	Name        string           `json:"name"`
	Title       string           `json:"title,omitempty"`
	Description string           `json:"description,omitempty"`
	Arguments   []PromptArgument `json:"arguments,omitempty"`
	Icons       json.RawMessage  `json:"icons,omitempty"`
	Meta        json.RawMessage  `json:"_meta,omitempty"`
}

// PromptArgument describes one argument a prompt accepts.
type PromptArgument struct {
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	Required    bool   `json:"required,omitempty"`
}

// PromptMessage is one message of a prompts/get result. Content is a raw
// ContentBlock (text, image, audio, resource_link or embedded resource).
type PromptMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// GetPromptResult is a prompts/get result.
type GetPromptResult struct {
	Description string          `json:"description,omitempty"`
	Messages    []PromptMessage `json:"messages"`
	Meta        json.RawMessage `json:"_meta,omitempty"`
}

// Completion reference types (CompletionRef.Type).
const (
	RefPrompt   = "ref/prompt"
	RefResource = "ref/resource"
)

// CompletionRef names what is being completed: a prompt (Type RefPrompt,
// Name) or a resource template (Type RefResource, URI: the template or a
// resource URI).
type CompletionRef struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
	URI  string `json:"uri,omitempty"`
}

// CompletionArgument is the argument being completed and its partial value.
type CompletionArgument struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// CompletionContext carries arguments the client has already resolved.
type CompletionContext struct {
	Arguments map[string]string `json:"arguments,omitempty"`
}

// MaxCompletionValues is the most values one completion/complete result may
// carry (the spec's limit); the registry trims longer answers and sets
// HasMore.
const MaxCompletionValues = 100

// Completion is the "completion" object of a completion/complete result.
type Completion struct {
	Values  []string `json:"values"`
	Total   int      `json:"total,omitempty"`
	HasMore bool     `json:"hasMore,omitempty"`
}

// ResourceProvider serves resources. ListResources and
// ListResourceTemplates return the provider's entries in a stable order;
// ReadResource answers one URI the provider listed or one matching a
// template it listed.
type ResourceProvider interface {
	// Name is unique among configured providers (shared with tool providers
	// when one value serves both).
	Name() string
	ListResources(ctx context.Context) ([]Resource, error)
	ListResourceTemplates(ctx context.Context) ([]ResourceTemplate, error)
	// ReadResource returns the contents of uri, or an error wrapping
	// ErrResourceNotFound when the provider has no such resource.
	ReadResource(ctx context.Context, uri string) (*ReadResourceResult, error)
}

// PromptProvider serves prompts.
type PromptProvider interface {
	Name() string
	// ListPrompts returns the provider's prompts in a stable order.
	ListPrompts(ctx context.Context) ([]Prompt, error)
	// GetPrompt renders one prompt. An unknown name is an error wrapping
	// ErrUnknownPrompt; missing or bad arguments an *ArgumentError. The
	// registry has already checked that every required argument is present.
	GetPrompt(ctx context.Context, name string, args map[string]string) (*GetPromptResult, error)
}

// Completer is implemented by resource or prompt providers that suggest
// argument values. The registry calls the provider that owns ref (the
// prompt's or template's provider); providers without it complete nothing.
type Completer interface {
	Complete(ctx context.Context, ref CompletionRef, arg CompletionArgument, cc CompletionContext) (*Completion, error)
}

// ErrResourceNotFound is returned for a URI no provider serves. MCP answers
// it with -32602 (2026-07-28) or -32002 (2025-11-25), with the URI in data.
var ErrResourceNotFound = errors.New("resource not found")

// ErrUnknownPrompt is returned for a prompt name no provider serves.
var ErrUnknownPrompt = errors.New("unknown prompt")
