package s3

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ParseURL reads a store's location written as
// s3://bucket/prefix?endpoint=URL&region=NAME&virtual_hosted=true. The
// credentials are not part of it: they come from the environment.
func ParseURL(s string) (Config, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Config{}, fmt.Errorf("parse blob location %q: %w", s, err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return Config{}, fmt.Errorf("parse blob location %q: want s3://bucket/prefix", s)
	}
	if u.User != nil {
		return Config{}, fmt.Errorf("parse blob location %q: credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not the location", s)
	}
	cfg := Config{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "virtual_hosted":
			if cfg.VirtualHosted, err = strconv.ParseBool(v); err != nil {
				return Config{}, fmt.Errorf("parse blob location %q: virtual_hosted: %w", s, err)
			}
		case "part_size":
			if cfg.PartSize, err = strconv.ParseInt(v, 10, 64); err != nil || cfg.PartSize < 5<<20 {
				return Config{}, fmt.Errorf("parse blob location %q: part_size must be at least 5 MiB", s)
			}
		default:
			return Config{}, fmt.Errorf("parse blob location %q: unknown parameter %q", s, k)
		}
	}
	return cfg, nil
}
