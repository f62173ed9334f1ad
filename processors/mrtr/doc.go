// Package mrtr implements the server side of 2026-07-28 multi round-trip
// requests: the signed requestState an input_required result hands out,
// the parsing of a retry's inputResponses, and the input_required result.
//
// The state carries the answers of earlier rounds (a client retrying sends
// only the latest round's inputResponses), bound with an HMAC to the
// principal, the request (method, name, arguments) and an expiry, so no
// processor or executor has to remember anything between rounds, and any
// instance holding the key continues any call.
package mrtr
