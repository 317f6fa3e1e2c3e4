//go:build !linux

package main

import (
	"errors"

	"github.com/xjasonlyu/tun2socks/v2/core/device"
)

// openDevice exists elsewhere only so that the protocol code builds and tests on any
// workstation: a persistent TUN handed to an unprivileged user is a Linux facility.
func openDevice(name string, mtu uint32, ownerUID int) (device.Device, error) {
	return nil, errors.New("attaching to an existing TUN device is only supported on Linux")
}
