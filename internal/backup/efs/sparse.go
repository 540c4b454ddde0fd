package efs

import (
	"bytes"
	"os"
)

// holeBlock is the size of the runs of zeros a restore leaves as holes:
// a block of the filesystem, on most.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// sparseWriter writes a file from its start, seeking over each aligned
// block of zeros instead of writing it, so that a file backed up with
// holes (read as zeros) is restored with holes, and one with blocks of
// zeros written out takes no room for them either.
type sparseWriter struct {
	f   *os.File
	off int64
}

func (w *sparseWriter) Write(p []byte) (int, error) {
	start := w.off
	data := -1 // start in p of data not yet written; -1 when none
	for i := 0; i < len(p); {
		n := holeBlock - int((start+int64(i))%holeBlock)
		if n > len(p)-i {
			n = len(p) - i
		}
		if n == holeBlock && bytes.Equal(p[i:i+n], zeroBlock[:]) {
			if data >= 0 {
				if _, err := w.f.WriteAt(p[data:i], start+int64(data)); err != nil {
					return data, err
				}
				data = -1
			}
		} else if data < 0 {
			data = i
		}
		i += n
	}
	if data >= 0 {
		if _, err := w.f.WriteAt(p[data:], start+int64(data)); err != nil {
			return data, err
		}
	}
	w.off += int64(len(p))
	return len(p), nil
}

// finish sets the file's size: a hole at its end has not been written.
func (w *sparseWriter) finish() error {
	return w.f.Truncate(w.off)
}
