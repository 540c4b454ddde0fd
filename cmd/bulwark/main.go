// Command bulwark runs Bulwark: an S3-compatible object store with
// versioning, for one or more regions on your own machines.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark/bulwark/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &cli.Main{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv}
	os.Exit(m.Run(ctx, os.Args[1:]))
}
