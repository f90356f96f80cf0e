package main

// Container exits, learnt from one `docker events` stream for the whole cluster (a `docker wait` per
// container would cost a process each): a waiter registered for a container ID runs when it dies.

import (
	"bufio"
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"
)

type exitWatcher struct {
	clusterID string
	mu        sync.Mutex
	waiters   map[string]func()
}

func newExitWatcher(clusterID string) *exitWatcher {
	return &exitWatcher{clusterID: clusterID, waiters: map[string]func(){}}
}

// watch runs f (on its own goroutine) once container id stops; register before starting the container.
func (e *exitWatcher) watch(id string, f func()) {
	e.mu.Lock()
	e.waiters[id] = f
	e.mu.Unlock()
}

func (e *exitWatcher) forget(id string) {
	e.mu.Lock()
	delete(e.waiters, id)
	e.mu.Unlock()
}

func (e *exitWatcher) fire(id string) {
	e.mu.Lock()
	f := e.waiters[id]
	delete(e.waiters, id)
	e.mu.Unlock()
	if f != nil {
		go f()
	}
}

// run follows the event stream until ctx ends, reconnecting when it breaks; after each (re)connection it
// checks every watched container, so an exit during a gap is not lost.
func (e *exitWatcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, "docker", "events", "--format", "{{.ID}}",
			"--filter", "type=container", "--filter", "event=die", "--filter", "label="+labelCluster+"="+e.clusterID)
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			slog.Warn("docker events", "err", err)
		} else {
			go e.sweep(ctx)
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				e.fire(strings.TrimSpace(lines.Text()))
			}
			_ = cmd.Wait()
			if ctx.Err() == nil {
				slog.Warn("docker events stream ended; reconnecting")
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (e *exitWatcher) sweep(ctx context.Context) {
	time.Sleep(500 * time.Millisecond) // let the new stream subscribe first
	e.mu.Lock()
	ids := make([]string, 0, len(e.waiters))
	for id := range e.waiters {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		info, err := inspectContainer(ctx, id)
		if ctx.Err() != nil {
			return
		}
		if err != nil || !info.State.Running {
			e.fire(id)
		}
	}
}
