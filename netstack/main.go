// Command tp-netstack is the packet engine of outbound access: it runs a userspace TCP/IP
// stack (gVisor) on an existing TUN device and hands every TCP and UDP flow that the
// workstation sends into the TUN to the network daemon over a unix socket (see protocol.go).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	logger := log.New(stderr, "tp-netstack: ", 0)

	fs := flag.NewFlagSet("tp-netstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	deviceName := fs.String("device", "", "name of an existing TUN device owned by this user (ip tuntap add dev NAME mode tun user UID)")
	mtu := fs.Uint("mtu", 0, "the MTU already set on the device")
	flowsPath := fs.String("flows", "", "unix socket of the network daemon, which carries each flow to the cluster")
	runAs := fs.String("run-as", "", "UID:GID to become, for good, once the device is open (when started as root)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var owner *identity
	if *runAs != "" {
		id, err := parseRunAs(*runAs)
		if err != nil {
			logger.Print(err)
			return 2
		}
		owner = &id
	}
	switch {
	case fs.NArg() > 0:
		logger.Printf("unexpected argument %q", fs.Arg(0))
		return 2
	case *deviceName == "" || *flowsPath == "" || *mtu == 0:
		logger.Print("--device, --mtu and --flows are all required")
		return 2
	case *mtu < 576 || *mtu > 65535:
		// 576 is the least an IPv4 host must accept; 65535 is the most an IP packet can be.
		logger.Printf("--mtu %d is outside 576..65535", *mtu)
		return 2
	}
	if owner != nil {
		if err := checkRunAs(*owner); err != nil {
			logger.Print(err)
			return 1
		}
	}

	// Registered before anything slow, so that a signal during start-up still exits cleanly.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	hintUID := os.Getuid()
	if owner != nil {
		hintUID = owner.uid
	}
	dev, err := openDevice(*deviceName, uint32(*mtu), hintUID)
	if err != nil {
		logger.Print(err)
		return 1
	}
	// With --run-as the engine starts as root and becomes the device's owner right here, after
	// opening the device and before it reads a packet or dials the flow socket. Root is needed
	// only for the open: many hosts make /dev/net/tun mode 0600, so an unprivileged process
	// cannot open the clone device at all, not even to attach to a TUN it owns. Everything
	// after this point parses packets from anything on the host that routes into the device,
	// and that part keeps no privilege. The open descriptor stays usable after the drop.
	if owner != nil {
		if err := dropPrivileges(*owner); err != nil {
			dev.Close()
			logger.Printf("cannot drop privileges: %v", err)
			return 1
		}
		logger.Printf("opened %s, now running as %d:%d", *deviceName, owner.uid, owner.gid)
	}
	eng := &engine{flowsPath: *flowsPath, log: &flowLog{out: logger}}
	s, err := newStack(dev, eng.handleTCP, eng.handleUDP)
	if err != nil {
		logger.Printf("starting the network stack on %s: %v", *deviceName, err)
		return 1
	}
	defer s.Close()

	// The daemon waits for this exact line before it routes anything into the device.
	if _, err := fmt.Fprintln(stdout, "ready"); err != nil {
		return 1
	}
	logger.Printf("attached to %s (MTU %d); flows go to %s", *deviceName, *mtu, *flowsPath)

	// stdin is a pipe from the parent: its end means the parent is gone, and an engine left
	// behind would keep holding the device.
	parentGone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, stdin)
		parentGone <- err
	}()

	select {
	case sig := <-signals:
		logger.Printf("stopping on %v", sig)
	case err := <-parentGone:
		if err != nil && !errors.Is(err, os.ErrClosed) {
			logger.Printf("stopping: reading stdin: %v", err)
		} else {
			logger.Print("stopping: stdin closed (the parent is gone)")
		}
	}
	return 0
}
