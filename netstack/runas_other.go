//go:build !linux

package main

import "errors"

// dropPrivileges exists elsewhere only so that the code builds: setuid(2) there changes one
// thread, not the Go process, and the engine attaches to a device on Linux only anyway.
func dropPrivileges(to identity) error {
	return errors.New("--run-as is only supported on Linux")
}
