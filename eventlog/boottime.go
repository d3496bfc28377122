package eventlog

import "golang.org/x/sys/unix"

// Boottime reads CLOCK_BOOTTIME in ns: monotonic, counting suspend, never
// stepped by settimeofday or NTP. It is what events carry beside the wall
// time so that durations between them hold across clock steps. 0 when the
// clock cannot be read.
func Boottime() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
