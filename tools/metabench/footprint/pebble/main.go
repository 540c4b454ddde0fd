// Tiny program linking pebble: open, put, get.
package main

import (
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

func main() {
	dir, err := os.MkdirTemp("", "footprint")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	fmt.Println(db.Set([]byte("k"), []byte("v"), pebble.Sync))
}
