package main

// Probes (startup, liveness, readiness) and lifecycle hooks (postStart, preStop), run from goroutines
// that report to the pod's worker.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// action is what a probe or a hook does: one of exec, httpGet, tcpSocket, grpc, sleep.
type action struct {
	exec  *v1.ExecAction
	http  *v1.HTTPGetAction
	tcp   *v1.TCPSocketAction
	grpc  *v1.GRPCAction
	sleep *v1.SleepAction
}

func probeAction(p *v1.Probe) action {
	return action{exec: p.Exec, http: p.HTTPGet, tcp: p.TCPSocket, grpc: p.GRPC}
}

func lifecycleHook(c *v1.Container, preStop bool) *action {
	if c.Lifecycle == nil {
		return nil
	}
	h := c.Lifecycle.PostStart
	if preStop {
		h = c.Lifecycle.PreStop
	}
	if h == nil {
		return nil
	}
	return &action{exec: h.Exec, http: h.HTTPGet, tcp: h.TCPSocket, sleep: h.Sleep}
}

// do runs the action against container id at ip; it reports success and a message for events.
func do(ctx context.Context, a action, spec *v1.Container, id, ip string) (bool, string) {
	switch {
	case a.exec != nil:
		if len(a.exec.Command) == 0 {
			return false, "exec with an empty command"
		}
		out, err := docker(ctx, append([]string{"exec", id}, a.exec.Command...)...)
		if ctx.Err() == context.DeadlineExceeded {
			return false, fmt.Sprintf("command %q timed out", strings.Join(a.exec.Command, " "))
		}
		if err != nil {
			return false, strings.TrimSpace(out + " " + err.Error())
		}
		return true, out
	case a.http != nil:
		return doHTTP(ctx, a.http, spec, ip)
	case a.tcp != nil:
		port, err := resolvePort(a.tcp.Port, spec)
		if err != nil {
			return false, err.Error()
		}
		host := ip
		if a.tcp.Host != "" {
			host = a.tcp.Host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	case a.grpc != nil:
		return doGRPC(ctx, a.grpc, ip)
	case a.sleep != nil:
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(a.sleep.Seconds) * time.Second):
		}
		return true, ""
	}
	return false, "no probe action"
}

func resolvePort(port intstr.IntOrString, spec *v1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range spec.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("port %q not found in container %s", port.StrVal, spec.Name)
}

func doHTTP(ctx context.Context, h *v1.HTTPGetAction, spec *v1.Container, ip string) (bool, string) {
	port, err := resolvePort(h.Port, spec)
	if err != nil {
		return false, err.Error()
	}
	scheme := "http"
	if h.Scheme == v1.URISchemeHTTPS {
		scheme = "https"
	}
	host := ip
	if h.Host != "" {
		host = h.Host
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/1.36")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
		} else {
			req.Header.Add(hd.Name, hd.Value)
		}
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as the kubelet's
		DisableKeepAlives: true,
		Proxy:             nil,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10*1024))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// startProbes starts the container's probe loops; without a startup probe the container counts as started.
func (w *podWorker) startProbes(c *ctr) {
	ctx, cancel := context.WithCancel(w.ctx)
	c.probeCancel = cancel
	gate := make(chan struct{})
	spec, gen, id, ip := c.spec, c.gen, c.id, w.podIP
	startedAt := c.startedAt
	if spec.StartupProbe == nil {
		c.started = true
		close(gate)
		if spec.ReadinessProbe == nil {
			c.ready = true
		}
	} else {
		go w.probeLoop(ctx, "Startup", spec.StartupProbe, c.ref, spec, id, ip, startedAt, nil, func(ok bool) bool {
			w.post(func() {
				if gen != c.gen {
					return
				}
				if ok {
					c.started = true
					if spec.ReadinessProbe == nil {
						c.ready = true
					}
					close(gate)
				} else {
					w.killForRestart(c, gen, fmt.Sprintf("Container %s failed startup probe, will be restarted", spec.Name))
				}
			})
			return false
		})
	}
	if spec.ReadinessProbe != nil {
		go w.probeLoop(ctx, "Readiness", spec.ReadinessProbe, c.ref, spec, id, ip, startedAt, gate, func(ok bool) bool {
			w.post(func() {
				if gen == c.gen && c.running {
					c.ready = ok
				}
			})
			return true
		})
	}
	if spec.LivenessProbe != nil {
		go w.probeLoop(ctx, "Liveness", spec.LivenessProbe, c.ref, spec, id, ip, startedAt, gate, func(ok bool) bool {
			if ok {
				return true
			}
			w.post(func() {
				w.killForRestart(c, gen, fmt.Sprintf("Container %s failed liveness probe, will be restarted", spec.Name))
			})
			return false
		})
	}
}

// probeLoop runs one probe every period after the initial delay; report is called when the result
// crosses a threshold and says whether to keep probing.
func (w *podWorker) probeLoop(ctx context.Context, kind string, p *v1.Probe, ref *v1.ObjectReference, spec *v1.Container, id, ip string,
	startedAt time.Time, gate <-chan struct{}, report func(ok bool) bool) {
	if gate != nil {
		select {
		case <-ctx.Done():
			return
		case <-gate:
		}
	}
	wait := time.Until(startedAt.Add(time.Duration(p.InitialDelaySeconds) * time.Second))
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	successThreshold, failureThreshold := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	successes, failures := int32(0), int32(0)
	state := -1
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		wait = period
		pctx, cancel := context.WithTimeout(ctx, timeout)
		ok, msg := do(pctx, probeAction(p), spec, id, ip)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			w.a.recorder.Eventf(ref, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, msg)
		}
		switch {
		case ok && successes >= successThreshold && state != 1:
			state = 1
			if !report(true) {
				return
			}
		case !ok && failures >= failureThreshold && state != 0:
			state = 0
			if !report(false) {
				return
			}
		}
	}
}

// killForRestart stops a container that failed its liveness or startup probe; its exit leads to a restart.
func (w *podWorker) killForRestart(c *ctr, gen int, message string) {
	if gen != c.gen || !c.running || c.killing || w.term != nil {
		return
	}
	c.killing = true
	c.ready = false
	w.event(c.ref, v1.EventTypeNormal, "Killing", "%s", message)
	grace := int64(30)
	if w.pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *w.pod.Spec.TerminationGracePeriodSeconds
	}
	if lp := c.spec.LivenessProbe; lp != nil && lp.TerminationGracePeriodSeconds != nil {
		grace = *lp.TerminationGracePeriodSeconds
	}
	id, img := c.id, c.image
	go stopSignal(id, img)
	time.AfterFunc(time.Duration(grace)*time.Second, func() {
		w.post(func() {
			if gen == c.gen && c.running {
				_, _ = docker(w.ctx, "kill", "-s", "KILL", id)
			}
		})
	})
}

// runPreStop runs the preStop hook, bounded by the pod's deadline, then lets the stop signal go.
func (w *podWorker) runPreStop(c *ctr, gen int, id string, hook *action, deadline time.Time) {
	spec, ip := c.spec, w.podIP
	go func() {
		ctx, cancel := context.WithDeadline(w.ctx, deadline)
		ok, msg := do(ctx, *hook, spec, id, ip)
		cancel()
		w.post(func() {
			if !ok {
				w.event(c.ref, v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %s", msg)
			}
			if gen == c.gen {
				c.preStopDone = true
			}
		})
	}()
}

// runPostStart runs the postStart hook; when it fails the container is killed, as the kubelet does.
func (w *podWorker) runPostStart(c *ctr, gen int, id string, hook *action) {
	spec, ip := c.spec, w.podIP
	go func() {
		ctx, cancel := context.WithTimeout(w.ctx, 2*time.Minute)
		ok, msg := do(ctx, *hook, spec, id, ip)
		cancel()
		if ok {
			return
		}
		w.post(func() {
			w.event(c.ref, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %s", msg)
			w.killForRestart(c, gen, fmt.Sprintf("FailedPostStartHook: container %s will be restarted", spec.Name))
		})
	}()
}
