package main

import (
	"log"
	"sync"
	"time"
)

// flowLog reports flow failures at a bounded rate: a daemon that is down fails every flow,
// and a line per flow would drown the log that the user reads.
type flowLog struct {
	out *log.Logger

	mu         sync.Mutex
	window     time.Time // start of the current window
	shown      int       // lines printed in the current window
	suppressed int       // lines dropped in the current window
}

const (
	flowLogWindow = time.Minute
	flowLogBurst  = 10
)

func (l *flowLog) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.window) >= flowLogWindow {
		if l.suppressed > 0 {
			l.out.Printf("%d more flow errors in the last %v were not shown", l.suppressed, now.Sub(l.window).Round(time.Second))
		}
		l.window, l.shown, l.suppressed = now, 0, 0
	}
	if l.shown >= flowLogBurst {
		l.suppressed++
		return
	}
	l.shown++
	l.out.Printf(format, args...)
}
