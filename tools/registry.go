package tools

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// NamespaceSeparator joins a namespaced provider's namespace and its own tool
// name. A dot keeps the exposed name inside the spec's recommended tool-name
// alphabet ([A-Za-z0-9_.-]), so clients that validate names accept it.
const NamespaceSeparator = "."

// Namespaced is implemented by providers whose tools must be exposed under a
// prefix (typically upstream MCP servers, whose tool names can collide with
// each other). The registry lists such a provider's tool "x" as
// Namespace()+NamespaceSeparator+"x" and strips the prefix again before
// calling the provider, so Call.Name is always the provider's own name.
// Built-in providers do not implement it: their names are already the ones
// clients must see (the conformance suite calls fixed names).
type Namespaced interface {
	Provider
	// Namespace returns the prefix; an empty string means no prefix.
	Namespace() string
}

// Registry merges several providers into one tool list and routes calls by
// exposed tool name. Tool lists are cached: ListTools, Lookup and CallTool
// never call a provider's ListTools, because tools/list is on the hot path of
// every client while provider lists change rarely (built-ins never). Call
// Refresh when a provider's list may have changed.
//
// A Registry is safe for concurrent use.
type Registry struct {
	providers []Provider

	// refreshMu serialises Refresh so two concurrent refreshes cannot publish
	// snapshots out of order; readers never take it.
	refreshMu sync.Mutex
	snap      atomic.Pointer[snapshot]
}

// snapshot is an immutable view of all providers' tools; Refresh replaces it
// whole so readers see either the old or the new set, never a mix.
type snapshot struct {
	tools  []Tool // sorted by exposed name
	routes map[string]route
}

type route struct {
	provider Provider
	// name is the provider's own tool name (namespace removed).
	name string
	tool Tool
}

// NewRegistry builds a registry over providers, listing each once. It fails
// on a nil provider, duplicate provider names, or duplicate exposed tool
// names: silently shadowing a tool would route calls to the wrong code.
// Listing uses context.Background(); use NewRegistryContext when a provider's
// ListTools can block (upstream servers).
func NewRegistry(providers ...Provider) (*Registry, error) {
	return NewRegistryContext(context.Background(), providers...)
}

// NewRegistryContext is NewRegistry with a context bounding the initial
// listing of every provider.
func NewRegistryContext(ctx context.Context, providers ...Provider) (*Registry, error) {
	seen := make(map[string]bool, len(providers))
	for i, p := range providers {
		if p == nil {
			return nil, fmt.Errorf("tools: new registry: provider %d is nil", i)
		}
		name := p.Name()
		if name == "" {
			return nil, fmt.Errorf("tools: new registry: provider %d has an empty name", i)
		}
		if seen[name] {
			return nil, fmt.Errorf("tools: new registry: duplicate provider name %q", name)
		}
		seen[name] = true
	}
	r := &Registry{providers: append([]Provider(nil), providers...)}
	if err := r.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("tools: new registry: %w", err)
	}
	return r, nil
}

// Refresh re-lists every provider and atomically replaces the cached tool
// set. On error the previous set stays in place, so a flaky upstream cannot
// empty the tool list of a running gateway.
func (r *Registry) Refresh(ctx context.Context) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()

	s := &snapshot{routes: make(map[string]route)}
	for _, p := range r.providers {
		listed, err := p.ListTools(ctx)
		if err != nil {
			return fmt.Errorf("list tools of provider %q: %w", p.Name(), err)
		}
		prefix := namespacePrefix(p)
		for _, t := range listed {
			if t.Name == "" {
				return fmt.Errorf("provider %q lists a tool with an empty name", p.Name())
			}
			own := t.Name
			t.Name = prefix + own
			if prev, dup := s.routes[t.Name]; dup {
				return fmt.Errorf("duplicate tool name %q (providers %q and %q)",
					t.Name, prev.provider.Name(), p.Name())
			}
			s.routes[t.Name] = route{provider: p, name: own, tool: t}
			s.tools = append(s.tools, t)
		}
	}
	// Sorting by name gives clients the same order on every tools/list
	// (2026-07-28 asks for a deterministic order) regardless of provider
	// order or upstream listing order.
	sort.Slice(s.tools, func(i, j int) bool { return s.tools[i].Name < s.tools[j].Name })
	r.snap.Store(s)
	return nil
}

// current returns the published snapshot. A zero Registry (not built by
// NewRegistry) has none yet and behaves as empty instead of panicking.
func (r *Registry) current() *snapshot {
	if s := r.snap.Load(); s != nil {
		return s
	}
	return &emptySnapshot
}

var emptySnapshot snapshot

func namespacePrefix(p Provider) string {
	if n, ok := p.(Namespaced); ok {
		if ns := n.Namespace(); ns != "" {
			return ns + NamespaceSeparator
		}
	}
	return ""
}

// ListTools returns every tool under its exposed name, sorted by name. The
// slice is a fresh copy; the raw JSON fields are shared and must not be
// modified. The context is accepted for symmetry with Provider and future
// lazy loading; the cached list never blocks.
func (r *Registry) ListTools(ctx context.Context) ([]Tool, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tools: list tools: %w", err)
	}
	return append([]Tool(nil), r.current().tools...), nil
}

// Lookup finds the provider serving an exposed tool name. The returned Tool
// carries the exposed name.
func (r *Registry) Lookup(name string) (Provider, Tool, bool) {
	rt, ok := r.current().routes[name]
	if !ok {
		return nil, Tool{}, false
	}
	return rt.provider, rt.tool, true
}

// CallTool routes call to the provider that lists call.Name, with the
// namespace prefix removed. An unknown name yields an error wrapping
// ErrUnknownTool. Provider errors are wrapped with the tool name; errors.Is
// and errors.As still find ErrUnknownTool, *ArgumentError and *RPCError.
// A nil Notifier is replaced by one that drops everything, so providers never
// need a nil check.
func (r *Registry) CallTool(ctx context.Context, call Call, n Notifier) (*Result, error) {
	rt, ok := r.current().routes[call.Name]
	if !ok {
		return nil, fmt.Errorf("tools: call %q: %w", call.Name, ErrUnknownTool)
	}
	if n == nil {
		n = discardNotifier{}
	}
	exposed := call.Name
	call.Name = rt.name
	res, err := rt.provider.CallTool(ctx, call, n)
	if err != nil {
		return nil, fmt.Errorf("tools: call %q (provider %q): %w", exposed, rt.provider.Name(), err)
	}
	if res == nil {
		// A nil result with a nil error would serialise as "result": null,
		// which no client accepts; treat it as a provider bug.
		return nil, fmt.Errorf("tools: call %q (provider %q): %w", exposed, rt.provider.Name(), errNilResult)
	}
	return res, nil
}

var errNilResult = errors.New("provider returned neither a result nor an error")

// Providers returns the configured providers in construction order.
func (r *Registry) Providers() []Provider {
	return append([]Provider(nil), r.providers...)
}

// String describes the registry for logs.
func (r *Registry) String() string {
	names := make([]string, len(r.providers))
	for i, p := range r.providers {
		names[i] = p.Name()
	}
	return fmt.Sprintf("tools.Registry{providers: [%s], tools: %d}",
		strings.Join(names, ", "), len(r.current().tools))
}

type discardNotifier struct{}

func (discardNotifier) Progress(context.Context, float64, float64, string) error { return nil }
func (discardNotifier) Log(context.Context, string, string, any) error           { return nil }
