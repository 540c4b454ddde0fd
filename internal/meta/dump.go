package meta

import "context"

// Dumper is a Store whose keyspaces can be listed and whose sequences can
// be read and set: what copying a region's metadata from one store to
// another needs beyond Store (Copy, Compare, bulwark migrate). Both
// implementations provide it. Its methods are for a store no region is
// serving: they run outside the group commit, and SetSeq is not part of
// any transaction.
type Dumper interface {
	Store
	// Spaces returns, in ascending order, the keyspaces that hold a key or
	// whose sequence has handed out a value.
	Spaces(ctx context.Context) ([]string, error)
	// Seq returns the last value NextSeq(space) handed out, 0 when none.
	Seq(ctx context.Context, space string) (uint64, error)
	// SetSeq moves the keyspace's sequence to n: the next NextSeq(space)
	// returns n+1. A sequence never moves back: n below its position is
	// an error, n at its position changes nothing.
	SetSeq(ctx context.Context, space string, n uint64) error
}
