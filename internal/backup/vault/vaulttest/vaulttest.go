// Package vaulttest helps tests damage what a vault stores, to show that
// the damage is found where it must be.
package vaulttest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// DamagePacks flips bits all through every data pack of the vault
// repositories under dir (the blobs a vault stores under repo/p, files
// ending .f), leaving the vaults' caches as they are, and returns how
// many it damaged; it fails the test when there is none.
func DamagePacks(t testing.TB, dir string) int {
	t.Helper()
	sep := string(filepath.Separator)
	packs := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), ".f") || !strings.Contains(path, sep+"repo"+sep+"p"+sep) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i := 0; i < len(data); i += 61 {
			data[i] ^= 0x40
		}
		packs++
		return os.WriteFile(path, data, 0o600)
	})
	if err != nil || packs == 0 {
		t.Fatalf("damaged %d packs under %s: %v", packs, dir, err)
	}
	return packs
}
