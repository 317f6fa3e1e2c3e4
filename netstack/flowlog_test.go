package main

import (
	"bytes"
	"log"
	"strings"
	"testing"
	"time"
)

func TestFlowLogShowsABurstThenCountsTheRest(t *testing.T) {
	var out bytes.Buffer
	l := &flowLog{out: log.New(&out, "", 0)}
	for i := 0; i < flowLogBurst+5; i++ {
		l.Printf("flow %d failed", i)
	}
	if got := strings.Count(out.String(), "\n"); got != flowLogBurst {
		t.Fatalf("printed %d lines in one window, want %d", got, flowLogBurst)
	}

	// Once the window has passed, the next line first reports what was held back.
	out.Reset()
	l.window = time.Now().Add(-flowLogWindow)
	l.Printf("later failure")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "5 more flow errors") || lines[1] != "later failure" {
		t.Fatalf("got %q", lines)
	}
}
