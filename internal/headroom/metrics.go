package headroom

import "github.com/prometheus/client_golang/prometheus"

// metrics are the guard's Prometheus collectors. Free space and whether
// writes are refused are read from the filesystem at each scrape, so they
// are current even between checks.
type metrics struct {
	refused prometheus.Counter
	full    prometheus.Counter
	gauges  []prometheus.Collector
}

func newMetrics(g *Guard) *metrics {
	usage := func(pick func(Usage) int64) func() float64 {
		return func() float64 {
			u, err := g.statfs(g.dir)
			if err != nil {
				return -1
			}
			return float64(pick(u))
		}
	}
	locked := func(read func() int64) func() float64 {
		return func() float64 {
			g.mu.Lock()
			defer g.mu.Unlock()
			return float64(read())
		}
	}
	return &metrics{
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_disk_refused_writes_total",
			Help: "Writes of new data refused because they would leave less than the floor free.",
		}),
		full: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_disk_full_errors_total",
			Help: "Writes that met a full disk (ENOSPC) and were answered 503.",
		}),
		gauges: []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bulwark_disk_free_bytes",
				Help: "Free space of the data directory's filesystem, for an unprivileged writer.",
			}, usage(func(u Usage) int64 { return u.Free })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bulwark_disk_size_bytes",
				Help: "Size of the data directory's filesystem.",
			}, usage(func(u Usage) int64 { return u.Size })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bulwark_disk_floor_bytes",
				Help: "Free space below which new data is refused.",
			}, func() float64 { return float64(g.floor) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bulwark_disk_refusing_writes",
				Help: "1 while new data is refused for want of disk space, else 0.",
			}, func() float64 {
				u, err := g.statfs(g.dir)
				if err != nil {
					return 0
				}
				deficit := g.deficit()
				g.mu.Lock()
				defer g.mu.Unlock()
				if u.Free-g.inflight-deficit < g.floor {
					return 1
				}
				return 0
			}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bulwark_disk_ballast_bytes",
				Help: "Size of the ballast file held in the data directory; 0 while it is released.",
			}, locked(func() int64 { return g.held })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "bulwark_disk_meta_reserve_bytes",
				Help: "Space preallocated ahead of the metadata file, which commits (deletes above all) use when the disk is full.",
			}, locked(func() int64 { return g.ahead })),
		},
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{m.refused, m.full}, m.gauges...) {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
