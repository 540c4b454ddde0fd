package fs

import (
	"testing"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/blob/blobtest"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
