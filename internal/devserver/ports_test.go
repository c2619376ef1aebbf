package devserver

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
)

// A taken frontend port is one error naming it; the server's own reaction is a fatal log
// with a stack trace that exits the process.
func TestBusyTemporalPortIsOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Options{InMemory: true, Port: port})
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err == nil || !strings.Contains(err.Error(), "Temporal port") || !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line naming %s", err, addr)
	}
}
