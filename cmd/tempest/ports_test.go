package main

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `tempest dev` on a taken Temporal port fails with one line naming the port.
func TestDevBusyTemporalPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	var out bytes.Buffer
	err = runDev(context.Background(), devConfig{
		IP: "127.0.0.1", Port: 0, TemporalPort: port, UIPort: 0, InMemory: true,
		Retention: 24 * time.Hour, LogLevel: "error",
	}, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) || strings.Contains(err.Error(), "\n") || out.Len() > 0 {
		t.Fatalf("err = %v, output %q; want one line naming the port", err, out.String())
	}
}
