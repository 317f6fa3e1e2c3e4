package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// statusWait bounds how long a SYN is held for the daemon's answer. The daemon dials the
// cluster meanwhile; a client's own connect usually gives up after some tens of seconds, and
// by 10 s it has retransmitted its SYN three times, so an answer later than that helps no one.
const statusWait = 10 * time.Second

// copyBufferSize is large enough to move a whole 64 KB-MTU segment per read.
const copyBufferSize = 128 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// engine carries the flows that the stack accepts to the daemon's unix socket.
type engine struct {
	flowsPath string
	log       *flowLog
}

// handleTCP runs in its own goroutine for each new connection attempt. The SYN stays
// unanswered until the daemon says whether the cluster side connected, so the workstation's
// client sees the cluster's own outcome: connected, or refused.
func (e *engine) handleTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	src, dst := addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort)

	conn, status, err := e.openTCPFlow(src, dst)
	if status != statusConnected {
		// Refused gets a RST, as a real refusal would. So do "unreachable", a daemon that is
		// gone, a late or malformed answer: the client then fails at once instead of
		// retransmitting its SYN for a couple of minutes. (An ICMP unreachable would be more
		// precise, but the forwarder has no way to send one.)
		r.Complete(true)
		if conn != nil {
			conn.Close()
		}
		if err != nil {
			e.log.Printf("tcp %s -> %s: %v", src, dst, err)
		}
		return
	}

	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq) // sends the SYN-ACK and waits for the handshake's ACK
	if terr != nil {
		r.Complete(true)
		conn.Close()
		e.log.Printf("tcp %s -> %s: handshake with the client: %s", src, dst, terr)
		return
	}
	r.Complete(false)
	splice(gonet.NewTCPConn(&wq, ep), conn, ep.Abort)
}

// openTCPFlow dials the daemon, sends the header and reads the status byte, all within
// statusWait. err is set only for failures worth logging; a status from the daemon is not one.
func (e *engine) openTCPFlow(src, dst netip.AddrPort) (*net.UnixConn, byte, error) {
	deadline := time.Now().Add(statusWait)
	conn, err := dialFlow(e.flowsPath, deadline, protoTCP, src, dst)
	if err != nil {
		return nil, statusUnreachable, err
	}
	var status [1]byte
	if _, err := io.ReadFull(conn, status[:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("the daemon closed the flow before answering")
		} else {
			err = fmt.Errorf("reading the daemon's answer: %w", err)
		}
		return conn, statusUnreachable, err
	}
	switch status[0] {
	case statusConnected, statusRefused, statusUnreachable:
	default:
		return conn, statusUnreachable, fmt.Errorf("the daemon answered with unknown status %d", status[0])
	}
	// The deadline covered only the answer; the flow itself may stay open for as long as
	// both ends want.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return conn, statusUnreachable, err
	}
	return conn, status[0], nil
}

// dialFlow connects to the daemon's socket and writes a flow's header line. The returned
// connection keeps the deadline, which the caller clears once the flow is set up.
func dialFlow(path string, deadline time.Time, proto string, src, dst netip.AddrPort) (*net.UnixConn, error) {
	hdr, err := encodeHeader(proto, src, dst)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Deadline: deadline}
	c, err := d.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("connecting to the daemon: %w", err)
	}
	conn := c.(*net.UnixConn)
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.Write(hdr); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sending the flow header: %w", err)
	}
	return conn, nil
}

// halfCloser is a stream whose sending side can be ended on its own: gVisor's TCP
// connection and the unix connection both are.
type halfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// splice copies bytes both ways between the workstation's client (a, gVisor's side) and the
// daemon (b) until both directions are done. The end of one direction's data is passed on as a
// half-close, so a client that shuts down its sending side still gets its answer; an error in
// either direction ends both.
//
// A unix socket has no reset: when the cluster side of a flow fails (the manager went away),
// the daemon can only close the socket, which reads here as a plain end of data. Told apart
// from a half-close by the peer having closed both directions (POLLHUP) while ours to it is
// still open, it is passed on as what it is, a reset (abortClient), so the client sees an error
// rather than a response that merely ends early.
func splice(a, b halfCloser, abortClient func()) {
	var (
		wg       sync.WaitGroup
		once     sync.Once
		closeAll = func() { once.Do(func() { a.Close(); b.Close() }) }
		toDaemon atomic.Bool // our direction to the daemon has ended cleanly
	)
	pipe := func(dst, src halfCloser, fromDaemon bool) {
		defer wg.Done()
		buf := copyBuffers.Get().(*[]byte)
		defer copyBuffers.Put(buf)
		if _, err := io.CopyBuffer(dst, src, *buf); err != nil {
			if fromDaemon {
				abortClient()
			}
			closeAll()
			return
		}
		if fromDaemon && !toDaemon.Load() && peerClosed(src) {
			abortClient()
			closeAll()
			return
		}
		if err := dst.CloseWrite(); err != nil {
			closeAll()
			return
		}
		if !fromDaemon {
			toDaemon.Store(true)
		}
	}
	wg.Add(2)
	go pipe(a, b, true)
	go pipe(b, a, false)
	wg.Wait()
	closeAll()
}
