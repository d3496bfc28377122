package eventlog

// EncodePayload exposes the writer's fast record encoding to external tests.
var EncodePayload = encodePayload

// InjectCommitFault makes every later commit of l's writer report f's error
// (nil f: no fault) after the transaction committed.
func InjectCommitFault(l *Log, f func() error) { l.commitFault.Store(&f) }
