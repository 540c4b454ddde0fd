package checksum

import (
	"bytes"
	"math/rand"
	"testing"
)

func TestCombineMatchesWholeData(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, alg := range []Algorithm{CRC32, CRC32C, CRC64NVME} {
		for _, sizes := range [][2]int{{0, 5}, {5, 0}, {1, 1}, {1000, 3}, {70000, 123457}} {
			a, b := make([]byte, sizes[0]), make([]byte, sizes[1])
			rng.Read(a)
			rng.Read(b)
			sum := func(p []byte) []byte { h := alg.New(); h.Write(p); return h.Sum(nil) }
			got, err := Combine(alg, sum(a), sum(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if want := sum(append(append([]byte{}, a...), b...)); !bytes.Equal(got, want) {
				t.Fatalf("%s %v: combined %x, want %x", alg, sizes, got, want)
			}
		}
	}
	if _, err := Combine(SHA256, nil, nil, 1); err == nil {
		t.Fatal("SHA256 combined")
	}
}
