package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Stored event values.
//
// A value in the events bucket is
//
//	0x01 | uvarint(pod id, 0 = no pod) | uvarint(time_unix_nano) | hexpack(Encode(event without pod and time))
//
// rather than Encode(event) itself. The log is dominated by small records
// that repeat a long pod key and carry 64-character hex container and
// sandbox IDs; storing the pod as its id (from the pods bucket) and packing
// lowercase hex runs two characters per byte cuts a typical record by ~40%.
// The inner bytes are still the canonical Record encoding, so the event
// vocabulary stays defined by events.proto alone.
//
// or, since the boottime is recorded (formatCompactBoottime),
//
//	0x02 | uvarint(pod id) | uvarint(time_unix_nano) | uvarint(boottime ns) | hexpack(...)
//
// A value whose first byte is neither is a plain Encode(event) (its first
// byte is a protobuf tag, never 0x01 or 0x02), which decodeValue also reads.
const (
	formatCompact         = 0x01
	formatCompactBoottime = 0x02
)

// hexpack format: esc 0 is a literal esc byte; esc n (1..255) is followed by
// n bytes holding 2n lowercase hex digits, high nibble first.
const (
	hexEsc    = 0xFF
	minHexRun = 8 // shorter runs gain nothing after the 2-byte escape
	maxHexRun = 255 * 2
)

func isLowerHex(c byte) bool { return c-'0' <= 9 || c-'a' <= 5 }

func hexNibble(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

const hexDigits = "0123456789abcdef"

// hexpack appends the packed form of src to dst.
func hexpack(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c == hexEsc {
			dst = append(dst, hexEsc, 0)
			i++
			continue
		}
		if !isLowerHex(c) {
			dst = append(dst, c)
			i++
			continue
		}
		j := i + 1
		for j < len(src) && j-i < maxHexRun && isLowerHex(src[j]) {
			j++
		}
		n := (j - i) &^ 1
		if n < minHexRun {
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		dst = append(dst, hexEsc, byte(n/2))
		for k := i; k < i+n; k += 2 {
			dst = append(dst, hexNibble(src[k])<<4|hexNibble(src[k+1]))
		}
		i += n // an odd trailing digit is handled as a literal next round
	}
	return dst
}

var errHexpack = errors.New("corrupt packed record")

// hexunpack appends the unpacked form of src to dst.
func hexunpack(dst, src []byte) ([]byte, error) {
	for i := 0; i < len(src); {
		c := src[i]
		if c != hexEsc {
			// Copy the literal run up to the next escape in one go.
			j := i + 1
			for j < len(src) && src[j] != hexEsc {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(src) {
			return dst, errHexpack
		}
		n := int(src[i+1])
		i += 2
		if n == 0 {
			dst = append(dst, hexEsc)
			continue
		}
		if i+n > len(src) {
			return dst, errHexpack
		}
		for _, b := range src[i : i+n] {
			dst = append(dst, hexDigits[b>>4], hexDigits[b&0xF])
		}
		i += n
	}
	return dst, nil
}

// encodeValue builds the stored value of an event from its packed record.
func encodeValue(dst []byte, podID uint32, t, boottime int64, packed []byte) []byte {
	dst = append(dst, formatCompactBoottime)
	dst = binary.AppendUvarint(dst, uint64(podID))
	dst = binary.AppendUvarint(dst, uint64(t))
	dst = binary.AppendUvarint(dst, uint64(boottime))
	return append(dst, packed...)
}

// podNames resolves pod ids to keys.
type podNames func(id uint32) (string, bool)

// decodeValue decodes a stored value; scratch is reused between calls
// (Decode copies everything it keeps).
func decodeValue(seq uint64, v []byte, names podNames, scratch *[]byte) (Event, error) {
	if len(v) == 0 || (v[0] != formatCompact && v[0] != formatCompactBoottime) {
		return Decode(seq, v)
	}
	withBoottime := v[0] == formatCompactBoottime
	podID, n := binary.Uvarint(v[1:])
	if n <= 0 || podID > 1<<32-1 {
		return Event{}, fmt.Errorf("decode event %d: bad pod id", seq)
	}
	v = v[1+n:]
	t, n := binary.Uvarint(v)
	if n <= 0 {
		return Event{}, fmt.Errorf("decode event %d: bad time", seq)
	}
	v = v[n:]
	var boottime uint64
	if withBoottime {
		if boottime, n = binary.Uvarint(v); n <= 0 {
			return Event{}, fmt.Errorf("decode event %d: bad boottime", seq)
		}
		v = v[n:]
	}
	var err error
	if *scratch, err = hexunpack((*scratch)[:0], v); err != nil {
		return Event{}, fmt.Errorf("decode event %d: %w", seq, err)
	}
	e, err := Decode(seq, *scratch)
	if err != nil {
		return Event{}, err
	}
	// The writer keeps a compact record's pod in its header only. A pod
	// name inside is corruption, and taking it would make this read
	// disagree with valueHeader, which the indexes are built from.
	if e.Pod != "" {
		return Event{}, fmt.Errorf("decode event %d: compact record names pod %q inside its payload", seq, e.Pod)
	}
	e.Time = time.Unix(0, int64(t)).UTC()
	e.Boottime = int64(boottime)
	if podID != 0 {
		name, ok := names(uint32(podID))
		if !ok {
			return Event{}, fmt.Errorf("decode event %d: unknown pod id %d", seq, podID)
		}
		e.Pod = name
	}
	return e, nil
}
