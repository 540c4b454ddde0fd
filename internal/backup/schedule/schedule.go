// Package schedule parses the schedule expressions of AWS Backup plans — cron(...) with AWS's
// six fields and rate(...) — and computes their run times in a time zone.
//
// The package has no clock of its own: every question takes the time it is asked about, so the
// scheduler that owns the clock (and its tests) decide what "now" is.
//
// Where AWS's documentation is silent, these are the choices made:
//
//   - Cron runs fall on whole minutes of the wall clock in the plan's time zone. A wall-clock
//     time that a spring-forward transition skips does not run that day; a wall-clock time that
//     an autumn transition repeats runs once, at its first occurrence. (EventBridge Scheduler
//     does the same.) Rates ignore the time zone: rate(1 day) is 24 hours, every time.
//   - A range that runs backwards wraps around, as in Quartz, the scheduler AWS's cron format
//     comes from: FRI-MON in day-of-week is FRI,SAT,SUN,MON and 22-2 in hours is 22,23,0,1,2.
//     Only the year refuses a backwards range.
//   - nW names the weekday nearest day n without leaving the month (1W on a Saturday is Monday
//     the 3rd); in a month shorter than n days it names no day, as a plain n would.
//   - L alone in day-of-week is Saturday, the last day of the week; nL is the last such weekday
//     of the month. L, LW, nW, nL and n#k each stand alone in their field, never in a list.
//   - Increments (/) are refused in day-of-week and L-n offsets in day-of-month: AWS's table of
//     wildcards lists neither.
//   - Month and day names, L, W and # are case-insensitive; the cron( and rate( prefixes and
//     the rate units are lower case, as AWS writes them.
//   - A rate runs every N units from an anchor: by default the Unix epoch in UTC, so that every
//     Bulwark region agrees on the run times of a plan without storing anything. AWS anchors a
//     rate at the time the rule is created; [Schedule.Anchor] gives that behaviour to a caller
//     that keeps the creation time.
package schedule

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is the kind of every error Parse returns.
var ErrInvalid = errors.New("invalid schedule expression")

// Schedule is a parsed cron(...) or rate(...) expression. It is immutable (Anchor returns a
// copy) and safe for concurrent use.
type Schedule struct {
	expr string
	cron *cron // nil for rate()

	every    time.Duration // rate(): the interval, a whole number of minutes
	anchor   time.Time     // rate(): runs fall at anchor + k·every, k ≥ 1
	anchored bool          // false: the anchor is the Unix epoch
}

// unixEpoch anchors rates whose creation time the caller did not give.
var unixEpoch = time.Unix(0, 0).UTC()

// Parse parses "cron(Minutes Hours Day-of-month Month Day-of-week Year)" or
// "rate(Value Unit)". Errors wrap ErrInvalid with a message saying what is wrong
// (AWS Backup answers InvalidParameterValueException with it).
func Parse(expr string) (*Schedule, error) {
	s := strings.TrimSpace(expr)
	var err error
	switch {
	case strings.HasPrefix(s, "cron(") && strings.HasSuffix(s, ")"):
		var c *cron
		if c, err = parseCron(s[len("cron(") : len(s)-1]); err == nil {
			return &Schedule{expr: s, cron: c}, nil
		}
	case strings.HasPrefix(s, "rate(") && strings.HasSuffix(s, ")"):
		var every time.Duration
		if every, err = parseRate(s[len("rate(") : len(s)-1]); err == nil {
			return &Schedule{expr: s, every: every}, nil
		}
	default:
		err = errors.New("want cron(Minutes Hours Day-of-month Month Day-of-week Year) or rate(Value Unit)")
	}
	return nil, fmt.Errorf("%w %q: %v", ErrInvalid, s, err)
}

// String returns the expression as given, trimmed.
func (s *Schedule) String() string { return s.expr }

// Anchor returns a copy of a rate schedule whose runs fall at t + k·interval for k ≥ 1, which
// is how AWS counts a rate from the time the rule was created. Cron schedules have no anchor:
// the copy runs as the original does.
func (s *Schedule) Anchor(t time.Time) *Schedule {
	c := *s
	c.anchor, c.anchored = t, true
	return &c
}

// Next returns the first run time strictly after t, evaluated in loc (the plan's
// ScheduleExpressionTimezone; nil means UTC), or the zero time when there is none
// (a year range that has ended). The time returned is in loc.
func (s *Schedule) Next(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	if s.cron != nil {
		return s.cron.next(t, loc)
	}
	r := s.nextRate(t)
	if r.IsZero() {
		return r
	}
	return r.In(loc)
}

// Between lists the run times in (from, to], at most max of them — for catching up
// runs missed while a region was down.
func (s *Schedule) Between(from, to time.Time, loc *time.Location, max int) []time.Time {
	var out []time.Time
	for t := from; len(out) < max; {
		t = s.Next(t, loc)
		if t.IsZero() || t.After(to) {
			break
		}
		out = append(out, t)
	}
	return out
}

// MinInterval returns the shortest time between two consecutive runs, so that a caller can
// refuse a backup rule that runs more often than AWS Backup allows (once an hour). For a rate
// it is the rate. For a cron it is measured on the wall clock over every year the expression
// allows; in a zone with daylight saving time one gap a year can be shorter by the size of the
// shift (cron(0 1,3 * * ? *) in New York runs 1:00 EST and 3:00 EDT, an hour apart, on the
// spring-forward day). A cron that never runs twice returns the largest Duration.
func (s *Schedule) MinInterval() time.Duration {
	if s.cron != nil {
		return s.cron.minInterval()
	}
	return s.every
}

// rateUnits maps each unit rate() accepts to its length and whether it is the plural.
var rateUnits = map[string]struct {
	d      time.Duration
	plural bool
}{
	"minute": {time.Minute, false}, "minutes": {time.Minute, true},
	"hour": {time.Hour, false}, "hours": {time.Hour, true},
	"day": {24 * time.Hour, false}, "days": {24 * time.Hour, true},
}

func parseRate(body string) (time.Duration, error) {
	f := strings.Fields(body)
	if len(f) != 2 {
		return 0, errors.New("want rate(Value Unit), like rate(12 hours)")
	}
	n, ok := number(f[0])
	if !ok || n < 1 {
		return 0, fmt.Errorf("rate value %q is not a positive integer", f[0])
	}
	unit, ok := rateUnits[f[1]]
	if !ok {
		return 0, fmt.Errorf("rate unit %q is not one of minute(s), hour(s), day(s)", f[1])
	}
	singular := strings.TrimSuffix(f[1], "s")
	switch {
	case n == 1 && unit.plural:
		return 0, fmt.Errorf("a rate of 1 takes the singular unit: rate(1 %s)", singular)
	case n != 1 && !unit.plural:
		return 0, fmt.Errorf("a rate of %d takes the plural unit: rate(%d %ss)", n, n, singular)
	case int64(n) > math.MaxInt64/int64(unit.d):
		return 0, fmt.Errorf("rate value %s is too large", f[0])
	}
	return time.Duration(n) * unit.d, nil
}

// maxRateSeconds bounds the times nextRate computes with, far beyond any real date, so that
// its arithmetic in seconds cannot overflow.
const maxRateSeconds = 1 << 60

func (s *Schedule) nextRate(t time.Time) time.Time {
	a := unixEpoch
	if s.anchored {
		a = s.anchor
	}
	ts, as := t.Unix(), a.Unix()
	if ts > maxRateSeconds || ts < -maxRateSeconds || as > maxRateSeconds || as < -maxRateSeconds {
		return time.Time{}
	}
	// Runs fall at a + k·p seconds (keeping a's nanoseconds). The first one after t has the
	// smallest k with k·p > ts-as: fractions of a second cannot change that, since p is whole.
	p := int64(s.every / time.Second)
	if p <= 0 {
		return time.Time{} // a zero Schedule, not one from Parse
	}
	k := int64(1)
	if d := ts - as; d >= 0 {
		k = d/p + 1
	}
	return time.Unix(as+k*p, int64(a.Nanosecond()))
}

// number parses a run of ASCII digits. A number of more than nine digits is reported as
// 999999999, out of every range, rather than overflowing.
func number(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	switch s = strings.TrimLeft(s, "0"); {
	case s == "":
		return 0, true
	case len(s) > 9:
		return 999999999, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
