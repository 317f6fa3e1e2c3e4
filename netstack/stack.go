package main

import (
	"fmt"
	"time"

	"github.com/xjasonlyu/tun2socks/v2/core/option"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const (
	// timeWait replaces gVisor's 60 s TIME_WAIT. A forwarded connection has no listening
	// endpoint, so a new SYN that reuses the 4-tuple of a connection still in TIME_WAIT is
	// dropped; with 60 s, 30 of 4,000 short-lived connections stalled for up to a minute.
	// Linux lets a client reuse its own TIME_WAIT port after 1 s (tcp_tw_reuse), so at 1 s here
	// about one connection in a hundred still met the old one and waited a SYN retransmit
	// (1 s). TIME_WAIT guards against segments delayed in the network; between the kernel and
	// this stack, over a device in the same host, nothing is delayed for 100 ms.
	timeWait = 100 * time.Millisecond

	// Buffer sizes. Throughput is set by the MTU (gVisor's cost is per packet: at 1500 it
	// moved ~100 MB/s on 2 CPU-s per 300 MB, at 65000 ~550 MB/s on 0.3 CPU-s), but a 64 KB
	// segment is 1/16 of a 1 MB buffer, so the buffers must be able to grow for the window
	// never to be the limit when the daemon's side drains in bursts. Auto-tuning (below) grows
	// a busy connection's buffers towards the maximum; memory is taken only as data queues,
	// so idle connections do not pay for it. (On loopback with a prompt reader, tun2socks's
	// 1-4 MB and no auto-tuning measured the same.)
	bufferMin     = 4 << 10
	bufferDefault = 1 << 20
	bufferMax     = 8 << 20

	// maxPendingSYN bounds the connection attempts held while the daemon answers (up to
	// statusWait each); each holds a goroutine and a unix connection, and a SYN flood must
	// not exhaust either. Beyond it new SYNs are dropped and the client retries.
	maxPendingSYN = 1024
)

// newStack builds the gVisor stack on the TUN's link endpoint. It accepts every TCP and UDP
// flow to any address and hands each to onTCP / onUDP.
func newStack(link stack.LinkEndpoint, onTCP func(*tcp.ForwarderRequest), onUDP func(*udp.ForwarderRequest)) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})

	opts := []option.Option{
		// tun2socks's tuned defaults (TTL, no Nagle, RACK loss detection, reno), then ours.
		option.WithDefault(),
		option.WithTCPSendBufferSizeRange(bufferMin, bufferDefault, bufferMax),
		option.WithTCPReceiveBufferSizeRange(bufferMin, bufferDefault, bufferMax),
		// tun2socks turns receive auto-tuning off; on, the window scale offered in the
		// handshake is sized for bufferMax, so a bulk transfer's window can grow past 1 MB.
		option.WithTCPModerateReceiveBuffer(true),
		option.WithTCPSACKEnabled(true),
		func(s *stack.Stack) error {
			tw := tcpip.TCPTimeWaitTimeoutOption(timeWait)
			if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); err != nil {
				return fmt.Errorf("set TCP TIME_WAIT timeout: %s", err)
			}
			return nil
		},
	}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			s.Close()
			return nil, err
		}
	}

	// The TCP forwarder holds each SYN until onTCP decides: it sees every SYN that matches no
	// endpoint, which is every new connection since nothing listens.
	tcpFwd := tcp.NewForwarder(s, 0, maxPendingSYN, onTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(s, onUDP)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)

	// The handlers are in place before the NIC exists, so no packet reaches a half-built stack.
	nic := s.NextNICID()
	if err := s.CreateNIC(nic, link); err != nil {
		s.Close()
		return nil, fmt.Errorf("create NIC: %s", err)
	}
	// Promiscuous mode accepts packets for any destination address; spoofing lets the stack
	// answer from those addresses, which it does not own.
	if err := s.SetPromiscuousMode(nic, true); err != nil {
		s.Close()
		return nil, fmt.Errorf("set promiscuous mode: %s", err)
	}
	if err := s.SetSpoofing(nic, true); err != nil {
		s.Close()
		return nil, fmt.Errorf("set spoofing: %s", err)
	}
	// Every reply goes back out of the one NIC.
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nic},
		{Destination: header.IPv6EmptySubnet, NIC: nic},
	})
	return s, nil
}
