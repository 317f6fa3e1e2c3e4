package main

import (
	"strings"
	"testing"
)

func TestParseRunAs(t *testing.T) {
	cases := []struct {
		in   string
		want identity
		err  string
	}{
		{in: "65534:65534", want: identity{uid: 65534, gid: 65534}},
		{in: "1000:100", want: identity{uid: 1000, gid: 100}},
		{in: "1000:0", want: identity{uid: 1000, gid: 0}},
		{in: "4294967294:1", want: identity{uid: 4294967294, gid: 1}},
		{in: "1000", err: "is not UID:GID"},
		{in: "", err: "is not UID:GID"},
		{in: ":1000", err: "user \"\" is not a number"},
		{in: "1000:", err: "group \"\" is not a number"},
		{in: "nobody:nogroup", err: "user \"nobody\" is not a number"},
		{in: "-1:1000", err: "is not a number"},
		{in: "+5:1000", err: "is not a number"},
		{in: "1000:1000:1", err: "group \"1000:1\" is not a number"},
		{in: " 1000:1000", err: "is not a number"},
		{in: "4294967295:1", err: "out of range"},
		{in: "1:4294967296", err: "out of range"},
		{in: "0:0", err: "names root"},
		{in: "00:1000", err: "names root"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := parseRunAs(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("parseRunAs(%q) = %v, %v; want an error containing %q", c.in, got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("parseRunAs(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
		})
	}
}

func TestRunRejectsABadRunAsBeforeTouchingAnything(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"--device", "tpts99", "--mtu", "1500", "--flows", "/nonexistent", "--run-as", "nobody"}, strings.NewReader(""), &strings.Builder{}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "is not UID:GID") {
		t.Fatalf("exit %d, stderr %q; want 2 and the reason", code, stderr.String())
	}
}
