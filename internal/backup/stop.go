package backup

import (
	"context"
	"errors"
)

// Reasons a running job is stopped, kept as the cause of its context so
// the job records why it ended.
var (
	errStoppedByUser = errors.New("The backup job was stopped by StopBackupJob.")
	errOverdue       = errors.New("The backup job did not complete within the completion window and was canceled.")
)

// track runs fn with a context StopBackupJob and the completion window can
// cancel, for the job's whole run.
func (s *Service) track(ctx context.Context, jobID string, fn func(ctx context.Context)) {
	jctx, cancel := context.WithCancelCause(ctx)
	s.runMu.Lock()
	if s.running == nil {
		s.running = map[string]context.CancelCauseFunc{}
	}
	s.running[jobID] = cancel
	s.runMu.Unlock()
	defer func() {
		s.runMu.Lock()
		delete(s.running, jobID)
		s.runMu.Unlock()
		cancel(nil)
	}()
	fn(jctx)
}

// stopped says whether a job's context was canceled on purpose, and why.
func stopped(ctx context.Context) (error, bool) {
	cause := context.Cause(ctx)
	if errors.Is(cause, errStoppedByUser) || errors.Is(cause, errOverdue) {
		return cause, true
	}
	return nil, false
}

// StopBackupJob stops a job of the account that has not ended: it ends
// ABORTED, and the recovery point it was writing is not kept.
func (s *Service) StopBackupJob(ctx context.Context, account, id string) error {
	j, err := s.DescribeBackupJob(ctx, account, id)
	if err != nil {
		return err
	}
	if j.State != JobCreated && j.State != JobRunning {
		return errorf(ErrInvalidRequest, "Backup job %s is %s and cannot be stopped.", id, j.State)
	}
	return s.cancelJob(id, errStoppedByUser)
}

// cancelJob cancels a running job's context with a reason.
func (s *Service) cancelJob(id string, why error) error {
	s.runMu.Lock()
	cancel := s.running[id]
	s.runMu.Unlock()
	if cancel == nil {
		return errorf(ErrInvalidRequest, "Backup job %s is not running in this region.", id)
	}
	cancel(why)
	return nil
}
