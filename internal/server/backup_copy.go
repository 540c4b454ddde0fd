package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/httplimit"
)

// Copies of recovery points into another region's vault travel over the
// peer API: the source region drives a vault transfer (vault.Transfer) whose
// destination is a session in the other region, one call per step of the
// protocol:
//
//	POST   copiesPath                  begin: backup.CopyIn → {session} or {done}
//	POST   copiesPath{id}/missing      chunk IDs → the ones the vault lacks
//	PUT    copiesPath{id}/chunks       chunks, framed (see encodeChunks)
//	POST   copiesPath{id}/entries      entries with their chunk lists
//	POST   copiesPath{id}/commit       → the point; the copy is recorded
//	DELETE copiesPath{id}              abort
//
// Only the deployment's regions (the admin's key) may call it. A session
// idle for copySessionIdle is aborted, so a source that died leaves
// nothing open; its retry starts a new session and finds the chunks the
// first one flushed.
const (
	copiesPath      = adminPrefix + "v1/backup/copies/"
	copySessionIdle = 10 * time.Minute
	// maxCopyBody bounds a batch of chunks: TransferBatchBytes, or one
	// chunk of kopia's largest (8 MiB), with room for the framing.
	maxCopyBody = 2*vault.TransferBatchBytes + 1<<20
	// maxCopyJSON bounds the other calls' bodies.
	maxCopyJSON = 64 << 20
)

// Codes of the peer API's copy errors, beside the backup error kinds.
const (
	codeNoSuchSession   = "NoSuchCopySession"
	codeInvalidTransfer = "InvalidTransfer"
)

// copyKinds maps the backup errors a destination refuses a copy with to
// the codes that carry them back.
var copyKinds = []struct {
	kind error
	code string
}{
	{backup.ErrNotFound, "NotFound"},
	{backup.ErrInvalidParameter, "InvalidParameter"},
	{backup.ErrMissingParameter, "MissingParameter"},
	{backup.ErrInvalidRequest, "InvalidRequest"},
	{backup.ErrAlreadyExists, "AlreadyExists"},
	{backup.ErrLimitExceeded, "LimitExceeded"},
}

type copySession struct {
	mu      sync.Mutex
	target  vault.Target
	account string
	used    time.Time
}

type copySessions struct {
	mu sync.Mutex
	m  map[string]*copySession
}

// add keeps a new session and aborts those left idle.
func (cs *copySessions) add(t vault.Target, account string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	now := time.Now()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]*copySession{}
	}
	for sid, s := range cs.m {
		if s.mu.TryLock() {
			if now.Sub(s.used) > copySessionIdle {
				_ = s.target.Abort(context.Background())
				delete(cs.m, sid)
			}
			s.mu.Unlock()
		}
	}
	cs.m[id] = &copySession{target: t, account: account, used: now}
	return id
}

// with runs fn on a session, locked; end drops the session after fn.
func (cs *copySessions) with(id string, end bool, fn func(*copySession) error) error {
	cs.mu.Lock()
	s := cs.m[id]
	if s != nil && end {
		delete(cs.m, id)
	}
	cs.mu.Unlock()
	if s == nil {
		return errNoSuchSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used = time.Now()
	return fn(s)
}

var errNoSuchSession = errors.New("no such copy session: it ended or this region restarted")

// copyRoutes are the receiving end of cross-region copies; only the
// deployment's regions call them.
func (r *Region) copyRoutes() []adminRoute {
	sessions := &copySessions{}
	var routes []adminRoute
	handle := func(pattern string, fn func(w http.ResponseWriter, req *http.Request) error) {
		routes = append(routes, adminRoute{pattern, peersOnly, nil, func(w http.ResponseWriter, req *http.Request) {
			if err := fn(w, req); err != nil {
				r.writeCopyError(w, err)
			}
		}})
	}
	handle("POST "+copiesPath+"{$}", func(w http.ResponseWriter, req *http.Request) error {
		var in backup.CopyIn
		if err := readJSON(req, &in, 1<<20); err != nil {
			return err
		}
		t, done, err := r.Jobs.BeginCopyIn(req.Context(), in)
		if err != nil {
			return err
		}
		if done != nil {
			writeJSON(w, http.StatusOK, copyBegun{Done: done})
			return nil
		}
		writeJSON(w, http.StatusOK, copyBegun{Session: sessions.add(t, in.AccountID)})
		return nil
	})
	handle("POST "+copiesPath+"{id}/missing", func(w http.ResponseWriter, req *http.Request) error {
		var ids []string
		if err := readJSON(req, &ids, maxCopyJSON); err != nil {
			return err
		}
		return sessions.with(req.PathValue("id"), false, func(s *copySession) error {
			missing, err := s.target.Missing(req.Context(), ids)
			if err == nil {
				writeJSON(w, http.StatusOK, missing)
			}
			return err
		})
	})
	handle("PUT "+copiesPath+"{id}/chunks", func(w http.ResponseWriter, req *http.Request) error {
		body, err := io.ReadAll(io.LimitReader(req.Body, maxCopyBody+1))
		if err != nil {
			return err
		}
		if len(body) > maxCopyBody {
			return fmt.Errorf("%w: chunk batch over %d bytes", vault.ErrInvalid, maxCopyBody)
		}
		chunks, err := decodeChunks(body)
		if err != nil {
			return err
		}
		return sessions.with(req.PathValue("id"), false, func(s *copySession) error {
			err := s.target.PutChunks(req.Context(), chunks)
			if err == nil {
				w.WriteHeader(http.StatusNoContent)
			}
			return err
		})
	})
	handle("POST "+copiesPath+"{id}/entries", func(w http.ResponseWriter, req *http.Request) error {
		var es []vault.TransferEntry
		if err := readJSON(req, &es, maxCopyJSON); err != nil {
			return err
		}
		return sessions.with(req.PathValue("id"), false, func(s *copySession) error {
			err := s.target.PutEntries(req.Context(), es)
			if err == nil {
				w.WriteHeader(http.StatusNoContent)
			}
			return err
		})
	})
	handle("POST "+copiesPath+"{id}/commit", func(w http.ResponseWriter, req *http.Request) error {
		return sessions.with(req.PathValue("id"), true, func(s *copySession) error {
			p, err := s.target.Commit(context.WithoutCancel(req.Context()))
			if err == nil {
				writeJSON(w, http.StatusOK, p)
			}
			return err
		})
	})
	handle("DELETE "+copiesPath+"{id}", func(w http.ResponseWriter, req *http.Request) error {
		err := sessions.with(req.PathValue("id"), true, func(s *copySession) error {
			return s.target.Abort(req.Context())
		})
		if err == nil || errors.Is(err, errNoSuchSession) || errors.Is(err, vault.ErrWriterClosed) {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return err
	})
	return routes
}

type copyBegun struct {
	Session string                `json:"session,omitempty"`
	Done    *backup.RecoveryPoint `json:"done,omitempty"`
}

func readJSON(req *http.Request, v any, limit int64) error {
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("%w: body over %d bytes", vault.ErrInvalid, limit)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", vault.ErrInvalid, err)
	}
	return nil
}

// writeCopyError answers a copy call that failed: the destination's
// refusals with their kind, a lost session as such, anything else as the
// region's fault (the source retries).
func (r *Region) writeCopyError(w http.ResponseWriter, err error) {
	var be *backup.Error
	if errors.As(err, &be) {
		for _, k := range copyKinds {
			if errors.Is(err, k.kind) {
				writeJSONError(w, http.StatusBadRequest, k.code, be.Message)
				return
			}
		}
	}
	var le *headroom.Error
	switch {
	case errors.Is(err, httplimit.ErrReadTimeout):
		writeRequestTimeout(w)
	case errors.As(err, &le):
		// Not a refusal of the copy: the source retries until there is
		// room.
		writeJSONError(w, http.StatusServiceUnavailable, "ServiceUnavailable", le.Message())
	case errors.Is(err, errNoSuchSession):
		writeJSONError(w, http.StatusNotFound, codeNoSuchSession, err.Error())
	case errors.Is(err, vault.ErrInvalid), errors.Is(err, vault.ErrNotFound):
		writeJSONError(w, http.StatusBadRequest, codeInvalidTransfer, err.Error())
	default:
		r.log.Error("copy into vault", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "InternalError", err.Error())
	}
}

// encodeChunks frames chunks: per chunk, the uvarint length of its ID, the
// ID, the uvarint length of its data, the data.
func encodeChunks(chunks []vault.ChunkData) []byte {
	n := 0
	for _, c := range chunks {
		n += 2*binary.MaxVarintLen64 + len(c.ID) + len(c.Data)
	}
	b := make([]byte, 0, n)
	for _, c := range chunks {
		b = binary.AppendUvarint(b, uint64(len(c.ID)))
		b = append(b, c.ID...)
		b = binary.AppendUvarint(b, uint64(len(c.Data)))
		b = append(b, c.Data...)
	}
	return b
}

func decodeChunks(b []byte) ([]vault.ChunkData, error) {
	var out []vault.ChunkData
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: truncated chunk batch", vault.ErrInvalid)
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	for len(b) > 0 {
		id, err := next()
		if err != nil {
			return nil, err
		}
		data, err := next()
		if err != nil {
			return nil, err
		}
		out = append(out, vault.ChunkData{ID: string(id), Data: data})
	}
	return out, nil
}

// remoteCopies is the backup service's way into other regions' vaults.
type remoteCopies struct{ r *Region }

// otherRegions lists the regions of the topology but this one.
func (r *Region) otherRegions() []string {
	if r.cfg.Topology == nil {
		return nil
	}
	return slices.DeleteFunc(r.cfg.Topology.Names(), func(n string) bool { return n == r.cfg.Region })
}

func (rc remoteCopies) BeginCopy(ctx context.Context, region string, in backup.CopyIn) (vault.Target, *backup.RecoveryPoint, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, nil, err
	}
	var out copyBegun
	if err := rc.call(ctx, region, http.MethodPost, copiesPath, body, &out); err != nil {
		return nil, nil, err
	}
	if out.Done != nil {
		return nil, out.Done, nil
	}
	return &remoteTarget{rc: rc, region: region, path: copiesPath + out.Session}, nil, nil
}

// call sends one call of the copy protocol and decodes its answer into
// out (nil: none). Refusals come back as the errors the destination met.
func (rc remoteCopies) call(ctx context.Context, region, method, path string, body []byte, out any) error {
	p := rc.r.peers()
	if p.client == nil {
		return fmt.Errorf("copy to region %s: this region has no key to sign with", region)
	}
	resp, err := p.client.DoData(ctx, region, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCopyJSON))
	if err != nil {
		return fmt.Errorf("copy to region %s: %w", region, err)
	}
	if resp.StatusCode/100 == 2 {
		if out == nil || resp.StatusCode == http.StatusNoContent {
			return nil
		}
		return json.Unmarshal(data, out)
	}
	var e struct{ Code, Message string }
	_ = json.Unmarshal(data, &e)
	for _, k := range copyKinds {
		if e.Code == k.code {
			return &backup.Error{Kind: k.kind, Message: e.Message}
		}
	}
	if e.Code == codeInvalidTransfer {
		return fmt.Errorf("region %s refused the transfer: %s: %w", region, e.Message, vault.ErrInvalid)
	}
	return fmt.Errorf("region %s answered %d %s: %s", region, resp.StatusCode, e.Code, e.Message)
}

// remoteTarget is a copy session in another region.
type remoteTarget struct {
	rc     remoteCopies
	region string
	path   string
}

func (t *remoteTarget) Missing(ctx context.Context, ids []string) ([]string, error) {
	body, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	var out []string
	err = t.rc.call(ctx, t.region, http.MethodPost, t.path+"/missing", body, &out)
	return out, err
}

func (t *remoteTarget) PutChunks(ctx context.Context, chunks []vault.ChunkData) error {
	return t.rc.call(ctx, t.region, http.MethodPut, t.path+"/chunks", encodeChunks(chunks), nil)
}

func (t *remoteTarget) PutEntries(ctx context.Context, entries []vault.TransferEntry) error {
	body, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	return t.rc.call(ctx, t.region, http.MethodPost, t.path+"/entries", body, nil)
}

func (t *remoteTarget) Commit(ctx context.Context) (*vault.Point, error) {
	var p vault.Point
	if err := t.rc.call(ctx, t.region, http.MethodPost, t.path+"/commit", nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (t *remoteTarget) Abort(ctx context.Context) error {
	return t.rc.call(ctx, t.region, http.MethodDelete, t.path, nil, nil)
}
