package projector_test

import (
	"bytes"
	"testing"

	"github.com/ledgerlet/ledgerlet/projector"
	"github.com/ledgerlet/ledgerlet/projector/projectortest"
)

// FuzzRestore: snapshot bytes from a damaged or foreign file decode to a
// state or an error, never a panic; a decoded state re-encodes stably and
// folds further events without panicking.
func FuzzRestore(f *testing.F) {
	s := projector.New()
	for _, e := range projectortest.New(3, 4).Events(200) {
		s.Apply(e)
	}
	good, _ := s.Canonical()
	f.Add(good)
	f.Add([]byte(`{"version":1,"state":{}}`))
	f.Add([]byte(`{"version":1,"state":{"pods":{"a/b":null}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := projector.Restore(b)
		if err != nil {
			return
		}
		once, err := st.Canonical()
		if err != nil {
			return
		}
		again, err := projector.Restore(once)
		if err != nil {
			t.Fatalf("re-decode of a canonical encoding failed: %v", err)
		}
		twice, _ := again.Canonical()
		if !bytes.Equal(once, twice) {
			t.Fatal("canonical encoding is not stable")
		}
		for _, e := range projectortest.New(5, 3).Events(50) {
			st.Apply(e)
		}
		_ = st.Views()
	})
}
