package conformance

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// The resources, templates, prompts and completions below are the ones the
// official Go SDK's conformance everything-server serves (go-sdk
// conformance/everything-server/main.go), with the contents the resources-*,
// prompts-*, completion-complete and caching scenarios assert.

// Resource URIs and templates, fixed by the scenarios.
const (
	ResourceStaticText   = "test://static-text"
	ResourceStaticBinary = "test://static-binary"
	ResourceWatched      = "test://watched-resource"
	ResourceTemplateData = "test://template/{id}/data"
)

// Prompt names, fixed by the scenarios.
const (
	PromptSimple           = "test_simple_prompt"
	PromptWithArguments    = "test_prompt_with_arguments"
	PromptEmbeddedResource = "test_prompt_with_embedded_resource"
	PromptWithImage        = "test_prompt_with_image"
)

const (
	staticTextBody     = "This is the content of the static text resource."
	watchedBody        = "Watched resource content"
	embeddedPromptBody = "Embedded resource content for testing."
	// staticTTL is the caching hint of resources whose content never
	// changes and is the same for every caller.
	staticTTL = time.Minute
)

var (
	resources = []tools.Resource{
		{URI: ResourceStaticBinary, Name: "static-binary", Description: "A static binary resource (image) for testing", MIMEType: "image/png"},
		{URI: ResourceStaticText, Name: "static-text", Description: "A static text resource for testing", MIMEType: "text/plain"},
		// The reference server pushes notifications/resources/updated for
		// this one every 3 s to subscribers; mcpstream does not deliver
		// resource updates yet, so the description does not promise them.
		{URI: ResourceWatched, Name: "watched-resource", Description: "A resource for subscription tests", MIMEType: "text/plain"},
	}
	templates = []tools.ResourceTemplate{
		{URITemplate: ResourceTemplateData, Name: "template", Description: "A resource template with parameter substitution", MIMEType: "application/json"},
	}
	prompts = []tools.Prompt{
		{Name: PromptInputRequired, Title: "Prompt Asking For Context", Description: "A prompt that asks the user for context (elicitation; an input_required result in 2026-07-28)"},
		{Name: PromptWithArguments, Title: "Prompt With Arguments", Description: "A prompt with required arguments",
			Arguments: []tools.PromptArgument{
				{Name: "arg1", Description: "First test argument", Required: true},
				{Name: "arg2", Description: "Second test argument", Required: true},
			}},
		{Name: PromptEmbeddedResource, Title: "Prompt With Embedded Resource", Description: "A prompt that includes an embedded resource",
			Arguments: []tools.PromptArgument{
				{Name: "resourceUri", Description: "URI of the resource to embed", Required: true},
			}},
		{Name: PromptWithImage, Title: "Prompt With Image", Description: "A prompt that includes image content"},
		{Name: PromptSimple, Title: "Simple Test Prompt", Description: "A simple prompt without arguments"},
	}
)

// Interface checks: the provider serves tools, resources, prompts and
// completions from one value.
var (
	_ tools.Provider         = (*Provider)(nil)
	_ tools.ResourceProvider = (*Provider)(nil)
	_ tools.PromptProvider   = (*Provider)(nil)
	_ tools.Completer        = (*Provider)(nil)
)

// ListResources implements tools.ResourceProvider. The list is static and
// sorted by URI.
func (p *Provider) ListResources(ctx context.Context) ([]tools.Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: list resources: %w", err)
	}
	return append([]tools.Resource(nil), resources...), nil
}

// ListResourceTemplates implements tools.ResourceProvider.
func (p *Provider) ListResourceTemplates(ctx context.Context) ([]tools.ResourceTemplate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: list resource templates: %w", err)
	}
	return append([]tools.ResourceTemplate(nil), templates...), nil
}

// ReadResource implements tools.ResourceProvider.
func (p *Provider) ReadResource(ctx context.Context, uri string) (*tools.ReadResourceResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: read %s: %w", uri, err)
	}
	one := func(c tools.ResourceContents, ttl time.Duration) *tools.ReadResourceResult {
		return &tools.ReadResourceResult{Contents: []tools.ResourceContents{c}, TTL: ttl, Public: true}
	}
	switch uri {
	case ResourceStaticText:
		return one(tools.ResourceContents{URI: uri, MIMEType: "text/plain", Text: staticTextBody}, staticTTL), nil
	case ResourceStaticBinary:
		png, err := base64.StdEncoding.DecodeString(redPixelPNG)
		if err != nil {
			return nil, fmt.Errorf("conformance: decode the fixture PNG: %w", err)
		}
		return one(tools.ResourceContents{URI: uri, MIMEType: "image/png", Blob: png}, staticTTL), nil
	case ResourceWatched:
		// Meant to change: no time to live.
		return one(tools.ResourceContents{URI: uri, MIMEType: "text/plain", Text: watchedBody}, 0), nil
	}
	if vars, ok := tools.MatchURITemplate(ResourceTemplateData, uri); ok && vars["id"] != "" {
		id := vars["id"]
		body, err := json.Marshal(struct {
			ID           string `json:"id"`
			TemplateTest bool   `json:"templateTest"`
			Data         string `json:"data"`
		}{id, true, "Data for ID: " + id})
		if err != nil {
			return nil, fmt.Errorf("conformance: render %s: %w", uri, err)
		}
		return one(tools.ResourceContents{URI: uri, MIMEType: "application/json", Text: string(body)}, staticTTL), nil
	}
	return nil, fmt.Errorf("conformance: %s: %w", uri, tools.ErrResourceNotFound)
}

// ListPrompts implements tools.PromptProvider. The list is static and sorted
// by name.
func (p *Provider) ListPrompts(ctx context.Context) ([]tools.Prompt, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: list prompts: %w", err)
	}
	return append([]tools.Prompt(nil), prompts...), nil
}

// GetPrompt implements tools.PromptProvider.
func (p *Provider) GetPrompt(ctx context.Context, name string, args map[string]string) (*tools.GetPromptResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: get prompt %s: %w", name, err)
	}
	user := func(content json.RawMessage) tools.PromptMessage {
		return tools.PromptMessage{Role: "user", Content: content}
	}
	switch name {
	case PromptSimple:
		return &tools.GetPromptResult{Description: "A simple test prompt",
			Messages: []tools.PromptMessage{user(text("This is a simple prompt for testing."))}}, nil
	case PromptWithArguments:
		return &tools.GetPromptResult{Description: "A prompt with arguments",
			Messages: []tools.PromptMessage{user(text(fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", args["arg1"], args["arg2"])))}}, nil
	case PromptEmbeddedResource:
		uri := args["resourceUri"]
		if uri == "" {
			return nil, &tools.ArgumentError{Msg: "resourceUri must not be empty"}
		}
		return &tools.GetPromptResult{Description: "A prompt with an embedded resource",
			Messages: []tools.PromptMessage{
				user(resource(uri, "text/plain", embeddedPromptBody)),
				user(text("Please process the embedded resource above.")),
			}}, nil
	case PromptInputRequired:
		return inputRequiredPrompt(ctx)
	case PromptWithImage:
		return &tools.GetPromptResult{Description: "A prompt with an image",
			Messages: []tools.PromptMessage{
				user(image(redPixelPNG, "image/png")),
				user(text("Please analyze the image above.")),
			}}, nil
	}
	return nil, fmt.Errorf("conformance: %q: %w", name, tools.ErrUnknownPrompt)
}

// Complete implements tools.Completer the way the reference server does:
// it acknowledges every request with no suggestions (the
// completion-complete scenario only checks the result's shape).
func (p *Provider) Complete(ctx context.Context, _ tools.CompletionRef, _ tools.CompletionArgument, _ tools.CompletionContext) (*tools.Completion, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: complete: %w", err)
	}
	return &tools.Completion{Values: []string{}}, nil
}
