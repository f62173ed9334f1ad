package tools

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/yosida95/uritemplate/v3"
)

// CatalogProvider is a value given to NewCatalogRegistry: it must implement
// ResourceProvider, PromptProvider, or both (and may implement Completer).
// One value serving tools, resources and prompts (a built-in such as the
// conformance provider) is passed to both registries.
type CatalogProvider interface {
	Name() string
}

// CatalogRegistry merges resource and prompt providers into one catalog and
// routes reads by URI, prompt gets by name and completions by reference.
//
// Lists are cached like Registry's tool list: ListResources,
// ListResourceTemplates and ListPrompts never call a provider, and their
// order is deterministic (resources by URI, templates by URI template,
// prompts by name, byte order) so that cursors stay valid across processor
// instances and requests. Call Refresh when a provider's lists may have
// changed.
//
// Routing: a resource URI goes to the provider that listed exactly that URI;
// otherwise to the providers of the templates it matches, in template order,
// until one does not answer ErrResourceNotFound. A prompt name goes to the
// provider that listed it.
//
// A CatalogRegistry is safe for concurrent use.
type CatalogRegistry struct {
	resources []ResourceProvider
	prompts   []PromptProvider
	completes bool

	refreshMu sync.Mutex
	snap      atomic.Pointer[catalogSnapshot]
}

// catalogSnapshot is an immutable view of every provider's lists.
type catalogSnapshot struct {
	resources      []Resource // sorted by URI
	resourceRoutes map[string]ResourceProvider
	templates      []ResourceTemplate // sorted by URITemplate
	templateRoutes []templateRoute    // parallel to templates
	prompts        []Prompt           // sorted by name
	promptRoutes   map[string]promptRoute
}

type templateRoute struct {
	provider ResourceProvider
	tmpl     *uritemplate.Template
}

type promptRoute struct {
	provider PromptProvider
	prompt   Prompt
}

var emptyCatalog catalogSnapshot

// NewCatalogRegistry builds a catalog over providers and lists each once,
// bounded by ctx. It fails on a nil provider, one that serves neither
// resources nor prompts, duplicate provider names, duplicate resource URIs,
// templates or prompt names, and templates that are not valid RFC 6570:
// silently shadowing an entry would route reads to the wrong code.
func NewCatalogRegistry(ctx context.Context, providers ...CatalogProvider) (*CatalogRegistry, error) {
	r := &CatalogRegistry{}
	seen := make(map[string]bool, len(providers))
	for i, p := range providers {
		if p == nil {
			return nil, fmt.Errorf("tools: new catalog registry: provider %d is nil", i)
		}
		name := p.Name()
		if name == "" {
			return nil, fmt.Errorf("tools: new catalog registry: provider %d has an empty name", i)
		}
		if seen[name] {
			return nil, fmt.Errorf("tools: new catalog registry: duplicate provider name %q", name)
		}
		seen[name] = true
		rp, isRes := p.(ResourceProvider)
		pp, isPrompt := p.(PromptProvider)
		if !isRes && !isPrompt {
			return nil, fmt.Errorf("tools: new catalog registry: provider %q serves neither resources nor prompts", name)
		}
		if isRes {
			r.resources = append(r.resources, rp)
		}
		if isPrompt {
			r.prompts = append(r.prompts, pp)
		}
		if _, ok := p.(Completer); ok {
			r.completes = true
		}
	}
	if err := r.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("tools: new catalog registry: %w", err)
	}
	return r, nil
}

// Refresh re-lists every provider and atomically replaces the cached
// catalog. On error the previous catalog stays in place.
func (r *CatalogRegistry) Refresh(ctx context.Context) error {
	r.refreshMu.Lock()
	defer r.refreshMu.Unlock()

	s := &catalogSnapshot{
		resourceRoutes: make(map[string]ResourceProvider),
		promptRoutes:   make(map[string]promptRoute),
	}
	templateOwner := make(map[string]string)
	for _, p := range r.resources {
		res, err := p.ListResources(ctx)
		if err != nil {
			return fmt.Errorf("list resources of provider %q: %w", p.Name(), err)
		}
		for _, x := range res {
			if x.URI == "" || x.Name == "" {
				return fmt.Errorf("provider %q lists a resource without uri or name (%q, %q)", p.Name(), x.URI, x.Name)
			}
			if prev, dup := s.resourceRoutes[x.URI]; dup {
				return fmt.Errorf("duplicate resource %q (providers %q and %q)", x.URI, prev.Name(), p.Name())
			}
			s.resourceRoutes[x.URI] = p
			s.resources = append(s.resources, x)
		}
		tmpls, err := p.ListResourceTemplates(ctx)
		if err != nil {
			return fmt.Errorf("list resource templates of provider %q: %w", p.Name(), err)
		}
		for _, x := range tmpls {
			if x.URITemplate == "" || x.Name == "" {
				return fmt.Errorf("provider %q lists a resource template without uriTemplate or name (%q, %q)", p.Name(), x.URITemplate, x.Name)
			}
			if prev, dup := templateOwner[x.URITemplate]; dup {
				return fmt.Errorf("duplicate resource template %q (providers %q and %q)", x.URITemplate, prev, p.Name())
			}
			templateOwner[x.URITemplate] = p.Name()
			s.templates = append(s.templates, x)
		}
	}
	sort.Slice(s.resources, func(i, j int) bool { return s.resources[i].URI < s.resources[j].URI })
	sort.Slice(s.templates, func(i, j int) bool { return s.templates[i].URITemplate < s.templates[j].URITemplate })
	byName := make(map[string]ResourceProvider, len(r.resources))
	for _, p := range r.resources {
		byName[p.Name()] = p
	}
	for _, x := range s.templates {
		tmpl, err := uritemplate.New(x.URITemplate)
		if err != nil {
			return fmt.Errorf("provider %q: resource template %q: %w", templateOwner[x.URITemplate], x.URITemplate, err)
		}
		s.templateRoutes = append(s.templateRoutes, templateRoute{provider: byName[templateOwner[x.URITemplate]], tmpl: tmpl})
	}

	for _, p := range r.prompts {
		list, err := p.ListPrompts(ctx)
		if err != nil {
			return fmt.Errorf("list prompts of provider %q: %w", p.Name(), err)
		}
		for _, x := range list {
			if x.Name == "" {
				return fmt.Errorf("provider %q lists a prompt with an empty name", p.Name())
			}
			if prev, dup := s.promptRoutes[x.Name]; dup {
				return fmt.Errorf("duplicate prompt %q (providers %q and %q)", x.Name, prev.provider.Name(), p.Name())
			}
			s.promptRoutes[x.Name] = promptRoute{provider: p, prompt: x}
			s.prompts = append(s.prompts, x)
		}
	}
	sort.Slice(s.prompts, func(i, j int) bool { return s.prompts[i].Name < s.prompts[j].Name })
	r.snap.Store(s)
	return nil
}

func (r *CatalogRegistry) current() *catalogSnapshot {
	if r == nil {
		return &emptyCatalog
	}
	if s := r.snap.Load(); s != nil {
		return s
	}
	return &emptyCatalog
}

// ServesResources reports whether any resource provider is configured: the
// "resources" capability is advertised exactly then.
func (r *CatalogRegistry) ServesResources() bool { return r != nil && len(r.resources) > 0 }

// ServesPrompts reports whether any prompt provider is configured.
func (r *CatalogRegistry) ServesPrompts() bool { return r != nil && len(r.prompts) > 0 }

// ServesCompletions reports whether any provider implements Completer.
func (r *CatalogRegistry) ServesCompletions() bool { return r != nil && r.completes }

// ListResources returns every resource, sorted by URI. The slice is a fresh
// copy; raw JSON fields are shared and must not be modified.
func (r *CatalogRegistry) ListResources(ctx context.Context) ([]Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tools: list resources: %w", err)
	}
	return append([]Resource(nil), r.current().resources...), nil
}

// ListResourceTemplates returns every resource template, sorted by template.
func (r *CatalogRegistry) ListResourceTemplates(ctx context.Context) ([]ResourceTemplate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tools: list resource templates: %w", err)
	}
	return append([]ResourceTemplate(nil), r.current().templates...), nil
}

// ListPrompts returns every prompt, sorted by name.
func (r *CatalogRegistry) ListPrompts(ctx context.Context) ([]Prompt, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tools: list prompts: %w", err)
	}
	return append([]Prompt(nil), r.current().prompts...), nil
}

// ReadResource routes uri (see CatalogRegistry). A URI nobody serves, and a
// result with no contents (SEP-2164: never answer "not found" with an empty
// list), yield an error wrapping ErrResourceNotFound.
func (r *CatalogRegistry) ReadResource(ctx context.Context, uri string) (*ReadResourceResult, error) {
	s := r.current()
	if p, ok := s.resourceRoutes[uri]; ok {
		return readFrom(ctx, p, uri)
	}
	for _, rt := range s.templateRoutes {
		if !rt.tmpl.Regexp().MatchString(uri) {
			continue
		}
		res, err := readFrom(ctx, rt.provider, uri)
		if errors.Is(err, ErrResourceNotFound) {
			continue
		}
		return res, err
	}
	return nil, fmt.Errorf("tools: read resource %q: %w", uri, ErrResourceNotFound)
}

func readFrom(ctx context.Context, p ResourceProvider, uri string) (*ReadResourceResult, error) {
	res, err := p.ReadResource(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("tools: read resource %q (provider %q): %w", uri, p.Name(), err)
	}
	if res == nil || len(res.Contents) == 0 {
		return nil, fmt.Errorf("tools: read resource %q (provider %q): no contents: %w", uri, p.Name(), ErrResourceNotFound)
	}
	return res, nil
}

// GetPrompt checks that every required argument is present (an
// *ArgumentError naming the missing ones otherwise) and renders the prompt
// with its provider. An unknown name yields an error wrapping
// ErrUnknownPrompt.
func (r *CatalogRegistry) GetPrompt(ctx context.Context, name string, args map[string]string) (*GetPromptResult, error) {
	rt, ok := r.current().promptRoutes[name]
	if !ok {
		return nil, fmt.Errorf("tools: get prompt %q: %w", name, ErrUnknownPrompt)
	}
	var missing []string
	for _, a := range rt.prompt.Arguments {
		if _, ok := args[a.Name]; a.Required && !ok {
			missing = append(missing, a.Name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("tools: get prompt %q: %w", name,
			&ArgumentError{Msg: "missing required argument(s): " + strings.Join(missing, ", ")})
	}
	res, err := rt.provider.GetPrompt(ctx, name, args)
	if err != nil {
		return nil, fmt.Errorf("tools: get prompt %q (provider %q): %w", name, rt.provider.Name(), err)
	}
	if res == nil {
		return nil, fmt.Errorf("tools: get prompt %q (provider %q): %w", name, rt.provider.Name(), errNilResult)
	}
	return res, nil
}

// Complete routes a completion request to the provider owning ref: the
// prompt's provider for RefPrompt; for RefResource the provider of the
// template equal to ref.URI, else of the resource with that URI. A provider
// that is not a Completer completes nothing (empty values). Unknown
// references yield ErrUnknownPrompt or ErrResourceNotFound; an unknown
// reference type or an empty argument name an *ArgumentError. Results are
// trimmed to MaxCompletionValues.
func (r *CatalogRegistry) Complete(ctx context.Context, ref CompletionRef, arg CompletionArgument, cc CompletionContext) (*Completion, error) {
	if arg.Name == "" {
		return nil, fmt.Errorf("tools: complete: %w", &ArgumentError{Msg: "argument.name is required"})
	}
	s := r.current()
	var owner any
	switch ref.Type {
	case RefPrompt:
		rt, ok := s.promptRoutes[ref.Name]
		if !ok {
			return nil, fmt.Errorf("tools: complete prompt %q: %w", ref.Name, ErrUnknownPrompt)
		}
		owner = rt.provider
	case RefResource:
		for i, t := range s.templates {
			if t.URITemplate == ref.URI {
				owner = s.templateRoutes[i].provider
				break
			}
		}
		if owner == nil {
			p, ok := s.resourceRoutes[ref.URI]
			if !ok {
				return nil, fmt.Errorf("tools: complete resource %q: %w", ref.URI, ErrResourceNotFound)
			}
			owner = p
		}
	default:
		return nil, fmt.Errorf("tools: complete: %w", &ArgumentError{Msg: fmt.Sprintf("unknown reference type %q", ref.Type)})
	}
	c, ok := owner.(Completer)
	if !ok {
		return &Completion{Values: []string{}}, nil
	}
	res, err := c.Complete(ctx, ref, arg, cc)
	if err != nil {
		return nil, fmt.Errorf("tools: complete %s %q: %w", ref.Type, ref.Name+ref.URI, err)
	}
	if res == nil {
		return &Completion{Values: []string{}}, nil
	}
	out := *res
	if out.Values == nil {
		// "values" is required on the wire; null fails schema validation.
		out.Values = []string{}
	}
	if len(out.Values) > MaxCompletionValues {
		if out.Total < len(out.Values) {
			out.Total = len(out.Values)
		}
		out.Values = out.Values[:MaxCompletionValues:MaxCompletionValues]
		out.HasMore = true
	}
	return &out, nil
}

// String describes the catalog for logs.
func (r *CatalogRegistry) String() string {
	if r == nil {
		return "tools.CatalogRegistry{}"
	}
	s := r.current()
	return fmt.Sprintf("tools.CatalogRegistry{resources: %d, templates: %d, prompts: %d}",
		len(s.resources), len(s.templates), len(s.prompts))
}

// MatchURITemplate reports whether uri matches the RFC 6570 template and
// returns the values of its variables. Providers use it to read the
// variables of a templated URI the registry routed to them.
func MatchURITemplate(template, uri string) (map[string]string, bool) {
	t, err := uritemplate.New(template)
	if err != nil {
		return nil, false
	}
	if !t.Regexp().MatchString(uri) {
		return nil, false
	}
	vals := t.Match(uri)
	if vals == nil {
		return nil, false
	}
	out := make(map[string]string, len(vals))
	for k, v := range vals {
		out[k] = v.String()
	}
	return out, true
}
