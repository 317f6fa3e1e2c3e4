package main

import (
	"fmt"
	"net"
	"os"

	"github.com/xjasonlyu/tun2socks/v2/core/device"
	"github.com/xjasonlyu/tun2socks/v2/core/device/tun"
)

// openDevice attaches to a persistent TUN device that root created beforehand and gave to
// ownerUID. Attaching to one's own TUN needs no capability; creating one, or setting its MTU
// or addresses, needs CAP_NET_ADMIN, so this never tries to. Run as root (before --run-as
// drops it), the same open also succeeds where /dev/net/tun is mode 0600.
func openDevice(name string, mtu uint32, ownerUID int) (device.Device, error) {
	hint := fmt.Sprintf("it must be created first, by root: ip tuntap add dev %s mode tun user %d; ip link set dev %s mtu %d up",
		name, ownerUID, name, mtu)
	// Checked first because, run as root, TUNSETIFF on a missing name would quietly create a
	// new, unconfigured device instead of failing.
	if _, err := net.InterfaceByName(name); err != nil {
		return nil, fmt.Errorf("TUN device %s does not exist; %s", name, hint)
	}
	// Checked on its own because tun2socks reports this failure and a wrong owner alike.
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot attach to TUN device %s: %v; this user needs read-write access to /dev/net/tun; start the engine as root with --run-as UID:GID instead", name, err)
	}
	f.Close()
	// MTU 0: tun2socks then only reads the device's MTU (SIOCGIFMTU, unprivileged).
	dev, err := tun.Open(name, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot open TUN device %s (%v); %s", name, err, hint)
	}
	// The MTU sizes gVisor's segments, so it must be the device's; a mismatch means the
	// device was not set up the way the caller believes.
	if got := dev.MTU(); got != mtu {
		dev.Close()
		return nil, fmt.Errorf("TUN device %s has MTU %d, not %d as --mtu says; set it first: ip link set dev %s mtu %d",
			name, got, mtu, name, mtu)
	}
	return dev, nil
}
