package main

import (
	"fmt"
	"os"
	"syscall"
)

// dropPrivileges makes a root process `to` for good: no supplementary groups, then the group,
// then the user (in that order: once the user is not root, the group can no longer be changed).
// Setuid from root to another user sets the real, effective and saved ids and clears every
// capability, so nothing can be regained. Since Go 1.16 these calls apply to every thread of
// the process on Linux, not only the calling one, so no goroutine keeps root behind.
//
// A process that is not root has nothing to drop: it may go on only if it already is `to`.
func dropPrivileges(to identity) error {
	if err := checkRunAs(to); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("dropping supplementary groups: %v", err)
	}
	if err := syscall.Setgid(to.gid); err != nil {
		return fmt.Errorf("setgid(%d): %v", to.gid, err)
	}
	if err := syscall.Setuid(to.uid); err != nil {
		return fmt.Errorf("setuid(%d): %v", to.uid, err)
	}
	// Verified rather than trusted: the part that parses packets must not run as root.
	if os.Getuid() != to.uid || os.Geteuid() != to.uid || os.Getgid() != to.gid || os.Getegid() != to.gid {
		return fmt.Errorf("after dropping privileges the process runs as uid %d/%d gid %d/%d (real/effective), not %d:%d",
			os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), to.uid, to.gid)
	}
	if err := syscall.Setuid(0); err == nil {
		return fmt.Errorf("after dropping privileges to %d:%d, setuid(0) still succeeds", to.uid, to.gid)
	}
	return nil
}
