package schemas

import (
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/linkedin/goavro/v2"
)

//go:embed *.avsc
var files embed.FS

// Schema ids are part of the wire format: an id, once used, names one schema
// forever. A changed schema gets a new id here and the old one stays
// decodable; schemas/testdata/fingerprints.txt pins each id to its text.
var ids = map[string]uint32{
	"request_event.avsc":       1,
	"reply_event.avsc":         2,
	"session_state.v1.avsc":    3,
	"toolcall_state.v1.avsc":   4,
	"tool_job.v1.avsc":         5,
	"tool_result.avsc":         6,
	"tool_control.avsc":        7,
	"executor_command.v1.avsc": 8,
	"executor_beat.avsc":       9,
	"toolcall_state.avsc":      10,
	"tool_job.avsc":            11,
	"executor_command.avsc":    12,
	"session_state.avsc":       13,
}

// family maps a retired schema file (name.vN.avsc) to the current file of
// its record type: values written with an older version stay readable,
// while new values are always written with the current one.
func family(file string) string {
	base := strings.TrimSuffix(file, ".avsc")
	if i := strings.LastIndex(base, ".v"); i > 0 {
		if _, err := strconv.Atoi(base[i+2:]); err == nil {
			return base[:i] + ".avsc"
		}
	}
	return file
}

const magic = 0

// ErrUnknownSchema is returned when a frame names a schema id this binary
// does not know (written by a newer version, or not ours at all).
var ErrUnknownSchema = errors.New("unknown schema id")

// ErrNotFramed is returned for values without the 5-byte Confluent prefix.
var ErrNotFramed = errors.New("value is not Confluent-framed Avro")

// Schema is one parsed .avsc file.
type Schema struct {
	ID    uint32
	File  string
	Name  string // full Avro name, e.g. io.mcpstream.v1.RequestEvent
	Codec *goavro.Codec
}

// Registry maps schema ids to codecs.
type Registry struct {
	byID   map[uint32]*Schema
	byFile map[string]*Schema
}

// Load parses the embedded schemas. It fails if a .avsc file has no id, so a
// new schema cannot ship without a stable id.
func Load() (*Registry, error) {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded schemas: %w", err)
	}
	r := &Registry{byID: map[uint32]*Schema{}, byFile: map[string]*Schema{}}
	for _, e := range entries {
		id, ok := ids[e.Name()]
		if !ok {
			return nil, fmt.Errorf("schema %s has no id in schemas.ids", e.Name())
		}
		text, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("reading schema %s: %w", e.Name(), err)
		}
		c, err := goavro.NewCodec(string(text))
		if err != nil {
			return nil, fmt.Errorf("parsing schema %s: %w", e.Name(), err)
		}
		s := &Schema{ID: id, File: e.Name(), Name: c.Schema(), Codec: c}
		r.byID[id] = s
		if family(e.Name()) == e.Name() {
			r.byFile[e.Name()] = s
		}
	}
	return r, nil
}

// MustLoad is Load for package initialisation of programs whose embedded
// schemas are known good (they are checked by this package's tests).
func MustLoad() *Registry {
	r, err := Load()
	if err != nil {
		panic(err)
	}
	return r
}

// Schemas lists the loaded schemas by id.
func (r *Registry) Schemas() []*Schema {
	out := make([]*Schema, 0, len(r.byID))
	for _, s := range r.byID {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (r *Registry) encode(file string, native map[string]any) ([]byte, error) {
	s, ok := r.byFile[file]
	if !ok {
		return nil, fmt.Errorf("encoding with %s: %w", file, ErrUnknownSchema)
	}
	buf := make([]byte, 5, 128)
	buf[0] = magic
	binary.BigEndian.PutUint32(buf[1:5], s.ID)
	out, err := s.Codec.BinaryFromNative(buf, native)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", file, err)
	}
	return out, nil
}

// decode checks the frame names the schema the caller expects: a value of
// another type on a topic is a bug or a foreign producer, never something to
// guess at.
func (r *Registry) decode(file string, data []byte) (map[string]any, error) {
	if len(data) < 5 || data[0] != magic {
		return nil, ErrNotFramed
	}
	id := binary.BigEndian.Uint32(data[1:5])
	s, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("decoding schema id %d: %w", id, ErrUnknownSchema)
	}
	if family(s.File) != file {
		return nil, fmt.Errorf("decoding: value has schema %s (id %d), want %s", s.File, id, file)
	}
	native, rest, err := s.Codec.NativeFromBinary(data[5:])
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", file, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("decoding %s: %d trailing bytes", file, len(rest))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding %s: not a record", file)
	}
	return m, nil
}

// FileOf names the current schema file of the record type framed in b, for
// topics that carry more than one type.
func (r *Registry) FileOf(b []byte) (string, error) {
	if len(b) < 5 || b[0] != magic {
		return "", ErrNotFramed
	}
	id := binary.BigEndian.Uint32(b[1:5])
	s, ok := r.byID[id]
	if !ok {
		return "", fmt.Errorf("schema id %d: %w", id, ErrUnknownSchema)
	}
	return family(s.File), nil
}

// SchemaID returns the id framed into values of the given record.
func (r *Registry) SchemaID(file string) (uint32, bool) {
	s, ok := r.byFile[file]
	if !ok {
		return 0, false
	}
	return s.ID, true
}
