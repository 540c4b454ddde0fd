package schedule

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"time"
)

const (
	minYear = 1970
	maxYear = 2199
)

// dayRule says how a cron picks the days of a month: by day-of-month or by day-of-week, and
// with which of AWS's wildcards.
type dayRule int

const (
	domSet            dayRule = iota // days of the month in cron.days
	domLast                          // L: the last day of the month
	domLastWeekday                   // LW: the last weekday of the month
	domNearestWeekday                // nW: the weekday nearest day n
	dowSet                           // days of the week in cron.days, bit 1 = Sunday
	dowLast                          // nL: the last weekday n of the month
	dowNth                           // n#k: the kth weekday n of the month
)

// cron is a parsed cron(...) expression. Sets are bit masks indexed by value (years by
// value-1970), so that finding the next allowed value is a shift and a count of zeros.
type cron struct {
	minutes, hours, months uint64
	years                  [4]uint64
	rule                   dayRule
	days                   uint64 // domSet, dowSet
	n, k                   int    // domNearestWeekday: n; dowLast: n; dowNth: n#k
}

// field describes one of the six cron fields.
type field struct {
	name    string
	lo, hi  int
	base    int      // value stored at bit 0 of the field's set
	names   []string // names of lo, lo+1, ...
	maxStep int      // largest increment: AWS refuses */60 in minutes
	wraps   bool     // whether a backwards range wraps around
	noStep  bool     // whether increments are refused
}

var (
	minutesField = field{name: "minutes", lo: 0, hi: 59, maxStep: 59, wraps: true}
	hoursField   = field{name: "hours", lo: 0, hi: 23, maxStep: 23, wraps: true}
	domField     = field{name: "day-of-month", lo: 1, hi: 31, maxStep: 31, wraps: true}
	monthField   = field{name: "month", lo: 1, hi: 12, maxStep: 12, wraps: true,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	dowField = field{name: "day-of-week", lo: 1, hi: 7, maxStep: 7, wraps: true, noStep: true,
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
	yearField = field{name: "year", lo: minYear, hi: maxYear, base: minYear, maxStep: maxYear - minYear}
)

func (f field) errorf(text, format string, args ...any) error {
	return fmt.Errorf("%s %q: %s", f.name, text, fmt.Sprintf(format, args...))
}

func parseCron(body string) (*cron, error) {
	f := strings.Fields(body)
	if len(f) != 6 {
		return nil, fmt.Errorf("cron takes 6 fields (Minutes Hours Day-of-month Month Day-of-week Year), not %d", len(f))
	}
	var c cron
	var set [4]uint64
	var err error
	if set, err = minutesField.parse(f[0]); err != nil {
		return nil, err
	}
	c.minutes = set[0]
	if set, err = hoursField.parse(f[1]); err != nil {
		return nil, err
	}
	c.hours = set[0]
	switch dom, dow := f[2], f[4]; {
	case dom == "?" && dow == "?":
		return nil, errors.New(`day-of-month and day-of-week are both "?": one of them must name the days`)
	case dom != "?" && dow != "?":
		return nil, errors.New(`one of day-of-month and day-of-week must be "?"`)
	case dow == "?":
		err = c.parseDayOfMonth(dom)
	default:
		err = c.parseDayOfWeek(dow)
	}
	if err != nil {
		return nil, err
	}
	if set, err = monthField.parse(f[3]); err != nil {
		return nil, err
	}
	c.months = set[0]
	if c.years, err = yearField.parse(f[5]); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *cron) parseDayOfMonth(text string) error {
	f, s := domField, strings.ToUpper(text)
	switch {
	case s == "L":
		c.rule = domLast
	case s == "LW":
		c.rule = domLastWeekday
	case strings.HasSuffix(s, "W"):
		n, ok := number(s[:len(s)-1])
		if !ok {
			return f.errorf(text, "W follows a single day of the month, like 15W")
		}
		if n < f.lo || n > f.hi {
			return f.errorf(text, "%d is out of range %d-%d", n, f.lo, f.hi)
		}
		c.rule, c.n = domNearestWeekday, n
	case strings.Contains(s, "W"):
		return f.errorf(text, "W follows a single day of the month, like 15W")
	case strings.Contains(s, "L"):
		return f.errorf(text, "L stands alone (the last day of the month) or as LW")
	default:
		set, err := f.parse(text)
		if err != nil {
			return err
		}
		c.rule, c.days = domSet, set[0]
	}
	return nil
}

func (c *cron) parseDayOfWeek(text string) error {
	f, s := dowField, strings.ToUpper(text)
	switch {
	case strings.Contains(s, "#"):
		day, nth, _ := strings.Cut(s, "#")
		if strings.ContainsAny(day, ",-/*?L#") || strings.ContainsAny(nth, ",-/*?L#") {
			return f.errorf(text, "# takes a single day of the week and n, like 3#2 or TUE#2")
		}
		n, err := f.value(text, day)
		if err != nil {
			return err
		}
		k, ok := number(nth)
		if !ok || k < 1 || k > 5 {
			return f.errorf(text, "n in #n must be from 1 to 5")
		}
		c.rule, c.n, c.k = dowNth, n, k
	case s == "L":
		c.rule, c.days = dowSet, 1<<7 // the last day of the week: Saturday
	case strings.HasSuffix(s, "L"):
		day := s[:len(s)-1]
		if strings.ContainsAny(day, ",-/*?L") {
			return f.errorf(text, "L follows a single day of the week, like 6L or FRIL")
		}
		n, err := f.value(text, day)
		if err != nil {
			return err
		}
		c.rule, c.n = dowLast, n
	case strings.Contains(s, "L"):
		return f.errorf(text, "L stands alone (Saturday) or follows a single day of the week, like 6L")
	default:
		set, err := f.parse(text)
		if err != nil {
			return err
		}
		c.rule, c.days = dowSet, set[0]
	}
	return nil
}

// parse parses a list of values, ranges and increments: "*", "5", "1-5", "0/15", "*/5",
// "5-40/5", "MON-FRI", "22-2", "JAN,JUL".
func (f field) parse(text string) (set [4]uint64, err error) {
	switch {
	case strings.Contains(text, "?"):
		return set, f.errorf(text, `"?" stands alone, in day-of-month or day-of-week`)
	case strings.Contains(text, "#"):
		return set, f.errorf(text, `"#" is allowed only in day-of-week`)
	}
	for _, item := range strings.Split(text, ",") {
		if item == "" {
			return set, f.errorf(text, "empty item in the list")
		}
		base, stepText, stepped := strings.Cut(item, "/")
		step := 1
		if stepped {
			if f.noStep {
				return set, f.errorf(text, "increments (/) are not allowed in %s", f.name)
			}
			n, ok := number(stepText)
			if !ok {
				return set, f.errorf(text, "increment %q is not a number", stepText)
			}
			if n < 1 || n > f.maxStep {
				return set, f.errorf(text, "increment %s is out of range 1-%d", stepText, f.maxStep)
			}
			step = n
		}
		lo, hi := f.lo, f.hi
		if base != "*" {
			from, to, ranged := strings.Cut(base, "-")
			if lo, err = f.value(text, from); err != nil {
				return set, err
			}
			switch {
			case ranged:
				if hi, err = f.value(text, to); err != nil {
					return set, err
				}
			case !stepped:
				hi = lo
			}
		}
		if hi < lo && !f.wraps {
			return set, f.errorf(text, "range %d-%d runs backwards", lo, hi)
		}
		// A backwards range wraps past the field's end: 22-2 is 22,23,0,1,2.
		size := f.hi - f.lo + 1
		span := (hi - lo + size) % size
		for o := 0; o <= span; o += step {
			v := f.lo + (lo-f.lo+o)%size - f.base
			set[v/64] |= 1 << (v % 64)
		}
	}
	return set, nil
}

// value parses one number or name of the field; text is the whole field, for the message.
func (f field) value(text, s string) (int, error) {
	if s == "" {
		return 0, f.errorf(text, "missing value")
	}
	if n, ok := number(s); ok {
		if n < f.lo || n > f.hi {
			return 0, f.errorf(text, "%s is out of range %d-%d", s, f.lo, f.hi)
		}
		return n, nil
	}
	u := strings.ToUpper(s)
	for i, name := range f.names {
		if u == name {
			return f.lo + i, nil
		}
	}
	if f.names != nil {
		return 0, f.errorf(text, "%q is not a number or a name %s-%s", s, f.names[0], f.names[len(f.names)-1])
	}
	return 0, f.errorf(text, "%q is not a number", s)
}

// wall is a minute of a wall clock, in no particular zone. Its fields may run one past their
// range (minute 60, day 32) while the search carries into the next field.
type wall struct{ year, month, day, hour, minute int }

func (w wall) plusMinute() wall {
	w.minute++
	if w.minute == 60 {
		w.minute, w.hour = 0, w.hour+1
	}
	if w.hour == 24 {
		w.hour, w.day = 0, w.day+1
	}
	if w.day > daysIn(w.year, w.month) {
		w.day, w.month = 1, w.month+1
	}
	if w.month == 13 {
		w.month, w.year = 1, w.year+1
	}
	return w
}

// shows reports whether t, in its location, reads w on the wall clock.
func (w wall) shows(t time.Time) bool {
	y, mo, d := t.Date()
	h, mi, _ := t.Clock()
	return w == wall{y, int(mo), d, h, mi}
}

func (c *cron) next(t time.Time, loc *time.Location) time.Time {
	lt := t.In(loc)
	y, mo, d := lt.Date()
	h, mi, _ := lt.Clock()
	if y > maxYear {
		return time.Time{}
	}
	// The minute t falls in began at or before t, so the search starts at the one after.
	w := wall{y, int(mo), d, h, mi}.plusMinute()
	for {
		var ok bool
		if w, ok = c.nextWall(w); !ok {
			return time.Time{}
		}
		// Wall-clock times map to instants in the same order (taking the first of a repeated
		// time), so the first wall-clock match that happens after t is the answer. A match can
		// fail to: it falls in a spring-forward gap, or t is in the second pass of an autumn
		// hour and the match's first occurrence is already past.
		if r, ok := resolve(w, loc); ok && r.After(t) {
			return r
		}
		w = w.plusMinute()
	}
}

// nextWall returns the first wall-clock minute at or after w that the cron matches.
func (c *cron) nextWall(w wall) (wall, bool) {
	y, mo, d, h, mi := w.year, w.month, w.day, w.hour, w.minute
	maskYear, maskMonth, mask := 0, 0, uint64(0)
	for {
		ny, ok := c.nextYear(y)
		if !ok {
			return wall{}, false
		}
		if ny != y {
			y, mo, d, h, mi = ny, 1, 1, 0, 0
		}
		nmo, ok := nextBit(c.months, mo)
		if !ok {
			y, mo, d, h, mi = y+1, 1, 1, 0, 0
			continue
		}
		if nmo != mo {
			mo, d, h, mi = nmo, 1, 0, 0
		}
		if y != maskYear || mo != maskMonth {
			maskYear, maskMonth, mask = y, mo, c.dayMask(y, mo)
		}
		nd, ok := nextBit(mask, d)
		if !ok {
			mo, d, h, mi = mo+1, 1, 0, 0
			if mo > 12 {
				y, mo = y+1, 1
			}
			continue
		}
		if nd != d {
			d, h, mi = nd, 0, 0
		}
		nh, ok := nextBit(c.hours, h)
		if !ok {
			d, h, mi = d+1, 0, 0
			continue
		}
		if nh != h {
			h, mi = nh, 0
		}
		nmi, ok := nextBit(c.minutes, mi)
		if !ok {
			h, mi = h+1, 0
			continue
		}
		return wall{y, mo, d, h, nmi}, true
	}
}

// nextYear returns the first year at or after y that the cron allows.
func (c *cron) nextYear(y int) (int, bool) {
	i := max(y-minYear, 0)
	for ; i < 4*64; i = (i/64 + 1) * 64 {
		if m := c.years[i/64] >> (i % 64); m != 0 {
			return minYear + i + bits.TrailingZeros64(m), true
		}
	}
	return 0, false
}

// nextBit returns the smallest set bit of m at or above v.
func nextBit(m uint64, v int) (int, bool) {
	if v > 63 {
		return 0, false
	}
	if m >>= max(v, 0); m == 0 {
		return 0, false
	}
	return max(v, 0) + bits.TrailingZeros64(m), true
}

// dayMask returns the days of month mo of year y that the cron runs on, as bits 1-31.
func (c *cron) dayMask(y, mo int) uint64 {
	dim := daysIn(y, mo)
	switch c.rule {
	case domSet:
		return c.days & (1<<(dim+1) - 2)
	case domLast:
		return 1 << dim
	case domLastWeekday:
		d := dim
		switch weekday(y, mo, dim) {
		case time.Saturday:
			d = dim - 1
		case time.Sunday:
			d = dim - 2
		}
		return 1 << d
	case domNearestWeekday:
		return nearestWeekday(y, mo, c.n, dim)
	}
	first := int(weekday(y, mo, 1)) // 0 = Sunday
	// firstOf is the first day of the month that falls on weekday n (1 = Sunday).
	firstOf := func(n int) int { return 1 + (n-1-first+7)%7 }
	switch c.rule {
	case dowLast:
		d := firstOf(c.n)
		return 1 << (d + (dim-d)/7*7)
	case dowNth:
		if d := firstOf(c.n) + 7*(c.k-1); d <= dim {
			return 1 << d
		}
		return 0
	}
	var m uint64
	for n := 1; n <= 7; n++ {
		if c.days&(1<<n) != 0 {
			for d := firstOf(n); d <= dim; d += 7 {
				m |= 1 << d
			}
		}
	}
	return m
}

// nearestWeekday returns, as a day mask, the weekday nearest day n of the month without
// leaving the month, or no day if the month is shorter than n days.
func nearestWeekday(y, mo, n, dim int) uint64 {
	if n > dim {
		return 0
	}
	d := n
	switch weekday(y, mo, n) {
	case time.Saturday:
		if d = n - 1; n == 1 {
			d = 3
		}
	case time.Sunday:
		if d = n + 1; n == dim {
			d = n - 2
		}
	}
	return 1 << d
}

func weekday(y, mo, d int) time.Weekday {
	return time.Date(y, time.Month(mo), d, 12, 0, 0, 0, time.UTC).Weekday()
}

func daysIn(y, mo int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// resolve returns the first instant at which a clock in loc reads w, or false if none does
// (w falls in a spring-forward gap).
func resolve(w wall, loc *time.Location) (time.Time, bool) {
	t := time.Date(w.year, time.Month(w.month), w.day, w.hour, w.minute, 0, 0, loc)
	if loc == time.UTC {
		return t, true
	}
	if !w.shows(t) {
		return time.Time{}, false // time.Date moved it out of the gap
	}
	// time.Date picks either instant of a repeated time (which depends on the zone's side of
	// UTC); step back while the zone period before t's also shows w.
	for {
		start, _ := t.ZoneBounds()
		if start.IsZero() {
			return t, true
		}
		_, off := t.Zone()
		_, prevOff := start.Add(-time.Second).Zone()
		if prevOff <= off {
			return t, true
		}
		e := t.Add(-time.Duration(prevOff-off) * time.Second)
		if !e.Before(start) || !w.shows(e) {
			return t, true
		}
		t = e
	}
}

// minInterval returns the shortest wall-clock gap between consecutive runs. Every day the cron
// runs on has the same times of day, so the gap is either between two times of one day or,
// across days, from the last time of a day to the first of the next day it runs on.
func (c *cron) minInterval() time.Duration {
	var times []int // minutes since midnight, ascending
	for h := 0; h < 24; h++ {
		for m := 0; m < 60; m++ {
			if c.hours&(1<<h) != 0 && c.minutes&(1<<m) != 0 {
				times = append(times, h*60+m)
			}
		}
	}
	best := math.MaxInt
	for i := 1; i < len(times); i++ {
		best = min(best, times[i]-times[i-1])
	}
	days := c.closestDays()
	switch days {
	case 0:
		return time.Duration(math.MaxInt64) // never runs
	case -1: // runs on a single day
	default:
		best = min(best, days*24*60-(times[len(times)-1]-times[0]))
	}
	if best == math.MaxInt {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(best) * time.Minute
}

// closestDays returns the fewest days between two consecutive days the cron runs on, -1 if it
// runs on one day only and 0 if on none.
func (c *cron) closestDays() int {
	best, prev, seen := math.MaxInt, 0, false
	for y := minYear; y <= maxYear; y++ {
		if c.years[(y-minYear)/64]&(1<<((y-minYear)%64)) == 0 {
			continue
		}
		for mo := 1; mo <= 12; mo++ {
			if c.months&(1<<mo) == 0 {
				continue
			}
			m := c.dayMask(y, mo)
			if m == 0 {
				continue
			}
			// Days since the Unix epoch, counted from the day before the 1st.
			base := int(time.Date(y, time.Month(mo), 0, 0, 0, 0, 0, time.UTC).Unix() / 86400)
			for ; m != 0; m &= m - 1 {
				day := base + bits.TrailingZeros64(m)
				if seen {
					if best = min(best, day-prev); best == 1 {
						return 1
					}
				}
				prev, seen = day, true
			}
		}
	}
	switch {
	case !seen:
		return 0
	case best == math.MaxInt:
		return -1
	}
	return best
}
