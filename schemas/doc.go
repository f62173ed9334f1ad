// Package schemas holds mcpstream's Avro schemas (the .avsc files beside
// this file), their Go forms, and the codec that frames every Kafka value
// the Confluent way: magic byte 0, a 4-byte big-endian schema id, then the
// Avro binary body.
//
// Start from Registry: Load() parses the embedded schemas; the typed
// Encode*/Decode* helpers turn events into framed bytes and back. Decoding
// always uses the writer's schema, found by the id in the frame, because
// goavro does no reader/writer schema resolution.
package schemas
