package streams

import (
	"strconv"
	"strings"
)

// A request a running tool sends to its client (sampling, elicitation,
// roots) gets a JSON-RPC id that names the executor incarnation waiting for
// the answer. The client may POST its response to any gateway; the gateway
// reads the executor from the id and forwards the response to that
// executor's partition of the executor-commands topic, with no lookup.

const clientRequestPrefix = "mcpstream/"

// ClientRequestTarget is what a client request id names.
type ClientRequestTarget struct {
	Executor    string
	Incarnation string
	Seq         uint64
}

// ClientRequestID is the JSON-RPC id (a string) of the seq-th request an
// executor incarnation sends to clients.
func ClientRequestID(executor, incarnation string, seq uint64) string {
	return clientRequestPrefix + executor + "/" + incarnation + "/" + strconv.FormatUint(seq, 10)
}

// ParseClientRequestID reads an id made by ClientRequestID. Executor ids
// may contain slashes; incarnations and sequence numbers do not, so the
// last two segments are read from the right.
func ParseClientRequestID(id string) (ClientRequestTarget, bool) {
	rest, ok := strings.CutPrefix(id, clientRequestPrefix)
	if !ok {
		return ClientRequestTarget{}, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return ClientRequestTarget{}, false
	}
	seq, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil {
		return ClientRequestTarget{}, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 || j == len(rest)-1 {
		return ClientRequestTarget{}, false
	}
	return ClientRequestTarget{Executor: rest[:j], Incarnation: rest[j+1:], Seq: seq}, true
}

// IsClientRequestID reports whether id has the shape of a client request
// id, well formed or not: such a response must never reach a session as an
// ordinary message.
func IsClientRequestID(id string) bool { return strings.HasPrefix(id, clientRequestPrefix) }
