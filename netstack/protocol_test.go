package main

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
)

func TestEncodeHeader(t *testing.T) {
	cases := []struct {
		name  string
		proto string
		src   string
		dst   string
		want  string
	}{
		{"tcp over IPv4", protoTCP, "10.243.254.2:51234", "10.96.0.10:80",
			`{"proto":"tcp","src":"10.243.254.2:51234","dst":"10.96.0.10:80"}` + "\n"},
		{"udp over IPv4", protoUDP, "10.243.254.2:40000", "10.96.0.10:53",
			`{"proto":"udp","src":"10.243.254.2:40000","dst":"10.96.0.10:53"}` + "\n"},
		{"IPv6 is bracketed", protoTCP, "[fd00::2]:51234", "[fd00::1]:80",
			`{"proto":"tcp","src":"[fd00::2]:51234","dst":"[fd00::1]:80"}` + "\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := encodeHeader(c.proto, netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestLongestHeaderFits(t *testing.T) {
	a := netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
	got, err := encodeHeader(protoTCP, a, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > maxHeaderLen || strings.Count(string(got), "\n") != 1 {
		t.Fatalf("header %q breaks the one-line, %d-byte limit", got, maxHeaderLen)
	}
}

func TestAddrPort(t *testing.T) {
	cases := []struct {
		name string
		addr tcpip.Address
		port uint16
		want string
	}{
		{"IPv4", tcpip.AddrFrom4([4]byte{10, 96, 0, 10}), 80, "10.96.0.10:80"},
		{"IPv6", tcpip.AddrFrom16([16]byte{0: 0xfd, 15: 1}), 443, "[fd00::1]:443"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := addrPort(c.addr, c.port).String(); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestAppendFrame(t *testing.T) {
	cases := []struct {
		name     string
		datagram []byte
		want     []byte
	}{
		{"empty datagram", nil, []byte{0, 0}},
		{"short datagram", []byte("hi"), []byte{0, 2, 'h', 'i'}},
		{"length is big-endian", bytes.Repeat([]byte{7}, 0x0102), append([]byte{1, 2}, bytes.Repeat([]byte{7}, 0x0102)...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := appendFrame(nil, c.datagram)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) {
				t.Fatalf("got % x, want % x", got, c.want)
			}
		})
	}
}

func TestAppendFrameRejectsOversize(t *testing.T) {
	if _, err := appendFrame(nil, make([]byte, maxFrameLen+1)); !errors.Is(err, errFrameTooLong) {
		t.Fatalf("got %v, want errFrameTooLong", err)
	}
	if _, err := appendFrame(nil, make([]byte, maxFrameLen)); err != nil {
		t.Fatalf("a %d-byte datagram must fit: %v", maxFrameLen, err)
	}
}

func TestReadFrameRoundTrip(t *testing.T) {
	datagrams := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte{0xab}, maxFrameLen)}
	var stream []byte
	for _, d := range datagrams {
		var err error
		if stream, err = appendFrame(stream, d); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(stream)
	buf := make([]byte, maxFrameLen)
	for i, want := range datagrams {
		got, err := readFrame(r, buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
	}
	if _, err := readFrame(r, buf); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want io.EOF", err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
	}{
		{"inside the length", []byte{0}},
		{"inside the datagram", []byte{0, 5, 'a', 'b'}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readFrame(bytes.NewReader(c.stream), make([]byte, maxFrameLen))
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}
