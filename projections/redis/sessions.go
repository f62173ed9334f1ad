package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpstream/mcpstream/schemas"
)

// Session is what the projection knows about one live session.
type Session struct {
	ID              string
	Principal       string
	ProtocolVersion string
	State           schemas.SessionLifecycle // INITIALIZING or ACTIVE; CLOSED ones are deleted
	// ClientInfo and ClientCapabilities are the JSON objects of initialize.
	// Shared with caches: do not modify.
	ClientInfo         json.RawMessage
	ClientCapabilities json.RawMessage
	LogLevel           string
	CreatedAt          time.Time
	LastActivity       time.Time
	Requests           int64
	// ExpiresAt is when the session's idle window ends (the key's TTL).
	ExpiresAt time.Time
	// Position is the offset of the table record this value came from.
	Position int64
}

// SessionWrite is one table record to apply.
type SessionWrite struct {
	// ID is the session id (the record key).
	ID string
	// Position is the record's offset in its partition of the table topic.
	// A key lives in one partition, so offsets order its values.
	Position int64
	// State is the value; nil for a tombstone. A nil or CLOSED state deletes
	// the session.
	State *schemas.SessionState
	// ExpireAt is when the session's key expires (for a deletion: when its
	// gone marker may expire). At or before now deletes the key at once.
	ExpireAt time.Time
}

// Outcomes of one SessionWrite.
const (
	WriteStale   = 0 // the key already holds this position or a later one
	WritePut     = 1
	WriteDeleted = 2
)

// applySession is the only way session keys are written. KEYS[1] is the
// hash, KEYS[2] the gone marker; ARGV[1] the position, ARGV[2] "put" or
// "del", ARGV[3] the expiry (unix ms), ARGV[4..] field/value pairs for put.
// Returns WriteStale, WritePut or WriteDeleted. A key of another type (not
// written by this script) reads as absent and is overwritten: the keyspace
// is the projection's, and failing the write would stall the projection
// on that key forever.
var applySession = goredis.NewScript(`
local function read(cmd, key, ...)
  local v = redis.pcall(cmd, key, ...)
  if type(v) == 'table' and v.err then return false end
  return v
end
local pos = tonumber(ARGV[1])
local cur = read('HGET', KEYS[1], 'pos')
if cur and (tonumber(cur) or -1) >= pos then return 0 end
local gone = read('GET', KEYS[2])
if gone and (tonumber(gone) or -1) >= pos then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[2] == 'put' then
  redis.call('HSET', KEYS[1], 'pos', ARGV[1], unpack(ARGV, 4))
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  if gone then redis.call('DEL', KEYS[2]) end
  return 1
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
return 2
`)

func (s *Store) sessionArgs(w SessionWrite) (keys []string, args []any) {
	keys = []string{s.sessionKey(w.ID), s.goneKey(w.ID)}
	exp := w.ExpireAt.UnixMilli()
	st := w.State
	if st == nil || st.State == schemas.SessionClosed {
		return keys, []any{w.Position, "del", exp}
	}
	return keys, []any{w.Position, "put", exp,
		"principal", st.Principal,
		"protocol_version", st.ProtocolVersion,
		"state", string(st.State),
		"client_info", []byte(st.ClientInfo),
		"client_capabilities", []byte(st.ClientCapabilities),
		"log_level", st.LogLevel,
		"created_at", st.CreatedAt.UnixMilli(),
		"last_activity", st.LastActivity.UnixMilli(),
		"requests", st.Requests,
		"expires_at", exp,
	}
}

// ApplySessions applies writes in one pipeline and returns each one's
// outcome (WriteStale, WritePut, WriteDeleted). Applying the same writes
// again, or older ones, changes nothing.
func (s *Store) ApplySessions(ctx context.Context, writes []SessionWrite) ([]int, error) {
	out, _, err := s.applyBatch(ctx, writes, "", nil, nil)
	return out, err
}

// applyBatch writes in one pipeline, on one connection: first SET the
// markers of fresh partitions (whose batch starts at offset 0), then the
// writes, then GET the markers of check. A marker missing at the end means
// this Redis lost data since the partition was last rebuilt.
func (s *Store) applyBatch(ctx context.Context, writes []SessionWrite, group string, fresh, check []int32) (outcomes []int, lost []int32, err error) {
	for attempt := 0; ; attempt++ {
		outcomes, lost, err = s.applyOnce(ctx, writes, group, fresh, check)
		// A restarted server has forgotten the script; load it and go again
		// (once: a second NOSCRIPT is a real error).
		if err == nil || attempt > 0 || !goredis.HasErrorPrefix(err, "NOSCRIPT") {
			return outcomes, lost, err
		}
		if lerr := applySession.Load(ctx, s.c).Err(); lerr != nil {
			return nil, nil, fmt.Errorf("loading session script: %w", lerr)
		}
	}
}

func (s *Store) applyOnce(ctx context.Context, writes []SessionWrite, group string, fresh, check []int32) ([]int, []int32, error) {
	pipe := s.c.Pipeline()
	for _, p := range fresh {
		pipe.Set(ctx, s.markerKey(group, p), "1", 0)
	}
	cmds := make([]*goredis.Cmd, len(writes))
	for i, w := range writes {
		keys, args := s.sessionArgs(w)
		cmds[i] = applySession.EvalSha(ctx, pipe, keys, args...)
	}
	marks := make([]*goredis.StringCmd, len(check))
	for i, p := range check {
		marks[i] = pipe.Get(ctx, s.markerKey(group, p))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != goredis.Nil {
		// A reply error (not a connection one) belongs to one command:
		// name the session it was for.
		var rerr goredis.Error
		if errors.As(err, &rerr) {
			for i, c := range cmds {
				if c.Err() == err {
					return nil, nil, fmt.Errorf("writing session %s to redis: %w", writes[i].ID, err)
				}
			}
		}
		return nil, nil, fmt.Errorf("writing %d sessions to redis: %w", len(writes), err)
	}
	out := make([]int, len(writes))
	for i, c := range cmds {
		n, err := c.Int()
		if err != nil {
			return nil, nil, fmt.Errorf("writing session %s: %w", writes[i].ID, err)
		}
		out[i] = n
	}
	var lost []int32
	for i, m := range marks {
		switch err := m.Err(); {
		case err == goredis.Nil:
			lost = append(lost, check[i])
		case err != nil:
			return nil, nil, fmt.Errorf("reading projector marker: %w", err)
		}
	}
	return out, lost, nil
}

// setMarkers records that partitions are being rebuilt from offset 0.
func (s *Store) setMarkers(ctx context.Context, group string, parts []int32) error {
	pipe := s.c.Pipeline()
	for _, p := range parts {
		pipe.Set(ctx, s.markerKey(group, p), "1", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("setting projector markers: %w", err)
	}
	return nil
}

// missingMarkers returns the partitions whose marker is missing.
func (s *Store) missingMarkers(ctx context.Context, group string, parts []int32) ([]int32, error) {
	keys := make([]string, len(parts))
	for i, p := range parts {
		keys[i] = s.markerKey(group, p)
	}
	vals, err := s.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("reading projector markers: %w", err)
	}
	var lost []int32
	for i, v := range vals {
		if v == nil {
			lost = append(lost, parts[i])
		}
	}
	return lost, nil
}

// GetSession returns a live session, or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	m, err := s.c.HGetAll(ctx, s.sessionKey(id)).Result()
	if err != nil {
		return Session{}, fmt.Errorf("reading session %s: %w", id, err)
	}
	if len(m) == 0 {
		return Session{}, ErrNotFound
	}
	return parseSession(id, m)
}

func parseSession(id string, m map[string]string) (Session, error) {
	var perr error
	num := func(k string) int64 {
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil && perr == nil {
			perr = fmt.Errorf("session %s: field %s: %w", id, k, err)
		}
		return n
	}
	raw := func(k string) json.RawMessage {
		if m[k] == "" {
			return nil
		}
		return json.RawMessage(m[k])
	}
	s := Session{
		ID:                 id,
		Principal:          m["principal"],
		ProtocolVersion:    m["protocol_version"],
		State:              schemas.SessionLifecycle(m["state"]),
		ClientInfo:         raw("client_info"),
		ClientCapabilities: raw("client_capabilities"),
		LogLevel:           m["log_level"],
		CreatedAt:          time.UnixMilli(num("created_at")),
		LastActivity:       time.UnixMilli(num("last_activity")),
		Requests:           num("requests"),
		ExpiresAt:          time.UnixMilli(num("expires_at")),
		Position:           num("pos"),
	}
	if perr != nil {
		return Session{}, perr
	}
	// Redis expires keys lazily on access, so an expired key is never
	// returned; this guards against clock skew between writer and reader.
	if !s.ExpiresAt.After(time.Now()) {
		return Session{}, ErrNotFound
	}
	return s, nil
}

// SessionIDs lists the ids of sessions in Redis (SCAN; for tests and
// operators, not for request paths).
func (s *Store) SessionIDs(ctx context.Context) ([]string, error) {
	var ids []string
	pre := s.prefix + ":session:{"
	iter := s.c.Scan(ctx, 0, pre+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if strings.HasSuffix(k, "}") {
			ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(k, pre), "}"))
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scanning sessions: %w", err)
	}
	return ids, nil
}
