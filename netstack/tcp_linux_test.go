package main

import (
	"net"
	"path/filepath"
	"testing"
)

// unixPair returns both ends of a real unix stream connection.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, _ := l.AcceptUnix()
		accepted <- c
	}()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func TestPeerClosedTellsAHalfCloseFromAClose(t *testing.T) {
	ours, theirs := unixPair(t)
	if peerClosed(ours) {
		t.Fatal("an open peer reads as closed")
	}
	if err := theirs.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if peerClosed(ours) {
		t.Fatal("a peer that only ended its sending side reads as closed")
	}
	theirs.Close()
	if !peerClosed(ours) {
		t.Fatal("a peer that closed the connection does not read as closed")
	}
}
