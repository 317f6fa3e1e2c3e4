package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// The flow protocol on the user daemon's unix socket. Its other end is
// core/src/outbound/flow-server.ts, so a change here is a change to that contract.
//
// One unix connection per flow: per TCP connection, and per UDP (source, destination) pair.
//  1. The engine writes one header line, compact JSON and "\n", at most maxHeaderLen bytes:
//     {"proto":"tcp","src":"10.243.254.2:51234","dst":"10.96.0.10:80"}, src being the
//     workstation's side; IPv6 addresses are bracketed ("[fd00::1]:80").
//  2. TCP: the daemon answers one status byte. On statusConnected the engine completes the
//     client's handshake and bytes flow both ways, each direction's end passed on as a
//     half-close; on anything else, or no answer within statusWait, the client gets a RST.
//  3. UDP: frames both ways, each a 2-byte big-endian length and one datagram. Either side
//     closing ends the flow; the engine closes it after udpIdle without a datagram.

// maxHeaderLen bounds the header line so that the daemon can read it with a fixed buffer.
const maxHeaderLen = 512

// maxFrameLen is the most a 2-byte length prefix can say; no UDP payload is larger.
const maxFrameLen = 0xffff

// The one status byte with which the daemon answers a TCP flow's header.
const (
	statusConnected   byte = 0 // the cluster side connected; raw bytes follow both ways
	statusRefused     byte = 1 // the cluster side refused the connection
	statusUnreachable byte = 2 // no route, timeout, or any other failure
)

// Flow protocols as named in the header.
const (
	protoTCP = "tcp"
	protoUDP = "udp"
)

// flowHeader is the first line the engine writes on each flow connection. The field order
// is the order on the wire.
type flowHeader struct {
	Proto string `json:"proto"`
	Src   string `json:"src"`
	Dst   string `json:"dst"`
}

// encodeHeader renders the header line: compact JSON and a newline. Addresses are in
// netip's form, so IPv6 ones are bracketed ("[fd00::1]:80").
func encodeHeader(proto string, src, dst netip.AddrPort) ([]byte, error) {
	b, err := json.Marshal(flowHeader{Proto: proto, Src: src.String(), Dst: dst.String()})
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if len(b) > maxHeaderLen {
		return nil, fmt.Errorf("flow header is %d bytes, more than %d", len(b), maxHeaderLen)
	}
	return b, nil
}

// addrPort converts a gVisor address and port; gVisor addresses are 4 or 16 bytes.
func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	if a.Len() == 4 {
		return netip.AddrPortFrom(netip.AddrFrom4(a.As4()), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a.As16()), port)
}

var errFrameTooLong = errors.New("datagram longer than a frame can carry")

// appendFrame appends one UDP frame (2-byte big-endian length, then the datagram) to dst, so
// that the caller can send it with a single write.
func appendFrame(dst, datagram []byte) ([]byte, error) {
	if len(datagram) > maxFrameLen {
		return dst, errFrameTooLong
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(datagram)))
	return append(dst, datagram...), nil
}

// readFrame reads one UDP frame into buf, which must hold maxFrameLen bytes, and returns the
// datagram. It returns io.EOF when the stream ends between frames and io.ErrUnexpectedEOF
// when it ends inside one.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var size [2]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(size[:]))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf[:n], nil
}
