package mem

import (
	"testing"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/blob/blobtest"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return New() })
}

func TestShared(t *testing.T) {
	blobtest.RunShared(t, func(t *testing.T) (blob.Store, blob.Store) {
		s := New()
		return s, s
	})
}
