package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// identity is the user and group that --run-as names.
type identity struct {
	uid, gid int
}

// parseRunAs reads --run-as UID:GID: two decimal ids, the user not root (dropping to root
// would drop nothing, and the check that root cannot be regained would be meaningless).
func parseRunAs(s string) (identity, error) {
	u, g, ok := strings.Cut(s, ":")
	if !ok {
		return identity{}, fmt.Errorf("--run-as %q is not UID:GID", s)
	}
	uid, err := parseID(u)
	if err != nil {
		return identity{}, fmt.Errorf("--run-as %q: user %v", s, err)
	}
	gid, err := parseID(g)
	if err != nil {
		return identity{}, fmt.Errorf("--run-as %q: group %v", s, err)
	}
	if uid == 0 {
		return identity{}, fmt.Errorf("--run-as %q names root; it must name the unprivileged owner of the device", s)
	}
	return identity{uid: uid, gid: gid}, nil
}

// parseID accepts a numeric id only: names would need the user database, which a static
// binary started with an empty environment should not depend on.
func parseID(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	// (uint32)-1 is not an id: to setuid(2) and setgid(2) it means "leave unchanged".
	if err != nil || n == 1<<32-1 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return int(n), nil
}

// checkRunAs fails unless the process can become `to`: it is root, or already is `to` (then
// there is nothing to drop). Checked before the device is opened, so that the error names the
// real cause rather than a failed open.
func checkRunAs(to identity) error {
	if os.Geteuid() == 0 || (os.Geteuid() == to.uid && os.Getegid() == to.gid) {
		return nil
	}
	return fmt.Errorf("--run-as %d:%d needs root, but this process runs as %d:%d", to.uid, to.gid, os.Geteuid(), os.Getegid())
}
