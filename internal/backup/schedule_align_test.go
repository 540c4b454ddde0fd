package backup

import (
	"testing"
	"time"
)

func TestUntilAligned(t *testing.T) {
	m0 := time.Date(2026, 12, 3, 10, 15, 0, 0, time.UTC)
	for _, c := range []struct {
		now  time.Time
		want time.Time
	}{
		{m0.Add(12 * time.Second), m0.Add(30*time.Second + 5*time.Millisecond)},
		{m0.Add(42 * time.Second), m0.Add(time.Minute + 5*time.Millisecond)},
		{m0, m0.Add(30*time.Second + 5*time.Millisecond)},
	} {
		if got := c.now.Add(untilAligned(c.now, 30*time.Second)); !got.Equal(c.want) {
			t.Errorf("from %s: next pass at %s, want %s", c.now.Format(time.TimeOnly), got.Format(time.StampMilli), c.want.Format(time.StampMilli))
		}
	}
}
