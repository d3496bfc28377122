package sources

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"unicode/utf8"
)

// UIDAlgorithm names the algorithm that derives a pod UID when the manifest
// does not set metadata.uid. It is recorded in every ManifestAdded and
// ManifestChanged, so a future algorithm can be introduced without silently
// changing the identity of running pods (kubelet upgrades restart every
// static pod because its UID is a hash of a Go struct dump: kubernetes#67537).
//
// Algorithm "v1":
//
//	input  = the manifest as written (YAML converted to JSON; for a PodList
//	         the item), before any defaulting or identity stamping
//	c      = canonical JSON of input: objects with keys sorted by their UTF-8
//	         bytes, no insignificant whitespace, numbers exactly as in the JSON
//	         form, strings escaped only where JSON requires (", \, and control
//	         characters as \u00XX), true/false/null
//	digest = sha256("ledgerlet-uid-v1\x00" + c + "\x00host:" + node +
//	         "\x00" + source + ":" + location)
//	uid    = the first 32 lower-case hex characters of digest
//
// node is the lower-cased node name, source is "file" or "url" (the kubelet's
// prefixes) and location the absolute file path or the URL.
//
// Because the input is what the operator wrote, changes to ledgerlet's
// defaulting, to k8s.io/api types or to Go never change a UID: only an edit
// that changes the manifest's meaning does (comments, key order, whitespace
// and YAML vs JSON do not).
const UIDAlgorithm = "v1"

// uidV1 implements UIDAlgorithm "v1"; obj is the decoded JSON form
// (json.Number for numbers).
func uidV1(obj any, node, source, location string) (string, error) {
	var c bytes.Buffer
	if err := writeCanonicalJSON(&c, obj); err != nil {
		return "", err
	}
	prefix := "file"
	if source == SourceHTTP {
		prefix = "url"
	}
	h := sha256.New()
	h.Write([]byte("ledgerlet-uid-v1\x00"))
	h.Write(c.Bytes())
	h.Write([]byte("\x00host:" + node + "\x00" + prefix + ":" + location))
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// canonicalJSON returns the canonical serialization used by uidV1.
func canonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	err := writeCanonicalJSON(&b, v)
	return b.Bytes(), err
}

// writeCanonicalJSON is written out by hand, not with encoding/json, so the
// UID does not depend on the escaping or formatting choices of a library.
func writeCanonicalJSON(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		b.WriteString(v.String())
	case string:
		writeCanonicalString(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonicalJSON(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys) // Go compares strings bytewise: UTF-8 byte order
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonicalString(b, k)
			b.WriteByte(':')
			if err := writeCanonicalJSON(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("canonical json: unexpected %T", v)
	}
	return nil
}

func writeCanonicalString(b *bytes.Buffer, s string) {
	const hexDigits = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[r>>4])
			b.WriteByte(hexDigits[r&0xf])
		default:
			// Invalid UTF-8 cannot come out of a JSON decoder (it is
			// replaced by U+FFFD), so bytes are copied as they are.
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}
