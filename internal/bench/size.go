package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps the accepted suffixes to multipliers. All of them are
// binary: object sizes are conventionally quoted in powers of two, and a
// load tool that read "4KB" as 4000 bytes would surprise more than it helps.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// ParseSize parses an object size such as "4KiB", "16MiB", "4k", "1m" or
// "1048576". Suffixes are case-insensitive and binary.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	end := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(t)
	}
	if end == 0 {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	mult, ok := sizeUnits[strings.TrimSpace(t[end:])]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, t[end:])
	}
	n, err := strconv.ParseInt(t[:end], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// formatSize renders n in the largest binary unit it fills, exactly when it
// is a whole multiple so that "4KiB" reads back as what was asked for.
func formatSize(n int64) string {
	units := []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if n < u.size {
			continue
		}
		if n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
		return fmt.Sprintf("%.1f%s", float64(n)/float64(u.size), u.name)
	}
	return fmt.Sprintf("%dB", n)
}
