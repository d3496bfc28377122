package eventlog

// EncodePayload exposes the writer's fast record encoding to external tests.
var EncodePayload = encodePayload
