package projections

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpstream/mcpstream/schemas"
	"github.com/mcpstream/mcpstream/streams"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Sources returns the topics a projection is fed from. Tasks and
// UpstreamHealth have none yet.
func Sources(t streams.Topics, projection string) []string {
	switch projection {
	case Sessions:
		return []string{streams.Table(t.SessionsGroup())}
	case ToolCalls:
		return []string{t.ToolCalls(), t.ToolResults()}
	}
	return nil
}

// Decoder turns records of the source topics into batches.
type Decoder struct {
	reg        *schemas.Registry
	jobID      uint32
	resultID   uint32
	projection map[string]string // topic -> projection
	sessions   string
	calls      string
	results    string
}

// NewDecoder decodes the sources of the given projections (nil: Live).
func NewDecoder(reg *schemas.Registry, t streams.Topics, projections []string) (*Decoder, error) {
	if reg == nil {
		return nil, fmt.Errorf("projections decoder: no schema registry")
	}
	if len(projections) == 0 {
		projections = Live
	}
	d := &Decoder{reg: reg, projection: map[string]string{},
		sessions: streams.Table(t.SessionsGroup()), calls: t.ToolCalls(), results: t.ToolResults()}
	var ok1, ok2 bool
	d.jobID, ok1 = reg.SchemaID("tool_job.avsc")
	d.resultID, ok2 = reg.SchemaID("tool_result.avsc")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("projections decoder: registry lacks tool_job or tool_result")
	}
	for _, p := range projections {
		src := Sources(t, p)
		if len(src) == 0 {
			return nil, fmt.Errorf("projection %q has no source topics (known: %s)", p, strings.Join(Live, ", "))
		}
		for _, topic := range src {
			d.projection[topic] = p
		}
	}
	return d, nil
}

// Topics lists the topics to consume, sorted.
func (d *Decoder) Topics() []string {
	out := make([]string, 0, len(d.projection))
	for t := range d.projection {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Projection names the projection a topic feeds ("" if none).
func (d *Decoder) Projection(topic string) string { return d.projection[topic] }

// Reject is a record that could not be decoded. It is skipped: one foreign
// or corrupt value must not stop the projection of everything behind it.
type Reject struct {
	Pos Position
	Err error
}

// Decode merges records into one batch for the table set gen: one row per
// key (the latest session state; the lowest-offset job and result of a
// call), rows sorted by key so concurrent transactions lock in one order,
// and each partition's next offset.
func (d *Decoder) Decode(recs []*kgo.Record, gen string) (*Batch, []Reject) {
	b := &Batch{Gen: gen, Events: len(recs)}
	var rejects []Reject
	sessions := map[string]int{}
	calls := map[string]int{}
	next := map[TopicPartition]int64{}
	for _, r := range recs {
		pos := Position{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		tp := TopicPartition{r.Topic, r.Partition}
		if r.Offset+1 > next[tp] {
			next[tp] = r.Offset + 1
		}
		var err error
		switch r.Topic {
		case d.sessions:
			err = d.session(b, sessions, r, pos)
		case d.calls:
			err = d.job(b, calls, r, pos)
		case d.results:
			err = d.result(b, calls, r, pos)
		default:
			err = fmt.Errorf("topic %s feeds no projection", r.Topic)
		}
		if err != nil {
			rejects = append(rejects, Reject{Pos: pos, Err: err})
		}
	}
	slices.SortFunc(b.Sessions, func(x, y SessionRow) int { return strings.Compare(x.SessionID, y.SessionID) })
	slices.SortFunc(b.Calls, func(x, y CallRow) int { return strings.Compare(x.EventID, y.EventID) })
	for tp, n := range next {
		b.Offsets = append(b.Offsets, Offset{Consumer: consumerName(d.projection[tp.Topic], gen), Topic: tp.Topic, Partition: tp.Partition, Next: n})
	}
	slices.SortFunc(b.Offsets, func(x, y Offset) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return int(x.Partition - y.Partition)
	})
	return b, rejects
}

func (d *Decoder) session(b *Batch, idx map[string]int, r *kgo.Record, pos Position) error {
	row := SessionRow{SessionID: string(r.Key), Pos: pos}
	if r.Value == nil {
		row.Deleted = true
	} else {
		s, err := d.reg.DecodeSession(r.Value)
		if err != nil {
			return err
		}
		if s.SessionID != "" {
			row.SessionID = s.SessionID
		}
		row.Principal, row.State, row.ProtocolVersion = s.Principal, string(s.State), s.ProtocolVersion
		row.ClientInfo, row.ClientCapabilities, row.LogLevel = s.ClientInfo, s.ClientCapabilities, s.LogLevel
		row.CreatedAt, row.LastActivity = s.CreatedAt, s.LastActivity
		row.Requests, row.LastRequestOffset = s.Requests, s.LastOffset
	}
	if row.SessionID == "" {
		return fmt.Errorf("session state without session id")
	}
	if i, ok := idx[row.SessionID]; ok {
		prev := b.Sessions[i]
		if prev.Pos.Offset > pos.Offset {
			return nil
		}
		if row.Deleted {
			// A tombstone keeps the data it deletes, as it does when it
			// meets the row in the table: the same rows whatever the
			// batching.
			prev.Deleted, prev.Pos = true, pos
			row = prev
		}
		b.Sessions[i] = row
		return nil
	}
	idx[row.SessionID] = len(b.Sessions)
	b.Sessions = append(b.Sessions, row)
	return nil
}

func (d *Decoder) call(b *Batch, idx map[string]int, eventID string) *CallRow {
	if i, ok := idx[eventID]; ok {
		return &b.Calls[i]
	}
	idx[eventID] = len(b.Calls)
	b.Calls = append(b.Calls, CallRow{EventID: eventID})
	return &b.Calls[len(b.Calls)-1]
}

// otherRecord reports whether a value is framed with another schema than
// want: a topic may carry several record types (tool-results also carries
// executors' control records), and those are not this projection's.
func otherRecord(v []byte, want uint32) bool {
	return len(v) >= 5 && v[0] == 0 && binary.BigEndian.Uint32(v[1:5]) != want
}

func (d *Decoder) job(b *Batch, idx map[string]int, r *kgo.Record, pos Position) error {
	if r.Value == nil || otherRecord(r.Value, d.jobID) {
		return nil // no tombstones on a stream; other record types are not calls
	}
	j, err := d.reg.DecodeJob(r.Value)
	if err != nil {
		return err
	}
	if j.EventID == "" {
		return fmt.Errorf("tool job without event id")
	}
	c := d.call(b, idx, j.EventID)
	if c.Job != nil && c.Job.Pos.Offset <= pos.Offset {
		return nil
	}
	part := &JobPart{SessionID: j.SessionID, Principal: j.Principal, Tool: j.Tool, AcceptedAt: j.AcceptedAt, Pos: pos}
	if j.Arguments != nil {
		sum := sha256.Sum256(j.Arguments)
		part.ArgsSHA256 = sum[:]
	}
	c.Job = part
	return nil
}

func (d *Decoder) result(b *Batch, idx map[string]int, r *kgo.Record, pos Position) error {
	if r.Value == nil || otherRecord(r.Value, d.resultID) {
		return nil
	}
	res, err := d.reg.DecodeResult(r.Value)
	if err != nil {
		return err
	}
	if res.EventID == "" {
		return fmt.Errorf("tool result without event id")
	}
	c := d.call(b, idx, res.EventID)
	if c.Result != nil && c.Result.Pos.Offset <= pos.Offset {
		return nil
	}
	outcome, code := Outcome(res.Response)
	c.Result = &ResultPart{Executor: res.Executor, StartedAt: res.StartedAt, FinishedAt: res.FinishedAt,
		Outcome: outcome, ErrorCode: code, Pos: pos}
	return nil
}

// Outcome classifies a JSON-RPC response body without id: a result is
// OutcomeOK, or OutcomeToolError when it has isError; an error object (or
// a body that is neither) is OutcomeError, with the code when there is one.
func Outcome(resp []byte) (string, *int32) {
	var body struct {
		Result *struct {
			IsError bool `json:"isError"`
		} `json:"result"`
		Error *struct {
			Code int32 `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp, &body); err != nil {
		return OutcomeError, nil
	}
	switch {
	case body.Error != nil:
		code := body.Error.Code
		return OutcomeError, &code
	case body.Result != nil && body.Result.IsError:
		return OutcomeToolError, nil
	case body.Result != nil:
		return OutcomeOK, nil
	}
	return OutcomeError, nil
}
