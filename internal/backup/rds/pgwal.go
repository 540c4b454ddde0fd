package rds

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"time"
)

// PostgreSQL's write-ahead log, read as far as continuous backup needs it:
// positions (LSNs), segment file names, and the transaction commit and
// abort records with their timestamps, which are what recovery_target_time
// compares with. The layout is the one of src/include/access/xlog*.h,
// stable since PostgreSQL 9.5; integers are the server's byte order, little
// endian on every platform Bulwark builds for.

const (
	walPageSize        = 8192 // XLOG_BLCKSZ; a long page header says otherwise
	walShortHeaderSize = 24   // SizeOfXLogShortPHD, MAXALIGNed
	walLongHeaderSize  = 40   // SizeOfXLogLongPHD, MAXALIGNed
	walRecordHeader    = 24   // SizeOfXLogRecord
	walMaxXactRecord   = 16 << 20

	xlpFirstIsContRecord = 0x0001
	xlpLongHeader        = 0x0002

	rmXLOG = 0 // RM_XLOG_ID
	rmXact = 1 // RM_XACT_ID

	xlogSwitch = 0x40 // XLOG_SWITCH, of RM_XLOG_ID

	xactOpMask         = 0x70
	xactCommit         = 0x00
	xactAbort          = 0x20
	xactCommitPrepared = 0x30
	xactAbortPrepared  = 0x40

	blockIDDataShort   = 255
	blockIDDataLong    = 254
	blockIDOrigin      = 253
	blockIDTopLevelXID = 252

	// pgEpochOffset is 2000-01-01 in Unix microseconds: PostgreSQL's
	// timestamps count from there.
	pgEpochOffset = 946684800 * 1000000
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// parseLSN reads an LSN as PostgreSQL writes it: two hexadecimal halves,
// "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return h<<32 | l, nil
}

func formatLSN(l uint64) string { return fmt.Sprintf("%X/%X", l>>32, uint32(l)) }

// walFileName is the name of the segment file of timeline tli that holds
// position l.
func walFileName(tli uint32, l, segSize uint64) string {
	segno := l / segSize
	perID := 0x100000000 / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID)
}

// parseWALFileName reads a segment file name back: its timeline and the
// position it starts at.
func parseWALFileName(name string, segSize uint64) (tli uint32, start uint64, ok bool) {
	if len(name) != 24 {
		return 0, 0, false
	}
	t, err1 := strconv.ParseUint(name[:8], 16, 32)
	hi, err2 := strconv.ParseUint(name[8:16], 16, 32)
	lo, err3 := strconv.ParseUint(name[16:], 16, 32)
	if err1 != nil || err2 != nil || err3 != nil || lo >= 0x100000000/segSize {
		return 0, 0, false
	}
	return uint32(t), (hi*(0x100000000/segSize) + lo) * segSize, true
}

func pgTime(us int64) time.Time { return time.UnixMicro(us + pgEpochOffset).UTC() }

// xactRecord is a transaction's commit or abort record: where recovery to a
// time may stop.
type xactRecord struct {
	LSN    uint64 // where the record starts
	End    uint64 // the position after it
	Time   time.Time
	Commit bool
}

// walScanner reads records out of consecutive bytes of WAL fed to it in
// pieces of any size, and reports every commit and abort record whose CRC
// holds. It keeps only the record in progress, and only when that is a
// transaction record; any other record's bytes pass through.
//
// It may start at any position: it skips to the next page boundary, and
// the continuation of a record begun before that page. Bytes that do not
// parse (a page whose address is not its position: the end of the WAL
// written so far, a recycled segment's old content) make it skip to the
// next page and find its footing there. Reports are therefore never wrong,
// only possibly missing near a start or after damage; a caller that needs
// every record (a restore) checks Broken.
type walScanner struct {
	pos      uint64 // the position of the next byte fed
	segSize  uint64
	pageSize uint64
	onXact   func(xactRecord)

	header   []byte // the page header being read
	inHeader bool
	hdrNeed  int
	skip     uint64 // bytes to pass over before anything else
	skipCont bool   // the skip is a continuation: align after it
	// resync: the next page's continuation data is to be skipped before a
	// record starts.
	resync bool

	inRecord   bool
	recStart   uint64
	recLen     uint32 // xl_tot_len, once 4 bytes are in
	recGot     uint32
	rec        []byte // header, and the body of a kept record
	keep       bool
	nextSwitch bool // the record in progress is an XLOG_SWITCH

	// Broken counts the times the scanner lost its footing after having
	// found it; BrokenAt is where it first did.
	Broken   int
	BrokenAt uint64
	// Last is the position after the last whole record read (with its
	// padding).
	Last uint64
}

func newWALScanner(start, segSize uint64, onXact func(xactRecord)) *walScanner {
	s := &walScanner{pos: start, segSize: segSize, pageSize: walPageSize, onXact: onXact, resync: true, Last: start}
	if off := start % s.pageSize; off != 0 {
		s.skip = s.pageSize - off
	}
	return s
}

// Feed scans the next bytes of WAL.
func (s *walScanner) Feed(p []byte) {
	for len(p) > 0 {
		var n int
		switch {
		case s.skip > 0:
			n = int(min(uint64(len(p)), s.skip))
			s.skip -= uint64(n)
			if s.skip == 0 && s.skipCont {
				s.skipCont = false
				end := s.pos + uint64(n)
				s.skip = (8 - end%8) % 8
				s.Last = end + s.skip
			}
		case s.inHeader || s.pos%s.pageSize == 0:
			if !s.inHeader {
				s.inHeader, s.header, s.hdrNeed = true, s.header[:0], walShortHeaderSize
				if s.pos%s.segSize == 0 {
					s.hdrNeed = walLongHeaderSize
				}
			}
			n = min(len(p), s.hdrNeed-len(s.header))
			s.header = append(s.header, p[:n]...)
			if len(s.header) == s.hdrNeed {
				s.inHeader = false
				s.pageHeader(s.pos + uint64(n))
			}
		default:
			room := s.pageSize - s.pos%s.pageSize
			n = s.recordBytes(p[:min(uint64(len(p)), room)], room)
		}
		s.pos += uint64(n)
		p = p[n:]
	}
}

// pageHeader checks the page header that ends at end and sets up what
// follows it.
func (s *walScanner) pageHeader(end uint64) {
	h := s.header
	pageStart := end - uint64(len(h))
	info := binary.LittleEndian.Uint16(h[2:])
	addr := binary.LittleEndian.Uint64(h[8:])
	remLen := binary.LittleEndian.Uint32(h[16:])
	long := len(h) == walLongHeaderSize
	if long && info&xlpLongHeader != 0 && addr == pageStart {
		if bs := uint64(binary.LittleEndian.Uint32(h[36:])); bs != s.pageSize && bs >= 1024 && bs&(bs-1) == 0 && bs <= s.segSize {
			s.pageSize = bs
		}
	}
	room := s.pageSize - end%s.pageSize
	if addr != pageStart || (info&xlpLongHeader != 0) != long {
		// Not the WAL of this position: its end, or damage.
		s.lose()
		s.skip = room
		return
	}
	cont := info&xlpFirstIsContRecord != 0
	switch {
	case s.inRecord:
		if s.recGot < 4 || !cont || remLen != s.recLen-s.recGot {
			s.lose()
			s.skipContinuation(cont, remLen, room)
		}
	case s.resync:
		s.skipContinuation(cont, remLen, room)
	case cont && remLen > 0:
		s.lose()
		s.skipContinuation(cont, remLen, room)
	}
}

// skipContinuation passes over the part of a record begun on an earlier
// page that this page holds; room is what the page has after its header.
func (s *walScanner) skipContinuation(cont bool, remLen uint32, room uint64) {
	s.inRecord, s.rec = false, s.rec[:0]
	if !cont || remLen == 0 {
		s.resync = false
		return
	}
	if uint64(remLen) >= room {
		// The record goes on past this page: skip the page; the next
		// one's header says what is left.
		s.skip, s.resync = room, true
		return
	}
	s.skip, s.skipCont, s.resync = uint64(remLen), true, false
}

func (s *walScanner) lose() {
	if !s.resync {
		if s.Broken == 0 {
			s.BrokenAt = s.pos
		}
		s.Broken++
	}
	s.inRecord, s.resync, s.skipCont, s.rec = false, true, false, s.rec[:0]
}

// recordBytes takes bytes of records, all on one page with room bytes left
// from the current position, and returns how many it used.
func (s *walScanner) recordBytes(p []byte, room uint64) int {
	if !s.inRecord {
		s.inRecord, s.recStart, s.recGot, s.recLen, s.keep, s.nextSwitch = true, s.pos, 0, 0, false, false
		s.rec = s.rec[:0]
	}
	n := 0
	if s.recGot < walRecordHeader {
		k := min(len(p), walRecordHeader-int(s.recGot))
		s.rec = append(s.rec, p[:k]...)
		s.recGot += uint32(k)
		n = k
		if s.recGot >= 4 && s.recLen == 0 {
			s.recLen = binary.LittleEndian.Uint32(s.rec)
			if s.recLen < walRecordHeader || s.recLen > 1<<30 {
				// Zeroes, or not a record: the end of the WAL.
				s.lose()
				s.skip = room - uint64(n)
				return n
			}
		}
		if s.recGot < walRecordHeader {
			return n
		}
		info, rmid := s.rec[16], s.rec[17]
		if rmid == rmXact && s.recLen <= walMaxXactRecord {
			switch info & xactOpMask {
			case xactCommit, xactAbort, xactCommitPrepared, xactAbortPrepared:
				s.keep = true
			}
		}
		s.nextSwitch = rmid == rmXLOG && info&0xF0 == xlogSwitch
	}
	take := min(uint32(len(p)-n), s.recLen-s.recGot)
	if s.keep {
		s.rec = append(s.rec, p[n:n+int(take)]...)
	}
	s.recGot += take
	n += int(take)
	if s.recGot == s.recLen {
		s.endRecord(s.pos + uint64(n))
	}
	return n
}

// endRecord finishes the record that ends at end.
func (s *walScanner) endRecord(end uint64) {
	s.inRecord = false
	if s.keep {
		if r, ok := parseXact(s.rec); ok {
			r.LSN, r.End = s.recStart, end
			s.onXact(r)
		}
	}
	if s.nextSwitch {
		// The rest of the segment is not WAL: the next record starts in
		// the next segment.
		s.skip = (s.segSize - end%s.segSize) % s.segSize
	} else {
		s.skip = (8 - end%8) % 8
	}
	s.Last = end + s.skip
}

// parseXact reads a whole commit or abort record: its CRC must hold and its
// main data start with the transaction's timestamp (xl_xact_commit and
// xl_xact_abort both begin with xact_time).
func parseXact(rec []byte) (xactRecord, bool) {
	crc := crc32.Update(0, castagnoli, rec[walRecordHeader:])
	crc = crc32.Update(crc, castagnoli, rec[:20])
	if crc != binary.LittleEndian.Uint32(rec[20:]) {
		return xactRecord{}, false
	}
	off, mainLen := walRecordHeader, -1
	for mainLen < 0 && off < len(rec) {
		switch rec[off] {
		case blockIDDataShort:
			if off+2 > len(rec) {
				return xactRecord{}, false
			}
			mainLen, off = int(rec[off+1]), off+2
		case blockIDDataLong:
			if off+5 > len(rec) {
				return xactRecord{}, false
			}
			mainLen, off = int(binary.LittleEndian.Uint32(rec[off+1:])), off+5
		case blockIDOrigin:
			off += 3
		case blockIDTopLevelXID:
			off += 5
		default:
			// Block references: a transaction record has none.
			return xactRecord{}, false
		}
	}
	if mainLen < 8 || off+mainLen > len(rec) {
		return xactRecord{}, false
	}
	main := rec[len(rec)-mainLen:]
	op := rec[16] & xactOpMask
	return xactRecord{
		Time:   pgTime(int64(binary.LittleEndian.Uint64(main))),
		Commit: op == xactCommit || op == xactCommitPrepared,
	}, true
}
