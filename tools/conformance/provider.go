package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/mcpstream/mcpstream/tools"
)

// Name is the provider name, used in metrics and configuration.
const Name = "conformance"

// Tool names, fixed by the conformance suite's scenario sources.
const (
	ToolSimpleText           = "test_simple_text"
	ToolImageContent         = "test_image_content"
	ToolAudioContent         = "test_audio_content"
	ToolEmbeddedResource     = "test_embedded_resource"
	ToolMultipleContentTypes = "test_multiple_content_types"
	ToolErrorHandling        = "test_error_handling"
	ToolWithProgress         = "test_tool_with_progress"
	ToolWithLogging          = "test_tool_with_logging"
	ToolMissingCapability    = "test_missing_capability"
	ToolStreamingElicitation = "test_streaming_elicitation"
	ToolLoggingTool          = "test_logging_tool"
	ToolTriggerToolChange    = "test_trigger_tool_change"
	ToolTriggerPromptChange  = "test_trigger_prompt_change"
)

// Values the scenarios assert on, or that document the expected shape.
const (
	defaultStepDelay          = 50 * time.Millisecond
	progressTotal             = 100.0
	logLevelInfo              = "info"
	loggerName                = Name
	emptyObjectSchema         = `{"type":"object","properties":{}}`
	missingSamplingMessage    = "sampling capability required but not declared by client"
	simpleTextResponse        = "This is a simple text response for testing."
	errorHandlingResponse     = "This tool intentionally returns an error for testing"
	embeddedResourceURI       = "test://embedded-resource"
	embeddedResourceText      = "This is an embedded resource content."
	mixedContentIntro         = "Multiple content types test:"
	mixedContentResourceURI   = "test://mixed-content-resource"
	mixedContentResourceJSON  = `{"test":"data","value":123}`
	loggingToolResponse       = "Tool with logging executed successfully"
	streamingElicitationReply = "stream observed: result frames only, no top-level requests"
)

// Log lines of test_tool_with_logging, in the order the scenario documents.
var withLoggingMessages = []string{
	"Tool execution started",
	"Tool processing data",
	"Tool execution completed",
}

// Progress values of test_tool_with_progress: the scenario wants at least
// three notifications with non-decreasing progress.
var progressSteps = []float64{0, 50, 100}

// ChangeHook is called by the trigger tools to make the platform publish a
// list-changed notification to open subscriptions/listen streams.
type ChangeHook func(ctx context.Context) error

// Option configures a Provider.
type Option func(*Provider)

// WithToolsChangedHook sets what test_trigger_tool_change does. Without it
// the tool succeeds without effect, which is correct for a gateway that does
// not advertise tools.listChanged (the suite then skips those checks).
func WithToolsChangedHook(h ChangeHook) Option {
	return func(p *Provider) { p.toolsChanged = h }
}

// WithPromptsChangedHook is the prompts analogue of WithToolsChangedHook,
// used by test_trigger_prompt_change.
func WithPromptsChangedHook(h ChangeHook) Option {
	return func(p *Provider) { p.promptsChanged = h }
}

// Provider serves the conformance tools. It holds no per-call state, so one
// instance serves any number of concurrent calls.
type Provider struct {
	tools    []tools.Tool
	handlers map[string]handler

	// stepDelay spaces progress and log notifications: the scenarios expect
	// them spread over the call (~50 ms apart), not sent in one burst.
	stepDelay      time.Duration
	toolsChanged   ChangeHook
	promptsChanged ChangeHook
}

type handler func(ctx context.Context, p *Provider, call tools.Call, n tools.Notifier) (*tools.Result, error)

type definition struct {
	name        string
	title       string
	description string
	run         handler
}

// definitions is the whole tool set. Every tool needs a description: the
// tools-list scenario fails a tool without one.
var definitions = []definition{
	{ToolSimpleText, "Simple text", "Returns one text content block.", runSimpleText},
	{ToolImageContent, "Image content", "Returns one image content block (1x1 red PNG).", runImageContent},
	{ToolAudioContent, "Audio content", "Returns one audio content block (audio/wav).", runAudioContent},
	{ToolEmbeddedResource, "Embedded resource", "Returns one embedded text resource.", runEmbeddedResource},
	{ToolMultipleContentTypes, "Multiple content types", "Returns text, image and embedded resource content together.", runMultipleContentTypes},
	{ToolErrorHandling, "Error handling", "Always fails with a tool error (isError: true).", runErrorHandling},
	{ToolWithProgress, "Progress", "Reports progress 0, 50 and 100 of 100, about 50 ms apart, when the call carries a progress token.", runWithProgress},
	{ToolWithLogging, "Logging", "Sends three info log messages about 50 ms apart while running.", runWithLogging},
	{ToolMissingCapability, "Missing capability", "Requires the sampling client capability; without it fails with MissingRequiredClientCapabilityError (-32021).", runMissingCapability},
	{ToolStreamingElicitation, "Streaming elicitation", "Returns a plain result; shows the response stream carries no server-to-client requests.", runStreamingElicitation},
	{ToolLoggingTool, "Log attempt", "Tries to log at info level; the platform must drop it unless the request set a log level.", runLoggingTool},
	{ToolTriggerToolChange, "Trigger tools list change", "Asks the platform to publish notifications/tools/list_changed.", runTriggerToolChange},
	{ToolTriggerPromptChange, "Trigger prompts list change", "Asks the platform to publish notifications/prompts/list_changed.", runTriggerPromptChange},
}

// New returns the conformance provider.
func New(opts ...Option) *Provider {
	p := &Provider{
		handlers:  make(map[string]handler, len(definitions)),
		stepDelay: defaultStepDelay,
	}
	for _, o := range opts {
		o(p)
	}
	for _, d := range append(append([]definition(nil), definitions...), clientRequestDefinitions...) {
		schema := emptyObjectSchema
		if s, ok := inputSchemas[d.name]; ok {
			schema = s
		}
		p.handlers[d.name] = d.run
		p.tools = append(p.tools, tools.Tool{
			Name:        d.name,
			Title:       d.title,
			Description: d.description,
			InputSchema: json.RawMessage(schema),
		})
	}
	p.addTaskTools()
	sort.Slice(p.tools, func(i, j int) bool { return p.tools[i].Name < p.tools[j].Name })
	return p
}

// Name implements tools.Provider.
func (p *Provider) Name() string { return Name }

// ListTools implements tools.Provider. The list is static and sorted by name.
func (p *Provider) ListTools(ctx context.Context) ([]tools.Tool, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("conformance: list tools: %w", err)
	}
	return append([]tools.Tool(nil), p.tools...), nil
}

// CallTool implements tools.Provider.
func (p *Provider) CallTool(ctx context.Context, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	run, ok := p.handlers[call.Name]
	if !ok {
		return nil, fmt.Errorf("conformance: %q: %w", call.Name, tools.ErrUnknownTool)
	}
	if err := checkNoArguments(call.Arguments); err != nil {
		return nil, fmt.Errorf("conformance: %s: %w", call.Name, err)
	}
	res, err := run(ctx, p, call, n)
	if err != nil {
		return nil, fmt.Errorf("conformance: %s: %w", call.Name, err)
	}
	return res, nil
}

// checkNoArguments accepts what the suite sends (no arguments, null or {})
// and any object, since the input schemas do not forbid extra properties;
// anything else cannot be a tools/call arguments value.
func checkNoArguments(args json.RawMessage) error {
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	if trimmed[0] != '{' {
		return &tools.ArgumentError{Msg: "arguments must be a JSON object"}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return &tools.ArgumentError{Msg: "arguments must be a JSON object: " + err.Error()}
	}
	return nil
}

func hasProgressToken(call tools.Call) bool {
	t := bytes.TrimSpace(call.ProgressToken)
	return len(t) > 0 && !bytes.Equal(t, []byte("null"))
}

// sleep waits d or until ctx ends, so a cancelled call stops promptly instead
// of finishing its remaining steps for nobody.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func result(content ...json.RawMessage) *tools.Result {
	return &tools.Result{Content: content}
}

func runSimpleText(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	return result(text(simpleTextResponse)), nil
}

func runImageContent(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	return result(image(redPixelPNG, "image/png")), nil
}

func runAudioContent(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	return result(audio(silentWAV, "audio/wav")), nil
}

func runEmbeddedResource(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	return result(resource(embeddedResourceURI, "text/plain", embeddedResourceText)), nil
}

func runMultipleContentTypes(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	return result(
		text(mixedContentIntro),
		image(redPixelPNG, "image/png"),
		resource(mixedContentResourceURI, "application/json", mixedContentResourceJSON),
	), nil
}

// runErrorHandling reports a failure inside the result, not as a JSON-RPC
// error: the scenario requires isError: true and a text message, so that an
// LLM can see the failure.
func runErrorHandling(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	res := result(text(errorHandlingResponse))
	res.IsError = true
	return res, nil
}

func runWithProgress(ctx context.Context, p *Provider, call tools.Call, n tools.Notifier) (*tools.Result, error) {
	report := hasProgressToken(call)
	for i, step := range progressSteps {
		if i > 0 {
			if err := sleep(ctx, p.stepDelay); err != nil {
				return nil, fmt.Errorf("after progress %.0f: %w", progressSteps[i-1], err)
			}
		} else if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("before first progress: %w", err)
		}
		if !report {
			continue
		}
		msg := fmt.Sprintf("Completed %.0f of %.0f", step, progressTotal)
		if err := n.Progress(ctx, step, progressTotal, msg); err != nil {
			return nil, fmt.Errorf("send progress %.0f/%.0f: %w", step, progressTotal, err)
		}
	}
	return result(text(fmt.Sprintf("Progress tool completed %d steps", len(progressSteps)))), nil
}

func runWithLogging(ctx context.Context, p *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	for i, msg := range withLoggingMessages {
		if i > 0 {
			if err := sleep(ctx, p.stepDelay); err != nil {
				return nil, fmt.Errorf("after log %d: %w", i, err)
			}
		}
		if err := n.Log(ctx, logLevelInfo, loggerName, msg); err != nil {
			return nil, fmt.Errorf("send log %q: %w", msg, err)
		}
	}
	return result(text(loggingToolResponse)), nil
}

// runMissingCapability exists to prove the platform never relies on an
// undeclared client capability: without "sampling" in this request's
// declared capabilities it must fail with -32021, naming the capability as a
// ClientCapabilities object.
func runMissingCapability(ctx context.Context, _ *Provider, _ tools.Call, _ tools.Notifier) (*tools.Result, error) {
	if tools.HasClientCapability(ctx, "sampling") {
		return result(text("Client declared the sampling capability; tool executed.")), nil
	}
	return nil, tools.NewMissingCapabilityError(missingSamplingMessage, map[string]any{"sampling": map[string]any{}})
}

func runStreamingElicitation(context.Context, *Provider, tools.Call, tools.Notifier) (*tools.Result, error) {
	return result(text(streamingElicitationReply)), nil
}

// runLoggingTool always tries to log; dropping the message when the request
// did not opt in (no _meta.../logLevel on 2026-07-28) is the Notifier's job,
// which is exactly what the server-stateless scenario checks.
func runLoggingTool(ctx context.Context, _ *Provider, _ tools.Call, n tools.Notifier) (*tools.Result, error) {
	if err := n.Log(ctx, logLevelInfo, loggerName, "test_logging_tool executed"); err != nil {
		return nil, fmt.Errorf("send log: %w", err)
	}
	return result(text("Log attempted; the platform gates it on the requested log level.")), nil
}

func runTriggerToolChange(ctx context.Context, p *Provider, _ tools.Call, _ tools.Notifier) (*tools.Result, error) {
	return trigger(ctx, p.toolsChanged, "tools")
}

func runTriggerPromptChange(ctx context.Context, p *Provider, _ tools.Call, _ tools.Notifier) (*tools.Result, error) {
	return trigger(ctx, p.promptsChanged, "prompts")
}

func trigger(ctx context.Context, hook ChangeHook, list string) (*tools.Result, error) {
	if hook == nil {
		return result(text(list + " list change not published: no listener configured")), nil
	}
	if err := hook(ctx); err != nil {
		return nil, fmt.Errorf("publish %s list change: %w", list, err)
	}
	return result(text(list + "_list_changed published")), nil
}
