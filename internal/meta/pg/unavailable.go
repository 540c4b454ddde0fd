package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark/bulwark/internal/meta"
)

// unavailable wraps err with meta.ErrUnavailable when it says the
// database could not be reached or went away: a refused or failed
// connection, one cut in the middle, a server shutting down or starting
// up. The caller's cancellation and the server's answers to the SQL
// (a conflict, a constraint) are left as they are.
func unavailable(err error) error {
	if err == nil || errors.Is(err, meta.ErrUnavailable) || errors.Is(err, meta.ErrUnknownOutcome) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !lostServer(pgErr.Code) {
		return err
	}
	return fmt.Errorf("%w: %w", meta.ErrUnavailable, err)
}

// lostServer reports whether an SQLSTATE says the server cannot serve the
// session: connection exceptions (class 08), the server shutting down or
// starting (57P01-57P03), too many connections (53300).
func lostServer(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"):
		return true
	case code == "57P01", code == "57P02", code == "57P03", code == "53300":
		return true
	}
	return false
}
