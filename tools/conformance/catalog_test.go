package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpstream/mcpstream/tools"
)

// catalog builds the registry the platform builds from this provider, so
// the fixtures are checked for duplicates and valid templates too.
func catalog(t *testing.T) *tools.CatalogRegistry {
	t.Helper()
	r, err := tools.NewCatalogRegistry(context.Background(), New())
	if err != nil {
		t.Fatal(err)
	}
	if !r.ServesResources() || !r.ServesPrompts() || !r.ServesCompletions() {
		t.Fatal("the conformance provider must serve resources, prompts and completions")
	}
	return r
}

func TestCatalogLists(t *testing.T) {
	ctx := context.Background()
	r := catalog(t)
	res, _ := r.ListResources(ctx)
	var uris []string
	for _, x := range res {
		uris = append(uris, x.URI)
		// resources-list fails an entry without uri or name.
		if x.Name == "" || x.Description == "" || x.MIMEType == "" {
			t.Errorf("%s: name/description/mimeType missing: %+v", x.URI, x)
		}
	}
	if want := []string{"test://static-binary", "test://static-text", "test://watched-resource"}; !reflect.DeepEqual(uris, want) {
		t.Errorf("resources %v, want %v", uris, want)
	}
	tmpls, _ := r.ListResourceTemplates(ctx)
	if len(tmpls) != 1 || tmpls[0].URITemplate != "test://template/{id}/data" || tmpls[0].MIMEType != "application/json" {
		t.Errorf("templates %+v", tmpls)
	}
	ps, _ := r.ListPrompts(ctx)
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
		// prompts-list fails a prompt without description.
		if p.Description == "" {
			t.Errorf("%s: no description", p.Name)
		}
	}
	if want := []string{"test_input_required_result_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource", "test_prompt_with_image", "test_simple_prompt"}; !reflect.DeepEqual(names, want) {
		t.Errorf("prompts %v, want %v", names, want)
	}
	// The provider's own lists must already be sorted (a Provider
	// contract), not only the registry's.
	own, _ := New().ListPrompts(ctx)
	for i := 1; i < len(own); i++ {
		if own[i-1].Name >= own[i].Name {
			t.Errorf("provider prompt list not sorted: %s before %s", own[i-1].Name, own[i].Name)
		}
	}
}

func TestCatalogReadResources(t *testing.T) {
	ctx := context.Background()
	r := catalog(t)

	res, err := r.ReadResource(ctx, "test://static-text")
	if err != nil {
		t.Fatal(err)
	}
	want := tools.ResourceContents{URI: "test://static-text", MIMEType: "text/plain", Text: "This is the content of the static text resource."}
	if len(res.Contents) != 1 || !reflect.DeepEqual(res.Contents[0], want) || !res.Public || res.TTL <= 0 {
		t.Errorf("static-text = %+v", res)
	}

	res, err = r.ReadResource(ctx, "test://static-binary")
	if err != nil {
		t.Fatal(err)
	}
	c := res.Contents[0]
	if c.MIMEType != "image/png" || c.Blob == nil || c.Text != "" {
		t.Fatalf("static-binary = %+v", c)
	}
	if img, err := png.Decode(bytes.NewReader(c.Blob)); err != nil || img.Bounds().Dx() != 1 {
		t.Errorf("static-binary is not a 1x1 PNG: %v", err)
	}
	b, _ := json.Marshal(c)
	if !bytes.Contains(b, []byte(`"blob":"`+redPixelPNG+`"`)) || bytes.Contains(b, []byte(`"text"`)) {
		t.Errorf("static-binary on the wire: %s", b)
	}

	res, err = r.ReadResource(ctx, "test://watched-resource")
	if err != nil || res.Contents[0].Text != "Watched resource content" || res.TTL != 0 {
		t.Errorf("watched-resource = %+v, %v", res, err)
	}

	for id, wantID := range map[string]string{"123": "123", "a%22b": `a"b`} {
		uri := "test://template/" + id + "/data"
		res, err := r.ReadResource(ctx, uri)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		c := res.Contents[0]
		var body struct {
			ID           string `json:"id"`
			TemplateTest bool   `json:"templateTest"`
			Data         string `json:"data"`
		}
		if c.URI != uri || c.MIMEType != "application/json" || json.Unmarshal([]byte(c.Text), &body) != nil {
			t.Fatalf("%s = %+v", uri, c)
		}
		if body.ID != wantID || !body.TemplateTest || body.Data != "Data for ID: "+wantID {
			t.Errorf("%s body = %+v", uri, body)
		}
	}

	for _, uri := range []string{"test://nonexistent-resource-for-conformance-testing", "test://template//data", "test://template/1/2/data", "test://static-text/x"} {
		if _, err := r.ReadResource(ctx, uri); !errors.Is(err, tools.ErrResourceNotFound) {
			t.Errorf("%s: %v, want ErrResourceNotFound", uri, err)
		}
	}
	// The provider answers not found by itself too (the registry is not
	// the only caller a provider may have).
	if _, err := New().ReadResource(ctx, "test://nope"); !errors.Is(err, tools.ErrResourceNotFound) {
		t.Errorf("provider read of an unknown URI: %v", err)
	}
}

// message is a decoded prompt message.
type message struct {
	Role    string `json:"role"`
	Content block  `json:"content"`
}

func getPrompt(t *testing.T, r *tools.CatalogRegistry, name string, args map[string]string) []message {
	t.Helper()
	res, err := r.GetPrompt(context.Background(), name, args)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b, _ := json.Marshal(res.Messages)
	var out []message
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if res.Description == "" || len(out) == 0 {
		t.Fatalf("%s: %+v", name, res)
	}
	for i, m := range out {
		if m.Role != "user" || m.Content.Type == "" {
			t.Errorf("%s message %d = %+v", name, i, m)
		}
	}
	return out
}

func TestCatalogPrompts(t *testing.T) {
	r := catalog(t)

	got := getPrompt(t, r, "test_simple_prompt", nil)
	if len(got) != 1 || got[0].Content.Text != "This is a simple prompt for testing." {
		t.Errorf("simple = %+v", got)
	}

	got = getPrompt(t, r, "test_prompt_with_arguments", map[string]string{"arg1": "testValue1", "arg2": "testValue2"})
	if len(got) != 1 || got[0].Content.Text != "Prompt with arguments: arg1='testValue1', arg2='testValue2'" {
		t.Errorf("with arguments = %+v", got)
	}

	got = getPrompt(t, r, "test_prompt_with_embedded_resource", map[string]string{"resourceUri": "test://example-resource"})
	if len(got) != 2 || got[0].Content.Type != "resource" || got[0].Content.Resource == nil ||
		got[0].Content.Resource.URI != "test://example-resource" || got[0].Content.Resource.Text != "Embedded resource content for testing." ||
		got[1].Content.Text != "Please process the embedded resource above." {
		t.Errorf("embedded resource = %+v", got)
	}

	got = getPrompt(t, r, "test_prompt_with_image", nil)
	if len(got) != 2 || got[1].Content.Text != "Please analyze the image above." {
		t.Fatalf("image = %+v", got)
	}
	checkPNG(t, got[0].Content)

	var argErr *tools.ArgumentError
	for _, tc := range []struct {
		name string
		args map[string]string
	}{
		{"test_prompt_with_arguments", map[string]string{"arg1": "x"}},
		{"test_prompt_with_embedded_resource", nil},
		{"test_prompt_with_embedded_resource", map[string]string{"resourceUri": ""}},
	} {
		if _, err := r.GetPrompt(context.Background(), tc.name, tc.args); !errors.As(err, &argErr) {
			t.Errorf("%s with %v: %v, want an ArgumentError", tc.name, tc.args, err)
		}
	}
	if _, err := New().GetPrompt(context.Background(), "nope", nil); !errors.Is(err, tools.ErrUnknownPrompt) {
		t.Errorf("unknown prompt: %v", err)
	}
}

func TestCatalogComplete(t *testing.T) {
	r := catalog(t)
	c, err := r.Complete(context.Background(), tools.CompletionRef{Type: tools.RefPrompt, Name: PromptWithArguments},
		tools.CompletionArgument{Name: "arg1", Value: "test"}, tools.CompletionContext{})
	if err != nil {
		t.Fatal(err)
	}
	// What the reference server answers, and what completion-complete
	// checks: a values array (empty is fine).
	b, _ := json.Marshal(c)
	if string(b) != `{"values":[]}` {
		t.Errorf("completion = %s", b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := New().Complete(ctx, tools.CompletionRef{}, tools.CompletionArgument{}, tools.CompletionContext{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled complete: %v", err)
	}
	if _, err := New().ReadResource(ctx, ResourceStaticText); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "not found") {
		t.Errorf("cancelled read: %v", err)
	}
}
