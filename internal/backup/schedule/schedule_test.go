package schedule

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, expr string) *Schedule {
	t.Helper()
	s, err := Parse(expr)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	return s
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// runs returns the next n run times after from, as RFC 3339 in loc; "none" for a zero time.
func runs(s *Schedule, from time.Time, loc *time.Location, n int) []string {
	var out []string
	for range n {
		from = s.Next(from, loc)
		if from.IsZero() {
			return append(out, "none")
		}
		out = append(out, from.Format(time.RFC3339))
	}
	return out
}

func TestParseValid(t *testing.T) {
	for _, expr := range []string{
		"cron(0 5 ? * * *)",
		"cron(0 2 * * ? *)",
		"cron(15 * ? * * *)",
		"cron(0 12 * * ? *)",
		"cron(0 12 ? * MON-FRI *)",
		"cron(0 8 L * ? *)",
		"cron(0 8 LW * ? *)",
		"cron(0 8 15W * ? *)",
		"cron(0 8 ? * 6#3 *)",
		"cron(0 8 ? * FRI#3 *)",
		"cron(0 8 ? * 6L *)",
		"cron(0 8 ? * FRIL *)",
		"cron(0 8 ? * L *)",
		"cron(0/15 * * * ? *)",
		"cron(*/5 * * * ? *)",
		"cron(5-40/5 * * * ? *)",
		"cron(1/10 * * * ? *)",
		"cron(0 22-2 * * ? *)",
		"cron(0 12 ? * FRI-MON *)",
		"cron(0 0 1 JAN,JUL ? *)",
		"cron(0 0 1 jan-mar/2 ? *)",
		"cron(0 12 ? * mon-fri *)",
		"cron(0 8 lw * ? *)",
		"cron(0 8 15w * ? *)",
		"cron(0 8 ? * fri#2 *)",
		"cron(0 8 ? * 6l *)",
		"cron(0 0 1 1 ? 2024-2030)",
		"cron(0 0 1 1 ? 2000/10)",
		"cron(0 0 1 1 ? 1970,2199)",
		"cron(0 0 28-3 * ? *)",
		"cron(0 0 30 2 ? *)", // never runs, but is well formed
		"cron(0  5\t?  * * *)",
		"cron( 0 5 ? * * * )",
		"  cron(0 5 ? * * *)\n",
		"cron(00 05 ? * * *)",
		"rate(1 minute)",
		"rate(30 minutes)",
		"rate(1 hour)",
		"rate(12 hours)",
		"rate(1 day)",
		"rate(7 days)",
		"rate( 2  hours )",
	} {
		s, err := Parse(expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
			continue
		}
		if s.String() != strings.TrimSpace(expr) {
			t.Errorf("Parse(%q).String() = %q", expr, s.String())
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct{ expr, msg string }{
		{"", "want cron("},
		{"0 5 ? * * *", "want cron("},
		{"CRON(0 5 ? * * *)", "want cron("},
		{"cron(0 5 ? * * *", "want cron("},
		{"cron(0 5 ? * *)", "6 fields"},
		{"cron(0 5 ? * * * *)", "6 fields (Minutes Hours Day-of-month Month Day-of-week Year), not 7"},
		{"cron()", "not 0"},
		{"cron(60 5 ? * * *)", `minutes "60": 60 is out of range 0-59`},
		{"cron(0 24 ? * * *)", `hours "24": 24 is out of range 0-23`},
		{"cron(0 5 0 * ? *)", `day-of-month "0": 0 is out of range 1-31`},
		{"cron(0 5 32 * ? *)", "32 is out of range 1-31"},
		{"cron(0 5 ? 13 * *)", `month "13": 13 is out of range 1-12`},
		{"cron(0 5 ? 0 * *)", "0 is out of range 1-12"},
		{"cron(0 5 ? FOO * *)", `"FOO" is not a number or a name JAN-DEC`},
		{"cron(0 5 ? * 0 *)", `day-of-week "0": 0 is out of range 1-7`},
		{"cron(0 5 ? * 8 *)", "8 is out of range 1-7"},
		{"cron(0 5 ? * FUN *)", `"FUN" is not a number or a name SUN-SAT`},
		{"cron(0 5 ? * * 1969)", `year "1969": 1969 is out of range 1970-2199`},
		{"cron(0 5 ? * * 2200)", "2200 is out of range 1970-2199"},
		{"cron(0 5 ? * * 99999999999)", "99999999999 is out of range"},
		{"cron(0 5 ? * * 2030-2025)", "range 2030-2025 runs backwards"},
		{"cron(0 5 * * * *)", `one of day-of-month and day-of-week must be "?"`},
		{"cron(0 5 1 * MON *)", `one of day-of-month and day-of-week must be "?"`},
		{"cron(0 5 ? * ? *)", `both "?"`},
		{"cron(? 5 1 * ? *)", `minutes "?": "?" stands alone, in day-of-month or day-of-week`},
		{"cron(0 5 ? ? * *)", `month "?"`},
		{"cron(0 5 1,? * ? *)", `"?" stands alone`},
		{"cron(0 5 ? * ?,MON *)", `day-of-week "?,MON": "?" stands alone`},
		{"cron(0 5 1-15W * ? *)", "W follows a single day of the month, like 15W"},
		{"cron(0 5 1,15W * ? *)", "W follows a single day"},
		{"cron(0 5 15W,20 * ? *)", "W follows a single day"},
		{"cron(0 5 W * ? *)", "W follows a single day"},
		{"cron(0 5 */2W * ? *)", "W follows a single day"},
		{"cron(0 5 32W * ? *)", "32 is out of range 1-31"},
		{"cron(0 5 0W * ? *)", "0 is out of range 1-31"},
		{"cron(0 5 L-2 * ? *)", "L stands alone (the last day of the month) or as LW"},
		{"cron(0 5 1,L * ? *)", "L stands alone"},
		{"cron(0 5 ? * 5L,6 *)", "L stands alone (Saturday) or follows a single day of the week"},
		{"cron(0 5 ? * 1-5L *)", "L follows a single day of the week"},
		{"cron(0 5 ? * XL *)", `"X" is not a number or a name`},
		{"cron(0 5 1#2 * ? *)", `day-of-month "1#2": "#" is allowed only in day-of-week`},
		{"cron(0 5#1 ? * * *)", `"#" is allowed only in day-of-week`},
		{"cron(0 5 ? * 3#6 *)", "n in #n must be from 1 to 5"},
		{"cron(0 5 ? * 3#0 *)", "n in #n must be from 1 to 5"},
		{"cron(0 5 ? * 3# *)", "n in #n must be from 1 to 5"},
		{"cron(0 5 ? * 8#1 *)", "8 is out of range 1-7"},
		{"cron(0 5 ? * 3#1,6#3 *)", "# takes a single day of the week and n"},
		{"cron(0 5 ? * 2-3#1 *)", "# takes a single day of the week and n"},
		{"cron(*/60 * * * ? *)", "increment 60 is out of range 1-59"},
		{"cron(0/0 * * * ? *)", "increment 0 is out of range 1-59"},
		{"cron(0/x * * * ? *)", `increment "x" is not a number`},
		{"cron(0/ * * * ? *)", `increment "" is not a number`},
		{"cron(0 */24 * * ? *)", "increment 24 is out of range 1-23"},
		{"cron(0 5 ? * 1/2 *)", "increments (/) are not allowed in day-of-week"},
		{"cron(0,,5 5 ? * * *)", "empty item in the list"},
		{"cron(0, 5 ? * * *)", "empty item in the list"},
		{"cron(0- 5 ? * * *)", "missing value"},
		{"cron(-5 5 ? * * *)", "missing value"},
		{"cron(/5 5 ? * * *)", "missing value"},
		{"cron(1-2-3 5 ? * * *)", `"2-3" is not a number`},
		{"cron(a 5 ? * * *)", `"a" is not a number`},
		{"cron(0 5 ? * JAN *)", `"JAN" is not a number or a name SUN-SAT`},
		{"cron(0 5 ? MON * *)", `"MON" is not a number or a name JAN-DEC`},
		{"cron(0 5 ? * * */0)", "increment 0 is out of range"},
		{"cron(+1 5 ? * * *)", `"+1" is not a number`},
		{"rate()", "want rate(Value Unit)"},
		{"rate(hours)", "want rate(Value Unit)"},
		{"rate(1 2 hours)", "want rate(Value Unit)"},
		{"rate(1 hours)", "a rate of 1 takes the singular unit: rate(1 hour)"},
		{"rate(2 hour)", "a rate of 2 takes the plural unit: rate(2 hours)"},
		{"rate(1 days)", "rate(1 day)"},
		{"rate(5 minute)", "rate(5 minutes)"},
		{"rate(0 hours)", `rate value "0" is not a positive integer`},
		{"rate(-1 hours)", "not a positive integer"},
		{"rate(1.5 hours)", "not a positive integer"},
		{"rate(1 week)", `rate unit "week" is not one of minute(s), hour(s), day(s)`},
		{"rate(1 Hour)", "rate unit"},
		{"rate(99999999999 minutes)", "rate value 99999999999 is too large"},
		{"rate(1 hour", "want cron("},
	} {
		_, err := Parse(tc.expr)
		switch {
		case err == nil:
			t.Errorf("Parse(%q) succeeded", tc.expr)
		case !errors.Is(err, ErrInvalid):
			t.Errorf("Parse(%q) = %v, not an ErrInvalid", tc.expr, err)
		case !strings.Contains(err.Error(), tc.msg):
			t.Errorf("Parse(%q) = %q, want it to say %q", tc.expr, err, tc.msg)
		case !strings.HasPrefix(err.Error(), `invalid schedule expression "`+strings.TrimSpace(tc.expr)+`": `):
			t.Errorf("Parse(%q) = %q, want it to quote the expression", tc.expr, err)
		}
	}
}

func TestNext(t *testing.T) {
	// 2024-01-10 is a Wednesday; 2024 is a leap year.
	for _, tc := range []struct {
		name, expr, from string
		want             []string
	}{
		{"AWS Backup default", "cron(0 5 ? * * *)", "2024-01-10T10:07:00Z",
			[]string{"2024-01-11T05:00:00Z", "2024-01-12T05:00:00Z"}},
		{"daily at 2", "cron(0 2 * * ? *)", "2024-01-10T10:07:00Z",
			[]string{"2024-01-11T02:00:00Z", "2024-01-12T02:00:00Z"}},
		{"daily at 2, just before", "cron(0 2 * * ? *)", "2024-01-10T01:59:59Z",
			[]string{"2024-01-10T02:00:00Z"}},
		{"strictly after", "cron(0 2 * * ? *)", "2024-01-10T02:00:00Z",
			[]string{"2024-01-11T02:00:00Z"}},
		{"within the minute", "cron(0 2 * * ? *)", "2024-01-10T02:00:00.5Z",
			[]string{"2024-01-11T02:00:00Z"}},
		{"hourly at 15", "cron(15 * ? * * *)", "2024-01-10T10:07:00Z",
			[]string{"2024-01-10T10:15:00Z", "2024-01-10T11:15:00Z"}},
		{"weekdays", "cron(0 12 ? * MON-FRI *)", "2024-01-12T12:00:00Z",
			[]string{"2024-01-15T12:00:00Z", "2024-01-16T12:00:00Z"}},
		{"last day of month", "cron(0 8 L * ? *)", "2024-01-31T08:00:00Z",
			[]string{"2024-02-29T08:00:00Z", "2024-03-31T08:00:00Z", "2024-04-30T08:00:00Z"}},
		{"nearest weekday to the 15th", "cron(0 8 15W * ? *)", "2024-06-01T00:00:00Z",
			// June 15 is a Saturday, July 15 a Monday, September 15 a Sunday.
			[]string{"2024-06-14T08:00:00Z", "2024-07-15T08:00:00Z", "2024-08-15T08:00:00Z", "2024-09-16T08:00:00Z"}},
		{"1W stays in the month", "cron(0 8 1W * ? *)", "2024-05-31T00:00:00Z",
			[]string{"2024-06-03T08:00:00Z"}}, // June 1 is a Saturday
		{"31W stays in the month", "cron(0 8 31W * ? *)", "2024-03-01T00:00:00Z",
			// March 31 is a Sunday; April has no 31st; May 31 is a Friday.
			[]string{"2024-03-29T08:00:00Z", "2024-05-31T08:00:00Z"}},
		{"last weekday", "cron(0 8 LW * ? *)", "2024-03-01T00:00:00Z",
			[]string{"2024-03-29T08:00:00Z", "2024-04-30T08:00:00Z"}},
		{"third Friday", "cron(0 8 ? * 6#3 *)", "2024-01-01T00:00:00Z",
			[]string{"2024-01-19T08:00:00Z", "2024-02-16T08:00:00Z"}},
		{"second Tuesday", "cron(0 9 ? * 3#2 *)", "2024-01-01T00:00:00Z",
			[]string{"2024-01-09T09:00:00Z", "2024-02-13T09:00:00Z"}},
		{"fifth Tuesday", "cron(0 9 ? * TUE#5 *)", "2024-01-01T00:00:00Z",
			[]string{"2024-01-30T09:00:00Z", "2024-04-30T09:00:00Z"}},
		{"last Friday", "cron(0 8 ? * 6L *)", "2024-01-01T00:00:00Z",
			[]string{"2024-01-26T08:00:00Z", "2024-02-23T08:00:00Z", "2024-03-29T08:00:00Z"}},
		{"L alone in day-of-week is Saturday", "cron(0 0 ? * L *)", "2024-01-10T00:00:00Z",
			[]string{"2024-01-13T00:00:00Z", "2024-01-20T00:00:00Z"}},
		{"every 15 minutes", "cron(0/15 * * * ? *)", "2024-01-10T10:07:00Z",
			[]string{"2024-01-10T10:15:00Z", "2024-01-10T10:30:00Z", "2024-01-10T10:45:00Z", "2024-01-10T11:00:00Z"}},
		{"*/20", "cron(*/20 * * * ? *)", "2024-01-10T10:07:00Z",
			[]string{"2024-01-10T10:20:00Z", "2024-01-10T10:40:00Z", "2024-01-10T11:00:00Z"}},
		{"1/10", "cron(1/10 * * * ? *)", "2024-01-10T10:07:00Z",
			[]string{"2024-01-10T10:11:00Z", "2024-01-10T10:21:00Z"}},
		{"5-40/5", "cron(5-40/5 * * * ? *)", "2024-01-10T10:37:00Z",
			[]string{"2024-01-10T10:40:00Z", "2024-01-10T11:05:00Z"}},
		{"hours wrap past midnight", "cron(0 22-2 * * ? *)", "2024-01-10T03:00:00Z",
			[]string{"2024-01-10T22:00:00Z", "2024-01-10T23:00:00Z", "2024-01-11T00:00:00Z", "2024-01-11T01:00:00Z", "2024-01-11T02:00:00Z", "2024-01-11T22:00:00Z"}},
		{"wrapping range with increment", "cron(0 22-4/3 * * ? *)", "2024-01-10T03:00:00Z",
			[]string{"2024-01-10T04:00:00Z", "2024-01-10T22:00:00Z", "2024-01-11T01:00:00Z", "2024-01-11T04:00:00Z"}},
		{"days of the week wrap", "cron(0 12 ? * FRI-MON *)", "2024-01-10T00:00:00Z",
			[]string{"2024-01-12T12:00:00Z", "2024-01-13T12:00:00Z", "2024-01-14T12:00:00Z", "2024-01-15T12:00:00Z", "2024-01-19T12:00:00Z"}},
		{"days of the month wrap", "cron(0 0 30-2 * ? *)", "2024-02-01T12:00:00Z",
			[]string{"2024-02-02T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", "2024-03-30T00:00:00Z", "2024-03-31T00:00:00Z"}},
		{"names in any case", "cron(0 0 ? jan,Jul mon#1 *)", "2023-12-01T00:00:00Z",
			[]string{"2024-01-01T00:00:00Z", "2024-07-01T00:00:00Z", "2025-01-06T00:00:00Z"}},
		{"months by three", "cron(0 0 1 */3 ? *)", "2024-01-10T00:00:00Z",
			[]string{"2024-04-01T00:00:00Z", "2024-07-01T00:00:00Z", "2024-10-01T00:00:00Z", "2025-01-01T00:00:00Z"}},
		{"leap day", "cron(0 0 29 2 ? *)", "2024-03-01T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z"}},
		{"never", "cron(0 0 30 2 ? *)", "2024-01-01T00:00:00Z",
			[]string{"none"}},
		{"year range ends", "cron(0 0 1 1 ? 2024-2025)", "2023-06-01T00:00:00Z",
			[]string{"2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "none"}},
		{"year range ended", "cron(0 5 ? * * 2020-2023)", "2024-01-01T00:00:00Z",
			[]string{"none"}},
		{"year range not begun", "cron(0 12 25 12 ? 2030)", "2024-01-01T00:00:00Z",
			[]string{"2030-12-25T12:00:00Z", "none"}},
		{"years by ten", "cron(0 0 1 1 ? 2000/10)", "2011-01-01T00:00:00Z",
			[]string{"2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"}},
		{"last year", "cron(59 23 31 12 ? *)", "2199-12-31T23:58:00Z",
			[]string{"2199-12-31T23:59:00Z", "none"}},
		{"after the last year", "cron(0 5 ? * * *)", "2200-01-01T00:00:00Z",
			[]string{"none"}},
		{"before 1970", "cron(0 5 ? * * *)", "1960-06-01T00:00:00Z",
			[]string{"1970-01-01T05:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.expr)
			got := runs(s, mustTime(t, tc.from), nil, len(tc.want))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("%s after %s:\n got %v\nwant %v", tc.expr, tc.from, got, tc.want)
			}
		})
	}
}

// TestNextDaylightSaving checks the two transitions of New York in 2024 (spring forward at
// 2:00 EST on March 10, fall back at 2:00 EDT on November 3) and one of Berlin, east of UTC,
// where time.Date picks the second of a repeated time.
func TestNextDaylightSaving(t *testing.T) {
	ny, berlin := mustZone(t, "America/New_York"), mustZone(t, "Europe/Berlin")
	for _, tc := range []struct {
		name, expr string
		loc        *time.Location
		from       string
		want       []string
	}{
		{"skipped time does not run that day", "cron(30 2 * * ? *)", ny, "2024-03-09T12:00:00-05:00",
			[]string{"2024-03-11T02:30:00-04:00", "2024-03-12T02:30:00-04:00"}},
		{"hourly across spring forward", "cron(0 * * * ? *)", ny, "2024-03-10T00:30:00-05:00",
			[]string{"2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"}},
		{"an hour apart on the wall clock and in fact", "cron(0 1,3 * * ? *)", ny, "2024-03-10T00:00:00-05:00",
			[]string{"2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"}}, // as MinInterval's doc says
		{"local time kept after spring forward", "cron(0 5 ? * * *)", ny, "2024-03-09T06:00:00-05:00",
			[]string{"2024-03-10T05:00:00-04:00", "2024-03-11T05:00:00-04:00"}},
		{"repeated time runs once", "cron(30 1 * * ? *)", ny, "2024-11-02T12:00:00-04:00",
			[]string{"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},
		{"second pass of the repeated hour", "cron(30 1 * * ? *)", ny, "2024-11-03T01:10:00-05:00",
			[]string{"2024-11-04T01:30:00-05:00"}},
		{"every 30 minutes across fall back", "cron(0/30 * * * ? *)", ny, "2024-11-03T00:45:00-04:00",
			[]string{"2024-11-03T01:00:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-03T02:00:00-05:00", "2024-11-03T02:30:00-05:00"}},
		{"from inside the second pass", "cron(0/30 * * * ? *)", ny, "2024-11-03T01:00:00-05:00",
			[]string{"2024-11-03T02:00:00-05:00"}},
		{"local time kept after fall back", "cron(0 5 ? * * *)", ny, "2024-11-02T06:00:00-04:00",
			[]string{"2024-11-03T05:00:00-05:00", "2024-11-04T05:00:00-05:00"}},
		{"weekday schedule across fall back", "cron(0 12 ? * MON-FRI *)", ny, "2024-11-01T13:00:00-04:00",
			[]string{"2024-11-04T12:00:00-05:00"}},
		{"east of UTC: first occurrence", "cron(30 2 * * ? *)", berlin, "2024-10-26T12:00:00+02:00",
			[]string{"2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"}},
		{"east of UTC: skipped time", "cron(30 2 * * ? *)", berlin, "2024-03-30T12:00:00+01:00",
			[]string{"2024-04-01T02:30:00+02:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.expr)
			got := runs(s, mustTime(t, tc.from), tc.loc, len(tc.want))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("%s in %s after %s:\n got %v\nwant %v", tc.expr, tc.loc, tc.from, got, tc.want)
			}
		})
	}
}

func TestNextReturnsTimeInLocation(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	from := mustTime(t, "2024-01-10T10:07:00Z")
	for _, expr := range []string{"cron(0 5 ? * * *)", "rate(1 hour)"} {
		s := mustParse(t, expr)
		if got := s.Next(from, ny); got.Location() != ny {
			t.Errorf("%s: Next in %s", expr, got.Location())
		}
		if got := s.Next(from, nil); got.Location() != time.UTC {
			t.Errorf("%s: Next with a nil location in %s", expr, got.Location())
		}
	}
	// The zone changes which instant a cron names.
	s := mustParse(t, "cron(0 5 ? * * *)")
	if got := s.Next(from, ny); !got.Equal(mustTime(t, "2024-01-11T10:00:00Z")) {
		t.Errorf("05:00 in New York = %s, want 10:00 UTC", got.UTC())
	}
}

func TestBetween(t *testing.T) {
	s := mustParse(t, "cron(0 5 ? * * *)")
	from, to := mustTime(t, "2024-01-01T00:00:00Z"), mustTime(t, "2024-01-05T05:00:00Z")
	format := func(ts []time.Time) string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Format("01-02T15:04"))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		max      int
		want     string
	}{
		{"to is included", from, to, 10, "01-01T05:00 01-02T05:00 01-03T05:00 01-04T05:00 01-05T05:00"},
		{"from is excluded", from.Add(5 * time.Hour), to, 10, "01-02T05:00 01-03T05:00 01-04T05:00 01-05T05:00"},
		{"at most max", from, to, 3, "01-01T05:00 01-02T05:00 01-03T05:00"},
		{"max 0", from, to, 0, ""},
		{"empty window", to, to, 10, ""},
		{"backwards window", to, from, 10, ""},
	} {
		if got := format(s.Between(tc.from, tc.to, nil, tc.max)); got != tc.want {
			t.Errorf("%s: Between = %q, want %q", tc.name, got, tc.want)
		}
	}
	// Runs end with the year range; Between stops there rather than searching on.
	ended := mustParse(t, "cron(0 0 1 * ? 2024)")
	if got := ended.Between(from, mustTime(t, "2030-01-01T00:00:00Z"), nil, 100); len(got) != 11 {
		t.Errorf("Between over an ended year range = %d runs, want 11 (Feb-Dec 2024)", len(got))
	}
	// Catching up in a zone with daylight saving time: the skipped 02:30 is not owed.
	ny := mustZone(t, "America/New_York")
	got := mustParse(t, "cron(30 2 * * ? *)").Between(mustTime(t, "2024-03-08T12:00:00-05:00"), mustTime(t, "2024-03-12T12:00:00-04:00"), ny, 10)
	if f := format(got); f != "03-09T02:30 03-11T02:30 03-12T02:30" {
		t.Errorf("Between across spring forward = %q", f)
	}
}

func TestRate(t *testing.T) {
	from := mustTime(t, "2024-01-10T10:07:00Z") // a Wednesday
	for _, tc := range []struct {
		expr string
		want []string
	}{
		// Anchored at the Unix epoch: a Thursday, at midnight UTC.
		{"rate(1 minute)", []string{"2024-01-10T10:08:00Z", "2024-01-10T10:09:00Z"}},
		{"rate(30 minutes)", []string{"2024-01-10T10:30:00Z", "2024-01-10T11:00:00Z"}},
		{"rate(1 hour)", []string{"2024-01-10T11:00:00Z", "2024-01-10T12:00:00Z"}},
		{"rate(12 hours)", []string{"2024-01-10T12:00:00Z", "2024-01-11T00:00:00Z"}},
		{"rate(1 day)", []string{"2024-01-11T00:00:00Z", "2024-01-12T00:00:00Z"}},
		{"rate(7 days)", []string{"2024-01-11T00:00:00Z", "2024-01-18T00:00:00Z"}},
	} {
		if got := runs(mustParse(t, tc.expr), from, nil, len(tc.want)); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s after %s = %v, want %v", tc.expr, from, got, tc.want)
		}
	}
}

func TestRateAnchor(t *testing.T) {
	s := mustParse(t, "rate(12 hours)")
	created := mustTime(t, "2024-01-10T09:30:15Z")
	a := s.Anchor(created)
	for _, tc := range []struct{ from, want string }{
		{"2024-01-01T00:00:00Z", "2024-01-10T21:30:15Z"}, // before the anchor: the first run
		{"2024-01-10T09:30:15Z", "2024-01-10T21:30:15Z"}, // the anchor itself does not run
		{"2024-01-10T21:30:14Z", "2024-01-10T21:30:15Z"},
		{"2024-01-10T21:30:15Z", "2024-01-11T09:30:15Z"}, // strictly after
		{"2024-01-10T21:30:15.5Z", "2024-01-11T09:30:15Z"},
		{"2025-06-01T00:00:00Z", "2025-06-01T09:30:15Z"},
	} {
		if got := a.Next(mustTime(t, tc.from), nil); !got.Equal(mustTime(t, tc.want)) {
			t.Errorf("anchored Next(%s) = %s, want %s", tc.from, got, tc.want)
		}
	}
	// The original keeps its epoch anchor.
	if got := s.Next(created, nil); !got.Equal(mustTime(t, "2024-01-10T12:00:00Z")) {
		t.Errorf("Anchor changed the original: Next = %s", got)
	}
	// Sub-second anchors keep their fraction.
	frac := s.Anchor(created.Add(250 * time.Millisecond))
	if got := frac.Next(created, nil); !got.Equal(created.Add(12*time.Hour + 250*time.Millisecond)) {
		t.Errorf("fractional anchor: Next = %s", got)
	}
	// A rate is a duration: rate(1 day) stays 24 hours across a daylight saving change.
	ny := mustZone(t, "America/New_York")
	day := mustParse(t, "rate(1 day)").Anchor(mustTime(t, "2024-03-09T12:00:00-05:00"))
	if got := day.Next(mustTime(t, "2024-03-09T12:00:00-05:00"), ny); got.Format(time.RFC3339) != "2024-03-10T13:00:00-04:00" {
		t.Errorf("rate(1 day) across spring forward = %s", got.Format(time.RFC3339))
	}
	// Anchoring a cron changes nothing.
	c := mustParse(t, "cron(0 5 ? * * *)")
	if got, want := c.Anchor(created).Next(created, nil), c.Next(created, nil); !got.Equal(want) {
		t.Errorf("anchored cron Next = %s, want %s", got, want)
	}
	// Absurd times answer no run rather than overflow.
	if got := s.Next(time.Unix(math.MaxInt64/2, 0), nil); !got.IsZero() {
		t.Errorf("Next far in the future = %s", got)
	}
	if got := s.Anchor(time.Unix(math.MinInt64/2, 0)).Next(created, nil); !got.IsZero() {
		t.Errorf("Next from an absurd anchor = %s", got)
	}
}

func TestMinInterval(t *testing.T) {
	never := time.Duration(math.MaxInt64)
	for _, tc := range []struct {
		expr string
		want time.Duration
	}{
		{"rate(30 minutes)", 30 * time.Minute},
		{"rate(1 hour)", time.Hour},
		{"rate(7 days)", 7 * 24 * time.Hour},
		{"cron(0 5 ? * * *)", 24 * time.Hour},
		{"cron(15 * ? * * *)", time.Hour},
		{"cron(0/15 * * * ? *)", 15 * time.Minute},
		{"cron(0,50 * * * ? *)", 10 * time.Minute},
		{"cron(0 12 ? * MON-FRI *)", 24 * time.Hour},
		{"cron(0 12 ? * MON,THU *)", 3 * 24 * time.Hour},
		{"cron(0 22-2 * * ? *)", time.Hour},
		{"cron(0 0,12 ? * * *)", 12 * time.Hour},
		{"cron(59 0,23 * * ? *)", time.Hour},                      // 23:59 to 00:59 the next day
		{"cron(0 0,23 ? * 1,7 *)", time.Hour},                     // Saturday 23:00 to Sunday 00:00
		{"cron(0 0,23 1,29 2,3 ? *)", time.Hour},                  // February 29 23:00 to March 1, leap years only
		{"cron(0 0,23 1,29 2,3 ? 2025-2027)", 23 * time.Hour},     // no leap year in range
		{"cron(0 8 L * ? *)", 28 * 24 * time.Hour},                // January 31 to February 28
		{"cron(0 8 ? * 6#3 *)", 28 * 24 * time.Hour},              // third Fridays, four or five weeks apart
		{"cron(0 0 1 1 ? 2030,2031)", 365 * 24 * time.Hour},       // one run a year
		{"cron(0 0,12 1 1 ? 2030)", 12 * time.Hour},               // one day only
		{"cron(0 0 1 1 ? 2030)", never},                           // one run only
		{"cron(0 0 30 2 ? *)", never},                             // no runs at all
		{"cron(0 0 31 12 ? 2030)", never},                         // one run only
		{"cron(0 0 31 DEC,JAN ? 2030-2031)", 31 * 24 * time.Hour}, // Dec 31 to Jan 31
		{"cron(0 0 1,31 DEC,JAN ? 2030-2031)", 24 * time.Hour},    // Dec 31 to Jan 1
		{"cron(30 23 31 12 ? 2030,2032)", 731 * 24 * time.Hour},   // 365 + 366 days
	} {
		if got := mustParse(t, tc.expr).MinInterval(); got != tc.want {
			t.Errorf("%s: MinInterval = %s, want %s", tc.expr, got, tc.want)
		}
	}
}

// TestMinIntervalMatchesRuns compares MinInterval with the gaps between actual runs over
// three years, for expressions whose pattern repeats within that time.
func TestMinIntervalMatchesRuns(t *testing.T) {
	from, to := mustTime(t, "2023-01-01T00:00:00Z"), mustTime(t, "2026-01-01T00:00:00Z")
	for _, expr := range []string{
		"cron(0 5 ? * * *)", "cron(0 8 L * ? *)", "cron(0 8 LW * ? *)", "cron(0 8 15W * ? *)",
		"cron(0 8 1W * ? *)", "cron(0 8 ? * 6#3 *)", "cron(0 8 ? * 6L *)", "cron(0 22-2/3 * * ? *)",
		"cron(10,50 7,8 ? * SAT,SUN *)", "cron(0 0 1-3,28-31 * ? *)", "cron(45 23 L * ? *)",
		"cron(0 0,23 ? * 1#1 *)", "cron(0 0 ? * FRI-MON *)",
	} {
		s := mustParse(t, expr)
		all := s.Between(from, to, nil, 1<<20)
		least := time.Duration(math.MaxInt64)
		for i := 1; i < len(all); i++ {
			least = min(least, all[i].Sub(all[i-1]))
		}
		if got := s.MinInterval(); got != least {
			t.Errorf("%s: MinInterval = %s, runs from 2023 to 2025 are at least %s apart", expr, got, least)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	ny := mustZone(b, "America/New_York")
	from := mustTime(b, "2024-01-10T10:07:00Z")
	for _, tc := range []struct {
		expr string
		loc  *time.Location
	}{
		{"cron(0 5 ? * * *)", time.UTC},
		{"cron(0 5 ? * * *)", ny},
		{"cron(0/15 * * * ? *)", time.UTC},
		{"cron(0 12 ? * MON-FRI *)", ny},
		{"cron(0 8 15W * ? *)", time.UTC},
		{"cron(0 8 ? * 6L *)", ny},
		{"cron(0 0 29 2 ? *)", time.UTC},
		{"cron(0 0 30 2 ? *)", time.UTC}, // never: searches every year to 2199
		{"rate(12 hours)", time.UTC},
	} {
		s := mustParse(b, tc.expr)
		b.Run(tc.expr+"/"+tc.loc.String(), func(b *testing.B) {
			for b.Loop() {
				s.Next(from, tc.loc)
			}
		})
	}
}

func BenchmarkMinInterval(b *testing.B) {
	for _, expr := range []string{"cron(0 5 ? * * *)", "cron(0 12 ? * MON,THU *)"} {
		s := mustParse(b, expr)
		b.Run(expr, func(b *testing.B) {
			for b.Loop() {
				s.MinInterval()
			}
		})
	}
}
