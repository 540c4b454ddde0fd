package schedule

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, on machines without a zoneinfo database
)

// This file checks Next against a reference written separately and plainly: the fuzzer's
// bytes pick a cron expression and, alongside it, what each field means (worked out here, not
// by the package's parser); the reference then steps minute by minute and asks of each minute
// whether it matches.

// refCron is a generated cron expression and its meaning.
type refCron struct {
	expr    string
	minutes [60]bool
	hours   [24]bool
	months  [13]bool
	years   [maxYear - minYear + 1]bool

	byWeek bool   // day-of-week names the days; otherwise day-of-month does
	dayArg string // "", "L", "LW", "W" (day-of-month); "", "L", "#" (day-of-week)
	days   [32]bool
	n, k   int
}

// source hands out the fuzzer's bytes as small numbers; once they run out it answers 0.
type source struct {
	b []byte
	i int
}

func (s *source) intn(n int) int {
	if s.i >= len(s.b) {
		return 0
	}
	s.i++
	return int(s.b[s.i-1]) % n
}

var (
	refMonthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	refDayNames   = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
)

// genValue renders v as a number or, sometimes, as a name in a random case.
func genValue(s *source, v, lo int, names []string) string {
	if names == nil || s.intn(2) == 0 {
		return fmt.Sprint(v)
	}
	name := names[v-lo]
	switch s.intn(3) {
	case 0:
		return strings.ToUpper(name)
	case 1:
		return strings.ToUpper(name[:1]) + name[1:]
	}
	return name
}

// genList renders a list of 1-3 items — *, values, ranges (which may run backwards and wrap),
// increments — and marks in set (indexed by value-lo) the values it means.
func genList(s *source, lo, hi int, names []string, steps bool, set []bool) string {
	size := hi - lo + 1
	var items []string
	for range 1 + s.intn(3) {
		a, b := lo+s.intn(size), lo+s.intn(size)
		step, item := 1, ""
		kind := s.intn(5)
		if !steps && kind >= 3 {
			kind -= 2
		}
		switch kind {
		case 0:
			a, b, item = lo, hi, "*"
		case 1:
			b, item = a, genValue(s, a, lo, names)
		case 2:
			item = genValue(s, a, lo, names) + "-" + genValue(s, b, lo, names)
		case 3:
			step = min(1+s.intn(size), hi) // Parse takes increments up to hi
			if s.intn(2) == 0 {
				a, b, item = lo, hi, fmt.Sprintf("*/%d", step)
			} else {
				b, item = hi, fmt.Sprintf("%s/%d", genValue(s, a, lo, names), step)
			}
		case 4:
			step = min(1+s.intn(size), hi)
			item = fmt.Sprintf("%s-%s/%d", genValue(s, a, lo, names), genValue(s, b, lo, names), step)
		}
		// Walk from a to b, wrapping past hi, and keep every step-th value.
		for i, v := 0, a; ; i++ {
			if i%step == 0 {
				set[v-lo] = true
			}
			if v == b {
				break
			}
			if v++; v > hi {
				v = lo
			}
		}
		items = append(items, item)
	}
	return strings.Join(items, ",")
}

// genYears renders the year field: half the time *, otherwise years near y, which may have
// ended.
func genYears(s *source, y int, set []bool) string {
	clamp := func(v int) int { return min(max(v, minYear), maxYear) }
	a := clamp(y - 1 + s.intn(4))
	b := clamp(a + s.intn(3))
	var text string
	step := 1
	switch s.intn(6) {
	case 0:
		b, text = a, fmt.Sprint(a)
	case 1:
		text = fmt.Sprintf("%d-%d", a, b)
	case 2:
		step = 1 + s.intn(3)
		b, text = maxYear, fmt.Sprintf("%d/%d", a, step)
	default:
		a, b, text = minYear, maxYear, "*"
	}
	for v := a; v <= b; v += step {
		set[v-minYear] = true
	}
	return text
}

// genCron builds a valid cron expression and its meaning; y is the year it will be asked
// about, and hour, unless -1, the only hour it runs in.
func genCron(s *source, y, hour int) *refCron {
	r := &refCron{}
	f := make([]string, 6)
	f[0] = genList(s, 0, 59, nil, true, r.minutes[:])
	if hour >= 0 {
		f[1], r.hours[hour] = fmt.Sprint(hour), true
	} else {
		f[1] = genList(s, 0, 23, nil, true, r.hours[:])
	}
	f[3] = genList(s, 1, 12, refMonthNames, true, r.months[1:])
	f[5] = genYears(s, y, r.years[:])
	if r.byWeek = s.intn(2) == 0; r.byWeek {
		f[2] = "?"
		switch s.intn(5) {
		case 0:
			r.dayArg, f[4] = "L", "L" // Saturday
		case 1:
			r.n = 1 + s.intn(7)
			r.dayArg, f[4] = "L", genValue(s, r.n, 1, refDayNames)+"L"
		case 2:
			r.n, r.k = 1+s.intn(7), 1+s.intn(5)
			r.dayArg, f[4] = "#", fmt.Sprintf("%s#%d", genValue(s, r.n, 1, refDayNames), r.k)
		default:
			f[4] = genList(s, 1, 7, refDayNames, false, r.days[1:8])
		}
	} else {
		f[4] = "?"
		switch s.intn(6) {
		case 0:
			r.dayArg, f[2] = "L", "L"
		case 1:
			r.dayArg, f[2] = "LW", "LW"
		case 2:
			r.n = 1 + s.intn(31)
			r.dayArg, f[2] = "W", fmt.Sprintf("%dW", r.n)
		default:
			f[2] = genList(s, 1, 31, nil, true, r.days[1:])
		}
	}
	if s.intn(4) == 0 {
		f[2], f[4] = strings.ToLower(f[2]), strings.ToLower(f[4])
	}
	r.expr = "cron(" + strings.Join(f, " ") + ")"
	return r
}

func isWeekday(t time.Time) bool { return t.Weekday() != time.Saturday && t.Weekday() != time.Sunday }

// matchesDay says whether the cron runs on the day of l, asking the calendar plainly.
func (r *refCron) matchesDay(l time.Time) bool {
	y, mo, d := l.Date()
	day := func(d int) time.Time { return time.Date(y, mo, d, 12, 0, 0, 0, time.UTC) }
	dim := time.Date(y, mo+1, 0, 0, 0, 0, 0, time.UTC).Day()
	wd := int(l.Weekday()) + 1 // 1 = Sunday
	switch {
	case r.byWeek && r.dayArg == "L":
		if r.n == 0 {
			return wd == 7
		}
		return wd == r.n && d+7 > dim
	case r.byWeek && r.dayArg == "#":
		return wd == r.n && (d+6)/7 == r.k
	case r.byWeek:
		return r.days[wd]
	case r.dayArg == "L":
		return d == dim
	case r.dayArg == "LW":
		last := dim
		for !isWeekday(day(last)) {
			last--
		}
		return d == last
	case r.dayArg == "W":
		if r.n > dim {
			return false
		}
		best := 0 // the weekday of the month closest to n
		for e := 1; e <= dim; e++ {
			if isWeekday(day(e)) && (best == 0 || abs(e-r.n) < abs(best-r.n)) {
				best = e
			}
		}
		return d == best
	}
	return r.days[d]
}

func abs(x int) int { return max(x, -x) }

// refNext steps minute by minute up to t+limit and returns the first minute after t at which
// a clock in loc reads, for the first time, a time the cron matches. It starts a day early to
// know which wall-clock times the clock has read already (in an autumn repeated hour). It
// counts in Unix seconds and asks about a day once, so that two years of minutes take
// milliseconds.
func refNext(r *refCron, t time.Time, loc *time.Location, limit time.Duration) (time.Time, bool) {
	mod := func(x, n int64) int64 { return (x%n + n) % n }
	end := t.Unix() + int64(limit/time.Second)
	var zoneStart, zoneEnd, offset int64 = 1, 0, 0 // the zone period holding i, and its offset
	high := int64(math.MinInt64)                   // the latest wall-clock time read, in seconds
	lastDay, dayOK := int64(math.MinInt64), false  // whether the cron runs on wall-clock day lastDay
	for i := t.Unix() - mod(t.Unix(), 60) - 26*3600; i <= end; i += 60 {
		if i < zoneStart || i >= zoneEnd {
			at := time.Unix(i, 0).In(loc)
			_, off := at.Zone()
			from, to := at.ZoneBounds()
			offset, zoneStart, zoneEnd = int64(off), math.MinInt64, math.MaxInt64
			if !from.IsZero() {
				zoneStart = from.Unix()
			}
			if !to.IsZero() {
				zoneEnd = to.Unix()
			}
		}
		local := i + offset
		if local <= high {
			continue // read before
		}
		high = local
		if !r.minutes[mod(local/60, 60)] || !r.hours[mod(local/3600, 24)] {
			continue
		}
		if day := (local - mod(local, 86400)) / 86400; day != lastDay {
			l := time.Unix(local, 0).UTC() // reads, in UTC, what a clock in loc reads at i
			y, mo, _ := l.Date()
			lastDay = day
			dayOK = y >= minYear && y <= maxYear && r.years[y-minYear] && r.months[mo] && r.matchesDay(l)
		}
		if dayOK && time.Unix(i, 0).After(t) {
			return time.Unix(i, 0), true
		}
	}
	return time.Time{}, false
}

var fuzzZones = []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"}

// genCase turns fuzz bytes into an expression, a time and a zone.
func genCase(t testing.TB, data []byte) (*refCron, time.Time, *time.Location) {
	s := &source{b: data}
	loc, err := time.LoadLocation(fuzzZones[s.intn(len(fuzzZones))])
	if err != nil {
		t.Fatal(err)
	}
	var sec [8]byte
	for i := range sec {
		sec[i] = byte(s.intn(256))
	}
	first := time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	last := time.Date(maxYear+1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	at := time.Unix(first+int64(binary.LittleEndian.Uint64(sec[:])%uint64(last-first)), 0)
	if s.intn(3) != 0 {
		at = time.Date(2020+s.intn(10), 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s.intn(256)) * 36 * time.Hour)
	}
	focus := -1
	if s.intn(2) == 0 {
		// Near the zone's next transition, where daylight saving time bites; often with the
		// cron running only in an hour the transition skips or repeats.
		if _, end := at.In(loc).ZoneBounds(); !end.IsZero() {
			at = end.Add(time.Duration(s.intn(240)-120) * time.Minute)
			before := end.Add(-time.Minute).In(loc).Hour()
			focus = []int{-1, before, (before + 1) % 24, end.In(loc).Hour()}[s.intn(4)]
		}
	}
	at = at.Add(time.Duration(s.intn(4)*15) * time.Second)
	return genCron(s, at.In(loc).Year(), focus), at, loc
}

// checkNext compares Next with the reference, which looks up to limit ahead.
func checkNext(t *testing.T, r *refCron, at time.Time, loc *time.Location, limit time.Duration) {
	s, err := Parse(r.expr)
	if err != nil {
		t.Fatalf("Parse(%q): %v", r.expr, err)
	}
	got := s.Next(at, loc)
	look := limit
	if !got.IsZero() && got.Sub(at) < limit {
		look = got.Sub(at) + time.Minute // the reference need not look past Next's answer
	}
	want, found := refNext(r, at, loc, look)
	switch {
	case found && !got.Equal(want):
		t.Fatalf("%s in %s after %s: Next = %s, reference = %s", r.expr, loc, at.In(loc), fmtTime(got), want.In(loc))
	case !found && !got.IsZero() && got.Sub(at) <= limit:
		t.Fatalf("%s in %s after %s: Next = %s, reference finds nothing", r.expr, loc, at.In(loc), fmtTime(got))
	case !got.IsZero() && got.Location() != loc:
		t.Fatalf("%s: Next returned a time in %s, not %s", r.expr, got.Location(), loc)
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero (no run)"
	}
	return t.String()
}

const refLimit = 2 * 366 * 24 * time.Hour

func FuzzNext(f *testing.F) {
	for _, seed := range []string{
		"", "\x01\x00\x00\x00", "\x02\x05\x10\x20\x30\x40\x50\x60\x70\x80",
		"\x01\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\x00\x00\x03\x02\x01",
		"\x03\x11\x22\x33\x44\x55\x66\x77\x88\x00\x01\x01\x02\x03\x04\x05\x06\x07",
		"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x01\x00\x00\x02\x03",
		"\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x02\x07\x03\x02\x00\x00\x04\x00\x00\x00\x02\x04",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, at, loc := genCase(t, data)
		checkNext(t, r, at, loc, refLimit)
	})
}

// TestNextAgainstReference runs the comparison FuzzNext makes on cases from a fixed seed, so
// that plain go test covers many more shapes than the fuzz seeds.
func TestNextAgainstReference(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		data := make([]byte, 64)
		for j := range data {
			data[j] = byte(rng.IntN(256))
		}
		r, at, loc := genCase(t, data)
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkNext(t, r, at, loc, refLimit) })
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"cron(0 5 ? * * *)", "cron(0/15 * * * ? *)", "cron(0 8 15W * ? *)", "cron(0 8 ? * 6#3 *)",
		"cron(0 8 ? * 6L 2024-2030)", "cron(0 22-2 ? * FRI-MON *)", "cron(0 8 LW * ? *)",
		"rate(1 hour)", "rate(12 hours)", "rate(7 days)", "cron(*/60 * * * ? *)", "cron(0 5 1#2 * ? *)",
		"cron(0 5 ? * 3#1,6#3 *)", "rate(2 hour)", "cron(99999999999 * * * ? *)", "cron(0 0 ? * L *)",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse(expr)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) = %v, not an ErrInvalid", expr, err)
			}
			return
		}
		if s.String() != strings.TrimSpace(expr) {
			t.Fatalf("String() = %q, want %q", s.String(), strings.TrimSpace(expr))
		}
		at := time.Date(2024, 11, 3, 5, 30, 0, 0, time.UTC)
		ny, err := time.LoadLocation("America/New_York")
		if err != nil {
			t.Fatal(err)
		}
		if n := s.Next(at, ny); !n.IsZero() && !n.After(at) {
			t.Fatalf("%s: Next(%s) = %s, not after", expr, at, n)
		}
		s.MinInterval()
		s.Anchor(at).Between(at, at.Add(48*time.Hour), nil, 5)
	})
}
