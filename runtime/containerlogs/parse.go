package containerlogs

import (
	"bytes"
	"fmt"
	"time"
)

// Line is one line of a CRI log file:
//
//	2026-01-02T15:04:05.123456789Z stdout F the message
//
// a timestamp (RFC3339Nano), the stream (stdout or stderr), a tag whose
// first ':'-separated field is P (partial: the message continues on the
// next line of the same stream) or F (full), and the message.
type Line struct {
	Time    time.Time
	Stream  string // "stdout" or "stderr"
	Partial bool
	// Message is the text without the line's newline. It aliases the
	// parsed bytes.
	Message []byte
}

// ParseLine parses one CRI log line, with or without its trailing newline.
// Like the kubelet it accepts tags it does not know (the format allows
// more ':'-separated fields) and treats all but P as a full line.
func ParseLine(b []byte) (Line, error) {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	ts, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return Line{}, fmt.Errorf("CRI log line: no timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return Line{}, fmt.Errorf("CRI log line: timestamp %q: not RFC3339", truncate(ts))
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return Line{}, fmt.Errorf("CRI log line: no stream")
	}
	if s := string(stream); s != "stdout" && s != "stderr" {
		return Line{}, fmt.Errorf("CRI log line: stream %q: want stdout or stderr", truncate(stream))
	}
	tag, msg, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return Line{}, fmt.Errorf("CRI log line: no tag")
	}
	first, _, _ := bytes.Cut(tag, []byte{':'})
	return Line{Time: t, Stream: string(stream), Partial: string(first) == "P", Message: msg}, nil
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
