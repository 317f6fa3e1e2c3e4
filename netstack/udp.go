package main

import (
	"bufio"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// udpIdle ends a UDP flow after this long without a datagram either way. UDP has no end of
// its own, and an idle flow holds a unix connection and the daemon's cluster-side socket.
const udpIdle = 60 * time.Second

// handleUDP runs inline in the stack's packet path for the first datagram of each
// (source, destination) pair, so it only creates the endpoint and leaves the rest to a
// goroutine. The endpoint is bound to that pair: later datagrams go straight to it, and
// those arriving before the daemon answers wait in its receive buffer.
func (e *engine) handleUDP(r *udp.ForwarderRequest) {
	id := r.ID()
	src, dst := addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort)
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		e.log.Printf("udp %s -> %s: %s", src, dst, err)
		return
	}
	go e.runUDPFlow(gonet.NewUDPConn(&wq, ep), src, dst)
}

func (e *engine) runUDPFlow(local *gonet.UDPConn, src, dst netip.AddrPort) {
	remote, err := dialFlow(e.flowsPath, time.Now().Add(statusWait), protoUDP, src, dst)
	if err != nil {
		local.Close()
		e.log.Printf("udp %s -> %s: %v", src, dst, err)
		return
	}
	if err := remote.SetDeadline(time.Time{}); err != nil {
		local.Close()
		remote.Close()
		return
	}
	relayUDP(local, remote)
}

// relayUDP carries datagrams between the workstation's endpoint and the daemon, one frame per
// datagram, until either side closes or the flow has been idle for udpIdle.
func relayUDP(local *gonet.UDPConn, remote *net.UnixConn) {
	var (
		lastActive atomic.Int64 // UnixNano of the last datagram either way
		once       sync.Once
		done       = make(chan struct{})
	)
	touch := func() { lastActive.Store(time.Now().UnixNano()) }
	stop := func() {
		once.Do(func() {
			close(done)
			local.Close()
			remote.Close()
		})
	}
	touch()

	go func() { // workstation -> daemon
		defer stop()
		buf := make([]byte, maxFrameLen)
		frame := make([]byte, 0, 2+maxFrameLen)
		for {
			n, err := local.Read(buf)
			if err != nil {
				return
			}
			// buf holds at most maxFrameLen bytes, so the datagram always fits a frame.
			frame, _ = appendFrame(frame[:0], buf[:n])
			if _, err := remote.Write(frame); err != nil {
				return
			}
			touch()
		}
	}()

	go func() { // daemon -> workstation
		defer stop()
		br := bufio.NewReaderSize(remote, 2+maxFrameLen)
		buf := make([]byte, maxFrameLen)
		for {
			datagram, err := readFrame(br, buf)
			if err != nil {
				return
			}
			// A datagram the stack cannot send (too large, say) is dropped, as a network
			// would; the flow goes on.
			_, _ = local.Write(datagram)
			touch()
		}
	}()

	// One timer owned by this goroutine; the copiers only record activity.
	timer := time.NewTimer(udpIdle)
	defer timer.Stop()
	for {
		select {
		case <-done:
			return
		case <-timer.C:
			idle := time.Since(time.Unix(0, lastActive.Load()))
			if idle >= udpIdle {
				stop()
				return
			}
			timer.Reset(udpIdle - idle)
		}
	}
}
