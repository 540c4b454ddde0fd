package backup

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark/bulwark/internal/meta"
)

// Job kinds: the type label of the job metrics.
const (
	kindBackup  = "backup"
	kindRestore = "restore"
	kindCopy    = "copy"
)

// scrapeTimeout bounds the catalog read a scrape makes.
const scrapeTimeout = 10 * time.Second

// metrics are the service's Prometheus collectors. Job counters are kept
// as jobs end; what the catalog already knows (recovery points per vault
// and storage class, the newest point's deduplication) is read from it on
// each scrape, so it survives restarts and never drifts from the catalog.
type metrics struct {
	finished *prometheus.CounterVec
	running  *prometheus.GaugeVec
	read     *prometheus.CounterVec
	stored   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	vaults   *vaultCollector
}

func newMetrics(cat *Catalog, log *slog.Logger) *metrics {
	m := &metrics{
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_backup_jobs_finished_total",
			Help: "Backup, restore and copy jobs that ended, by type and final state.",
		}, []string{"type", "state"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_backup_jobs_running",
			Help: "Jobs at work now, by type.",
		}, []string{"type"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_backup_read_bytes_total",
			Help: "Object data read by jobs: from buckets by backups (objects unchanged since the previous point are not read), from vaults by restores and copies.",
		}, []string{"type"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_backup_stored_bytes_total",
			Help: "Bytes jobs newly stored: vault storage added by backups and copies (after deduplication, compression and encryption), object data written by restores.",
		}, []string{"type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_backup_job_duration_seconds",
			Help:    "Time from a job's start to its end, by type and final state.",
			Buckets: []float64{.1, .5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400},
		}, []string{"type", "state"}),
		vaults: &vaultCollector{cat: cat, log: log},
	}
	// Every type's series exists from the start, at zero, so that a rate
	// or an alert has something to read before the first job ends.
	for _, kind := range []string{kindBackup, kindRestore, kindCopy} {
		m.running.WithLabelValues(kind)
		m.read.WithLabelValues(kind)
		m.stored.WithLabelValues(kind)
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.finished, m.running, m.read, m.stored, m.duration, m.vaults} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// observeJob records a job that ended in state: how long it ran, the bytes
// it read and the bytes it newly stored. Backup and restore jobs call it
// as they end; so must copy jobs, with kind "copy".
func (s *Service) observeJob(kind, state string, started, ended time.Time, read, stored int64) {
	m := s.metrics
	m.finished.WithLabelValues(kind, state).Inc()
	m.duration.WithLabelValues(kind, state).Observe(max(ended.Sub(started), 0).Seconds())
	m.read.WithLabelValues(kind).Add(float64(max(read, 0)))
	m.stored.WithLabelValues(kind).Add(float64(max(stored, 0)))
}

// jobRunning counts a job of kind as running until the returned function
// is called.
func (s *Service) jobRunning(kind string) (done func()) {
	g := s.metrics.running.WithLabelValues(kind)
	g.Inc()
	return g.Dec
}

// Series of the vault collector.
var (
	descPoints = prometheus.NewDesc("bulwark_backup_vault_recovery_points",
		"Recovery points in a vault, by storage class.", []string{"account", "vault", "storage_class"}, nil)
	descDedup = prometheus.NewDesc("bulwark_backup_vault_dedup_ratio",
		"Logical bytes of the vault's newest recovery point over the bytes it added to the vault (deduplication and compression); +Inf when it added nothing.",
		[]string{"account", "vault"}, nil)
	descLogical = prometheus.NewDesc("bulwark_backup_vault_last_logical_bytes",
		"Logical size of the vault's newest recovery point: the sum of its objects' sizes.", []string{"account", "vault"}, nil)
	descNew = prometheus.NewDesc("bulwark_backup_vault_last_new_bytes",
		"Bytes the vault's newest recovery point added to the vault's storage.", []string{"account", "vault"}, nil)
	descLag = prometheus.NewDesc("bulwark_backup_continuous_lag_seconds",
		"Time since the last instant a continuous recovery point can be restored to: the changes a loss of the resource now would cost (its RPO).",
		[]string{"account", "vault", "resource"}, nil)
	descSince = prometheus.NewDesc("bulwark_backup_continuous_window_start_timestamp_seconds",
		"Earliest instant a continuous recovery point can be restored to.", []string{"account", "vault", "resource"}, nil)
)

// vaultCollector reads the catalog on each scrape: one pass over the
// vaults and one over the recovery point records, no vault data.
type vaultCollector struct {
	cat *Catalog
	log *slog.Logger
}

func (c *vaultCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPoints
	ch <- descDedup
	ch <- descLogical
	ch <- descNew
	ch <- descLag
	ch <- descSince
}

// vaultStat is what the collector gathers of one vault.
type vaultStat struct {
	account, vault string
	warm, cold     int
	newest         *RecoveryPoint
	continuous     []continuousStat
}

// continuousStat is the window of a continuous point.
type continuousStat struct {
	resource     string
	since, until time.Time
}

func (c *vaultCollector) Collect(ch chan<- prometheus.Metric) {
	stats, err := c.gather()
	if err != nil {
		// A failed read leaves the series out rather than failing the
		// whole scrape, which carries the region's other metrics.
		c.log.Warn("read the backup catalog for metrics", "err", err)
		return
	}
	for _, st := range stats {
		ch <- prometheus.MustNewConstMetric(descPoints, prometheus.GaugeValue, float64(st.warm), st.account, st.vault, StorageWarm)
		ch <- prometheus.MustNewConstMetric(descPoints, prometheus.GaugeValue, float64(st.cold), st.account, st.vault, StorageCold)
		if p := st.newest; p != nil {
			ch <- prometheus.MustNewConstMetric(descDedup, prometheus.GaugeValue, dedupRatio(p.BackupSizeInBytes, p.BytesNew), st.account, st.vault)
			ch <- prometheus.MustNewConstMetric(descLogical, prometheus.GaugeValue, float64(p.BackupSizeInBytes), st.account, st.vault)
			ch <- prometheus.MustNewConstMetric(descNew, prometheus.GaugeValue, float64(p.BytesNew), st.account, st.vault)
		}
		for _, c := range st.continuous {
			ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, max(time.Since(c.until).Seconds(), 0), st.account, st.vault, c.resource)
			ch <- prometheus.MustNewConstMetric(descSince, prometheus.GaugeValue, float64(c.since.UnixNano())/1e9, st.account, st.vault, c.resource)
		}
	}
}

// dedupRatio is logical bytes over new bytes. A point that added nothing
// (everything was in the vault already) has an infinite ratio; an empty
// one, nothing to deduplicate, has 1.
func dedupRatio(logical, added int64) float64 {
	switch {
	case added > 0:
		return float64(logical) / float64(added)
	case logical > 0:
		return math.Inf(1)
	default:
		return 1
	}
}

func (c *vaultCollector) gather() ([]*vaultStat, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	byVault := map[string]*vaultStat{}
	stat := func(account, vault string) *vaultStat {
		k := account + "/" + vault
		if byVault[k] == nil {
			byVault[k] = &vaultStat{account: account, vault: vault}
		}
		return byVault[k]
	}
	err := c.cat.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceVaults)
		for k, v := it.First(); k != nil; k, v = it.Next() {
			var vr Vault
			if err := json.Unmarshal(v, &vr); err != nil {
				return err
			}
			account, _, _ := strings.Cut(string(k), "/")
			stat(account, vr.Name)
		}
		it = tx.Iter(spacePoints)
		for k, v := it.First(); k != nil; k, v = it.Next() {
			p := &RecoveryPoint{}
			if err := json.Unmarshal(v, p); err != nil {
				return err
			}
			st := stat(p.AccountID, p.VaultName)
			if p.StorageClass == StorageCold {
				st.cold++
			} else {
				st.warm++
			}
			if st.newest == nil || p.CreationDate.After(st.newest.CreationDate) {
				st.newest = p
			}
			if p.IsContinuous() {
				ss, err := loadStream(tx, p)
				if err != nil {
					return err
				}
				var pieces []*Piece
				if err := scan(tx, spacePieces, key(p.AccountID, p.VaultName, p.PointID), func(_, v []byte) error {
					pc := &Piece{}
					if err := json.Unmarshal(v, pc); err != nil {
						return err
					}
					pieces = append(pieces, pc)
					return nil
				}); err != nil {
					return err
				}
				if ws := restorableWindows(pieces, ss); len(ws) > 0 {
					st.continuous = append(st.continuous, continuousStat{resource: p.ResourceARN, since: ws[0].Since, until: ws[len(ws)-1].Until})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Collect(maps.Values(byVault)), nil
}
