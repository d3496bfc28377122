package projector

import "github.com/ledgerlet/ledgerlet/eventlog"

// ApplyKnown folds e and says whether its type has a fold arm.
func ApplyKnown(s *State, e eventlog.Event) bool { return s.apply(e) }
