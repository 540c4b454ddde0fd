// Tiny program linking bbolt: open, put, get.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

func main() {
	dir, err := os.MkdirTemp("", "footprint")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("v"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	})
	fmt.Println(err)
}
