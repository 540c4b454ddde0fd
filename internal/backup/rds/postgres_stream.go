package rds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// walLog is a continuous point's log as the stream writes it
// (backup.StreamRun).
type walLog interface {
	Cursor() []byte
	Append(ctx context.Context, to time.Time, cursor []byte, fill func(put func(e vault.Entry, body io.Reader) error) error) error
	Advance(ctx context.Context, to time.Time, cursor []byte) error
	Gap(ctx context.Context, reason string) error
}

// walCursor is the stream's position, saved with each log piece.
type walCursor struct {
	System   string `json:"system"`
	Timeline uint32 `json:"timeline"`
	// LSN is where the WAL in the vault ends: the stream goes on from
	// there.
	LSN string `json:"lsn"`
	// To is the instant the last piece claimed.
	To time.Time `json:"to"`
}

// shipBytes is how much WAL received makes the stream ship before its
// ShipEvery.
const shipBytes = 16 << 20

// statusEvery is how often the stream tells the server where it is, well
// inside the default wal_sender_timeout (60 s).
const statusEvery = 10 * time.Second

// gapError is a loss of WAL the stream reports with Gap.
type gapError struct{ reason string }

func (e *gapError) Error() string { return e.reason }

// stream streams the WAL of the registered cluster into log until ctx
// ends, from the replication slot of resource arn.
//
// The WAL received goes to a spool file per segment, and every ShipEvery
// (or shipBytes) into the vault as one log piece: the bytes of each
// segment received since the last piece. Only once Append has returned
// does the stream report the position as flushed, which lets the server
// move the slot on; a stream that dies (the process killed) starts again
// from the cursor saved with the last piece, and the slot has kept the
// WAL after it.
//
// The instant a piece claims is one microsecond before the newest commit
// (or abort) record in the WAL shipped so far. Recovery to an instant
// stops before the first commit or abort record, in WAL order, that is
// later; for any instant before that newest record, such a record is in
// the vault, so recovery from the vault stops exactly where recovery from
// the server's own WAL would. An idle cluster makes no commit records: the
// stream makes one (an empty transaction) after HeartbeatEvery without.
func (pg *Postgres) stream(ctx context.Context, reg *backup.Registered, password, arn string, log walLog) error {
	s := settingsOf(reg)
	slot := slotName(arn)
	spool := filepath.Join(pg.cfg.Dir, "stream", slot)
	if err := os.RemoveAll(spool); err != nil {
		return err
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(spool)
	sql, err := connect(ctx, s, password, s.sqlDatabase())
	if err != nil {
		return err
	}
	defer sql.Close(context.WithoutCancel(ctx))
	for {
		err := pg.streamOnce(ctx, s, password, slot, spool, sql, log)
		var gap *gapError
		if errors.As(err, &gap) && ctx.Err() == nil {
			pg.log.Warn("postgres stream: WAL lost, the restorable window restarts at the next base", "resource", arn, "reason", gap.reason)
			if err := log.Gap(ctx, gap.reason); err != nil {
				return err
			}
			continue
		}
		return err
	}
}

// walStream is one replication connection's stream.
type walStream struct {
	pg       *Postgres
	log      walLog
	rc       *pgconn.PgConn
	sql      *pgx.Conn
	spool    string
	system   string
	tli      uint32
	segSize  uint64
	received uint64 // the position after the last byte received
	shipped  uint64 // the position after the last byte in the vault
	// xactEnd is the position after the last commit or abort record
	// received: pieces end there.
	xactEnd uint64
	files   map[string]*os.File
	scanner *walScanner
	// newest is the newest commit or abort time in the WAL received;
	// claimed what the last piece claimed.
	newest, claimed time.Time
	serverTime      time.Time // of the last message
	lastXact        time.Time // when the last commit record arrived (local clock)
	heartbeat       time.Time // when the stream last made one
	heartbeatWarned bool
}

func (pg *Postgres) streamOnce(ctx context.Context, s pgSettings, password, slot, spool string, sql *pgx.Conn, log walLog) error {
	cfg, err := connConfig(s, password, "", true)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["application_name"] = slot
	rc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return pgConnectError(s, "", true, err)
	}
	defer rc.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, rc)
	if err != nil {
		return fmt.Errorf("identify system: %w", err)
	}
	segSize, err := walSegmentSize(ctx, rc)
	if err != nil {
		return err
	}
	w := &walStream{pg: pg, log: log, rc: rc, sql: sql, spool: spool, system: sys.SystemID, tli: uint32(sys.Timeline),
		segSize: segSize, files: map[string]*os.File{}, lastXact: time.Now()}
	defer w.closeFiles()
	var cur *walCursor
	if b := log.Cursor(); len(b) > 0 {
		cur = &walCursor{}
		if err := json.Unmarshal(b, cur); err != nil {
			return &gapError{fmt.Sprintf("the stream's cursor does not read (%v)", err)}
		}
		if cur.System != sys.SystemID {
			return &gapError{fmt.Sprintf("PostgreSQL at %s is another cluster now (system identifier %s, was %s)", s.addr(), sys.SystemID, cur.System)}
		}
	}
	made, err := ensureSlot(ctx, rc, slot)
	if err != nil {
		return err
	}
	restart, lost, err := slotState(ctx, sql, slot)
	if err != nil {
		return err
	}
	if lost {
		if _, err := rc.Exec(ctx, "DROP_REPLICATION_SLOT "+slot).ReadAll(); err != nil {
			return fmt.Errorf("drop the replication slot %s, which lost its WAL: %w", slot, err)
		}
		if cur != nil {
			return &gapError{fmt.Sprintf("the replication slot %s lost WAL the stream had not received (max_slot_wal_keep_size)", slot)}
		}
		return fmt.Errorf("the replication slot %s lost its WAL; it is made again", slot)
	}
	var start uint64
	if cur != nil {
		if start, err = parseLSN(cur.LSN); err != nil {
			return &gapError{fmt.Sprintf("the stream's cursor has no position (%v)", err)}
		}
		w.tli, w.claimed = cur.Timeline, cur.To
		if made {
			pg.log.Warn("postgres stream: the replication slot was gone and is made again; the WAL after the cursor is read if the server still has it", "slot", slot)
		}
	} else {
		start = restart - restart%segSize
		w.heartbeat = time.Time{} // a first commit to claim, soon
		w.lastXact = time.Time{}
	}
	for {
		err := w.run(ctx, slot, start)
		var next *timelineSwitch
		if !errors.As(err, &next) {
			return err
		}
		// The timeline ended: the new one starts at a segment's start,
		// with the old timeline's WAL before the switch, as its file has.
		if err := w.switchTimeline(ctx, next); err != nil {
			return err
		}
		start = next.start - next.start%segSize
	}
}

// slotState reads a slot's restart position and whether it lost WAL it
// needed.
func slotState(ctx context.Context, sql *pgx.Conn, slot string) (restart uint64, lost bool, err error) {
	var lsn, status *string
	err = sql.QueryRow(ctx, "SELECT restart_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&lsn, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, fmt.Errorf("replication slot %s: gone", slot)
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42703" { // PostgreSQL < 13: no wal_status
			err = sql.QueryRow(ctx, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&lsn)
		}
		if err != nil {
			return 0, false, fmt.Errorf("replication slot %s: %w", slot, err)
		}
	}
	if status != nil && *status == "lost" || lsn == nil {
		return 0, true, nil
	}
	restart, err = parseLSN(*lsn)
	return restart, false, err
}

// timelineSwitch is the end of the timeline streamed: the server goes on
// with timeline tli from start.
type timelineSwitch struct {
	tli   uint32
	start uint64
}

func (t *timelineSwitch) Error() string {
	return fmt.Sprintf("timeline %d starts at %s", t.tli, formatLSN(t.start))
}

// run streams from start on the stream's timeline until ctx ends, the
// connection fails or the timeline ends.
func (w *walStream) run(ctx context.Context, slot string, start uint64) error {
	w.received, w.shipped, w.xactEnd = start, start, start
	w.scanner = newWALScanner(start, w.segSize, w.xact)
	err := pglogrepl.StartReplication(ctx, w.rc, slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{Timeline: int32(w.tli), Mode: pglogrepl.PhysicalReplication})
	if err != nil {
		return w.streamError(ctx, slot, start, err)
	}
	w.pg.log.Info("postgres stream: streaming", "slot", slot, "timeline", w.tli, "from", formatLSN(start))
	nextShip := time.Now().Add(w.pg.cfg.ShipEvery)
	nextStatus := time.Now().Add(statusEvery)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rctx, cancel := context.WithDeadline(ctx, minTime(nextShip, nextStatus))
		msg, err := w.rc.ReceiveMessage(rctx)
		cancel()
		switch {
		case err != nil && pgconn.Timeout(err) && ctx.Err() == nil:
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return w.streamError(ctx, slot, start, err)
		default:
			if err := w.message(ctx, msg); err != nil {
				var next *timelineSwitch
				if errors.As(err, &next) {
					return err
				}
				return w.streamError(ctx, slot, start, err)
			}
		}
		now := time.Now()
		if !now.Before(nextShip) || w.received-w.shipped >= shipBytes {
			if err := w.ship(ctx, nil); err != nil {
				return err
			}
			nextShip = now.Add(w.pg.cfg.ShipEvery)
		}
		if !now.Before(nextStatus) {
			if err := w.status(ctx, false); err != nil {
				return err
			}
			nextStatus = now.Add(statusEvery)
		}
		w.beat(ctx, now)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// message handles one message of the replication stream.
func (w *walStream) message(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return nil
		}
		switch m.Data[0] {
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return err
			}
			return w.receive(uint64(x.WALStart), x.ServerTime, x.WALData)
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return err
			}
			w.serverTime = k.ServerTime
			if k.ReplyRequested {
				return w.status(ctx, false)
			}
		}
	case *pgproto3.CopyDone:
		// The server ended the timeline: what was received goes to the
		// vault, then the next timeline is asked for.
		w.xactEnd = w.received
		if err := w.ship(ctx, nil); err != nil {
			return err
		}
		res, err := pglogrepl.SendStandbyCopyDone(ctx, w.rc)
		if err != nil {
			return fmt.Errorf("end of timeline %d: %w", w.tli, err)
		}
		if res == nil || uint32(res.Timeline) <= w.tli {
			return fmt.Errorf("end of timeline %d: the server names no next timeline", w.tli)
		}
		return &timelineSwitch{tli: uint32(res.Timeline), start: uint64(res.LSN)}
	case *pgproto3.ErrorResponse:
		return pgconn.ErrorResponseToPgError(m)
	}
	return nil
}

// receive writes WAL received at position at into the spool, and scans it.
func (w *walStream) receive(at uint64, serverTime time.Time, data []byte) error {
	if at < w.received { // a resend of what the stream has
		skip := min(uint64(len(data)), w.received-at)
		data, at = data[skip:], at+skip
	}
	if at != w.received {
		return fmt.Errorf("the server sent WAL from %s, after %s: a hole", formatLSN(at), formatLSN(w.received))
	}
	w.serverTime = serverTime
	for p := data; len(p) > 0; {
		seg := at - at%w.segSize
		n := min(uint64(len(p)), seg+w.segSize-at)
		f, err := w.file(seg)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(p[:n], int64(at-seg)); err != nil {
			return fmt.Errorf("spool WAL: %w", err)
		}
		p, at = p[n:], at+n
	}
	w.scanner.Feed(data)
	w.received = at
	return nil
}

// xact takes a commit or abort record of the WAL received. A timestamp
// later than the server's clock when it sent the record cannot be one and
// is not taken.
func (w *walStream) xact(r xactRecord) {
	w.xactEnd = r.End
	if !w.serverTime.IsZero() && r.Time.After(w.serverTime.Add(time.Second)) {
		return
	}
	if r.Time.After(w.newest) {
		w.newest = r.Time
	}
	w.lastXact = time.Now()
}

func (w *walStream) file(seg uint64) (*os.File, error) {
	name := walFileName(w.tli, seg, w.segSize)
	if f := w.files[name]; f != nil {
		return f, nil
	}
	// No fsync: the spool is a buffer. What is not in the vault, the
	// server's slot keeps.
	f, err := os.OpenFile(filepath.Join(w.spool, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	w.files[name] = f
	return f, nil
}

func (w *walStream) closeFiles() {
	for name, f := range w.files {
		f.Close()
		os.Remove(filepath.Join(w.spool, name))
	}
	clear(w.files)
}

// ship puts the WAL received since the last piece, up to the end of the
// last commit or abort record, and extra entries into a new log piece,
// then tells the server it may let go of it. A piece ends with a
// transaction's end so that a piece holding WAL written after a base
// began claims an instant after the base began too (restores choose log
// pieces by their instants). Without a commit record to claim an instant
// by, it waits: the slot keeps the WAL.
func (w *walStream) ship(ctx context.Context, extra []walExtra) error {
	to := w.claimed
	if !w.newest.IsZero() && w.newest.Add(-time.Microsecond).After(to) {
		to = w.newest.Add(-time.Microsecond)
	}
	upTo := w.xactEnd
	if to.IsZero() || (upTo <= w.shipped && len(extra) == 0) {
		return nil
	}
	type part struct {
		name      string
		off, size uint64
	}
	var parts []part
	for at := w.shipped; at < upTo; {
		seg := at - at%w.segSize
		n := min(upTo, seg+w.segSize) - at
		parts = append(parts, part{walFileName(w.tli, seg, w.segSize), at - seg, n})
		at += n
	}
	cur, err := json.Marshal(walCursor{System: w.system, Timeline: w.tli, LSN: formatLSN(max(upTo, w.shipped)), To: to})
	if err != nil {
		return err
	}
	// The server's patience (wal_sender_timeout) counts from the last
	// status: one now gives Append the most time.
	if err := w.status(ctx, false); err != nil {
		return err
	}
	err = w.log.Append(ctx, to, cur, func(put func(vault.Entry, io.Reader) error) error {
		for _, x := range extra {
			if err := put(vault.Entry{Key: walKeyPrefix + x.name, Size: int64(len(x.data))}, strings.NewReader(string(x.data))); err != nil {
				return err
			}
		}
		for _, p := range parts {
			e := vault.Entry{Key: walKeyPrefix + p.name, Size: int64(p.size), Metadata: map[string]string{pgEntryOffset: strconv.FormatUint(p.off, 10)}}
			if err := put(e, io.NewSectionReader(w.files[p.name], int64(p.off), int64(p.size))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append WAL up to %s: %w", formatLSN(upTo), err)
	}
	w.shipped, w.claimed = max(upTo, w.shipped), to
	for name, f := range w.files {
		if _, seg, ok := parseWALFileName(name, w.segSize); ok && seg+w.segSize <= w.shipped {
			f.Close()
			os.Remove(filepath.Join(w.spool, name))
			delete(w.files, name)
		}
	}
	return w.status(ctx, false)
}

// walExtra is a file a piece carries besides WAL: a timeline's history.
type walExtra struct {
	name string
	data []byte
}

// status tells the server what the stream has: received, and in the vault
// (flushed, which moves the slot).
func (w *walStream) status(ctx context.Context, reply bool) error {
	err := pglogrepl.SendStandbyStatusUpdate(ctx, w.rc, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(w.received),
		WALFlushPosition: pglogrepl.LSN(w.shipped),
		WALApplyPosition: pglogrepl.LSN(w.shipped),
		ReplyRequested:   reply,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	return nil
}

// beat makes a commit record when none came for HeartbeatEvery, so that
// the instant the log vouches for moves on while the cluster is idle.
func (w *walStream) beat(ctx context.Context, now time.Time) {
	every := w.pg.cfg.HeartbeatEvery
	if every < 0 || now.Sub(w.lastXact) < every || now.Sub(w.heartbeat) < every {
		return
	}
	w.heartbeat = now
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var x int64
	if err := w.sql.QueryRow(bctx, "SELECT txid_current()").Scan(&x); err != nil && ctx.Err() == nil && !w.heartbeatWarned {
		// A standby cannot: its window moves with its primary's commits.
		w.pg.log.Warn("postgres stream: no heartbeat transaction; the restorable window moves only with the cluster's own commits", "err", err)
		w.heartbeatWarned = true
	}
}

// switchTimeline stores the history file of the timeline the server
// switched to, with the WAL received before it.
func (w *walStream) switchTimeline(ctx context.Context, next *timelineSwitch) error {
	h, err := pglogrepl.TimelineHistory(ctx, w.rc, int32(next.tli))
	if err != nil {
		return fmt.Errorf("history of timeline %d: %w", next.tli, err)
	}
	if err := w.ship(ctx, []walExtra{{name: h.FileName, data: h.Content}}); err != nil {
		return err
	}
	w.pg.log.Info("postgres stream: timeline switch", "from", w.tli, "to", next.tli, "at", formatLSN(next.start))
	w.closeFiles()
	w.tli = next.tli
	return nil
}

// streamError classifies a failure of the stream: WAL the server no
// longer has is a gap; a slot another connection holds is freed when the
// holder is a stream of this slot that lost its process (the server
// notices a dead peer only after wal_sender_timeout).
func (w *walStream) streamError(ctx context.Context, slot string, start uint64, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.Code == "58P01" || strings.Contains(pe.Message, "has already been removed"):
		return &gapError{fmt.Sprintf("the server no longer has the WAL from %s: %s", formatLSN(start), pe.Message)}
	case strings.Contains(pe.Message, "not in this server's history") || strings.Contains(pe.Message, "ahead of the WAL flush position"):
		return &gapError{fmt.Sprintf("the server's WAL is not the one streamed so far: %s", pe.Message)}
	case pe.Code == "55006": // object_in_use: the slot is active
		var n int
		qerr := w.sql.QueryRow(ctx, `SELECT count(pg_terminate_backend(r.pid)) FROM pg_replication_slots s
			JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1 AND r.application_name = $1`, slot).Scan(&n)
		if qerr == nil && n > 0 {
			return fmt.Errorf("replication slot %s was held by a stream of an earlier run, now ended: %w", slot, err)
		}
	}
	return err
}

// dropSlot drops the slot of a continuous backup that ended, retrying
// while the stream's connection, just closed, still holds it.
func dropSlot(ctx context.Context, s pgSettings, password, slot string) error {
	rc, err := connectReplication(ctx, s, password)
	if err != nil {
		return err
	}
	defer rc.Close(context.WithoutCancel(ctx))
	for i := 0; ; i++ {
		_, err := rc.Exec(ctx, "DROP_REPLICATION_SLOT "+slot).ReadAll()
		var pe *pgconn.PgError
		switch {
		case err == nil || errors.As(err, &pe) && pe.Code == "42704": // undefined_object
			return nil
		case errors.As(err, &pe) && pe.Code == "55006" && i < 20:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		default:
			return fmt.Errorf("drop replication slot %s: %w", slot, err)
		}
	}
}
