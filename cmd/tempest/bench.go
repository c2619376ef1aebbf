package main

import (
	"context"
	"io"
)

func benchCmd(ctx context.Context, args []string, out io.Writer) error { return nil }
