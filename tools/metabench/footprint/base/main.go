// Baseline for the footprint comparison: the same tiny program without a
// storage engine.
package main

import (
	"fmt"
	"os"
)

func main() {
	f, err := os.CreateTemp("", "footprint")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte("v"))
	fmt.Println(err)
}
