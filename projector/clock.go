package projector

import (
	"github.com/ledgerlet/ledgerlet/eventlog"
	pb "github.com/ledgerlet/ledgerlet/eventlog/eventpb"
)

// Clock is the log's steady time line: the time every deadline (back-off,
// retries, the leftover recheck) is kept and compared in.
//
// Records carry the wall clock as read, which steps: after a clock stepped
// back 8 h, "now < NextStart" against wall times would hold a restart back
// for 8 h. Steady time starts at the first event's wall time and then only
// advances, by the durations between events: measured with CLOCK_BOOTTIME
// (the event's Boottime) between events of one boot, and only where that is
// not possible (another boot, or a log that carries no boottime) by the
// difference of their wall times, never less than zero. So a deadline set
// d ahead falls due after at most d of real time in the same boot, and after
// at most d of the next boot's time whatever the wall clock did.
//
// Folding is pure: the boot an event belongs to is the boot id of the run's
// AgentStarted, and every input is in the events.
type Clock struct {
	Steady   int64  `json:"steady"`             // steady time of event Seq (ns)
	Boottime int64  `json:"boottime,omitempty"` // its CLOCK_BOOTTIME reading (0: none)
	Boot     string `json:"boot,omitempty"`     // boot id of the run that recorded it
}

// advance is the steady time of a reading (wall, boottime) taken in boot,
// after the state's last event.
func (s *State) advance(wall, boottime int64, boot string) int64 {
	if s.Seq == 0 && s.Clock.Steady == 0 {
		return wall // the first event starts the time line at its wall time
	}
	return s.Clock.Next(s.Time, wall, boottime, boot)
}

// Next is the steady time of a reading (wall, boottime, boot) taken after
// the event c is the clock of, which was stamped lastWall: the rule of the
// time line, for whoever walks a log without folding it (retention).
func (c Clock) Next(lastWall, wall, boottime int64, boot string) int64 {
	d := wall - lastWall
	if boottime != 0 && c.Boottime != 0 && boot == c.Boot {
		d = boottime - c.Boottime
	}
	return c.Steady + max(d, 0)
}

// tick moves the clock to event e and returns its steady time.
func (s *State) tick(e eventlog.Event) int64 {
	boot := s.Clock.Boot
	if d, ok := e.Data.(*pb.AgentStarted); ok {
		boot = d.BootId
	}
	steady := s.advance(e.Time.UnixNano(), e.Boottime, boot)
	s.Clock = Clock{Steady: steady, Boottime: e.Boottime, Boot: boot}
	return steady
}

// SteadyAt is the steady time of a clock reading taken after the state's
// last event by the run that recorded it: what the planner is given as now.
// boottime is CLOCK_BOOTTIME (eventlog.Boottime), 0 when not read (replay,
// views): the wall time then stands in, never moving steady time back.
func (s *State) SteadyAt(wall, boottime int64) int64 {
	return s.advance(wall, boottime, s.Clock.Boot)
}

// WallOf shows a steady time (a deadline) on the wall clock of the state's
// last event: for display only, never to compare with a clock reading.
func (s *State) WallOf(steady int64) int64 {
	return s.Time + (steady - s.Clock.Steady)
}
