package main

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// peerClosed reports whether the other end of a unix connection has closed it entirely rather
// than only ended its sending side: the kernel then flags the socket POLLHUP.
func peerClosed(c halfCloser) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	hup := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			hup = fds[0].Revents&unix.POLLHUP != 0
		}
	})
	return hup
}
