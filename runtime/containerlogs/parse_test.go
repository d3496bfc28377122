package containerlogs

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseLineReadsTheCRIFormat(t *testing.T) {
	ts := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)
	for _, tc := range []struct {
		name, in   string
		stream     string
		partial    bool
		msg, error string
	}{
		{name: "full stdout", in: "2026-01-02T15:04:05.123456789Z stdout F hello world\n", stream: "stdout", msg: "hello world"},
		{name: "full stderr without newline", in: "2026-01-02T15:04:05.123456789Z stderr F oops", stream: "stderr", msg: "oops"},
		{name: "partial", in: "2026-01-02T15:04:05.123456789Z stdout P part one\n", stream: "stdout", partial: true, msg: "part one"},
		{name: "empty message", in: "2026-01-02T15:04:05.123456789Z stdout F \n", stream: "stdout", msg: ""},
		{name: "message keeps spaces", in: "2026-01-02T15:04:05.123456789Z stdout F  two  spaces \n", stream: "stdout", msg: " two  spaces "},
		{name: "tag with more fields", in: "2026-01-02T15:04:05.123456789Z stdout P:x:y more\n", stream: "stdout", partial: true, msg: "more"},
		{name: "unknown tag is full", in: "2026-01-02T15:04:05.123456789Z stdout X text\n", stream: "stdout", msg: "text"},
		{name: "offset time", in: "2026-01-02T16:04:05.123456789+01:00 stdout F tz\n", stream: "stdout", msg: "tz"},
		{name: "no spaces", in: "garbage\n", error: "no timestamp"},
		{name: "bad time", in: "yesterday stdout F x\n", error: `timestamp "yesterday"`},
		{name: "bad stream", in: "2026-01-02T15:04:05.123456789Z stdin F x\n", error: `stream "stdin"`},
		{name: "no stream end", in: "2026-01-02T15:04:05.123456789Z stdout", error: "no stream"},
		{name: "no tag end", in: "2026-01-02T15:04:05.123456789Z stdout F", error: "no tag"},
		{name: "empty", in: "", error: "no timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ParseLine([]byte(tc.in))
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("ParseLine(%q) = %v, %v; want an error saying %q", tc.in, l, err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLine(%q): %v", tc.in, err)
			}
			if !l.Time.Equal(ts) || l.Stream != tc.stream || l.Partial != tc.partial || string(l.Message) != tc.msg {
				t.Fatalf("ParseLine(%q) = {%v %s %v %q}, want {%v %s %v %q}", tc.in, l.Time, l.Stream, l.Partial, l.Message, ts, tc.stream, tc.partial, tc.msg)
			}
		})
	}
}

// FuzzParseLine: any input parses or fails cleanly, and what parses comes
// back the same when written in the CRI format again.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"2026-01-02T15:04:05.123456789Z stdout F hello world\n",
		"2026-01-02T15:04:05Z stderr P part",
		"2026-01-02T15:04:05.1+02:00 stdout P:x: a b c\n",
		"x y z w", "", " ", "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLine(b)
		if err != nil {
			return
		}
		if l.Stream != "stdout" && l.Stream != "stderr" {
			t.Fatalf("stream %q accepted", l.Stream)
		}
		if bytes.Contains(l.Message, []byte{'\n'}) && !bytes.Contains(bytes.TrimSuffix(b, []byte{'\n'}), l.Message) {
			t.Fatalf("message %q is not from the input", l.Message)
		}
		tag := "F"
		if l.Partial {
			tag = "P"
		}
		// With its newline, as in a file: the one ParseLine strips.
		again := l.Time.Format(time.RFC3339Nano) + " " + l.Stream + " " + tag + " " + string(l.Message) + "\n"
		l2, err := ParseLine([]byte(again))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", again, err)
		}
		if !l2.Time.Equal(l.Time) || l2.Stream != l.Stream || l2.Partial != l.Partial || !bytes.Equal(l2.Message, l.Message) {
			t.Fatalf("round trip of %q changed it: %+v vs %+v", b, l, l2)
		}
	})
}
