package conformance

import (
	"encoding/json"
	"fmt"
)

// Media payloads. The suite only checks that data and mimeType are present
// (and mimeType "audio/wav" for audio), but real files keep clients that
// decode them happy; both are the minimal files the reference servers use.
const (
	// redPixelPNG is a 1x1 red PNG, base64-encoded.
	redPixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
	// silentWAV is a mono 8 kHz 16-bit PCM WAV with one silent sample, base64-encoded.
	silentWAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
)

type textContent struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type mediaContent struct {
	Type     string `json:"type"`
	Data     string `json:"data"`
	MIMEType string `json:"mimeType"`
}

type resourceContents struct {
	URI      string `json:"uri"`
	MIMEType string `json:"mimeType"`
	Text     string `json:"text"`
}

type embeddedResource struct {
	Type     string           `json:"type"`
	Resource resourceContents `json:"resource"`
}

// mustJSON marshals content built from the literals in this package. A
// failure can only be a programming error, caught by the package tests.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("conformance: marshal content: %v", err))
	}
	return b
}

func text(s string) json.RawMessage {
	return mustJSON(textContent{Type: "text", Text: s})
}

func image(b64, mime string) json.RawMessage {
	return mustJSON(mediaContent{Type: "image", Data: b64, MIMEType: mime})
}

func audio(b64, mime string) json.RawMessage {
	return mustJSON(mediaContent{Type: "audio", Data: b64, MIMEType: mime})
}

func resource(uri, mime, body string) json.RawMessage {
	return mustJSON(embeddedResource{
		Type:     "resource",
		Resource: resourceContents{URI: uri, MIMEType: mime, Text: body},
	})
}
