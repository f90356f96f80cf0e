package main

// One worker per pod UID: a goroutine that owns everything about its pod (sandbox, containers,
// volumes, status) and reacts to informer updates, container exits and probe results, which reach it
// as closures on its queue. A slow pod therefore never blocks another.

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const maxBackoff = 5 * time.Minute

type podWorker struct {
	a      *agent
	uid    types.UID
	key    string
	pod    *v1.Pod
	gone   bool // deleted from the API (forced)
	msgs   chan func()
	ctx    context.Context
	cancel context.CancelFunc

	sandboxID   string
	podIP       string
	volumes     *volumeState
	startTime   *metav1.Time
	init, app   []*ctr
	conditions  map[v1.PodConditionType]v1.PodCondition
	warned      map[string]time.Time // last time a warning event (reason+message) was sent
	rejected    string               // reason the pod cannot run here
	rejectMsg   string
	initialized bool // every init container has completed (sidecars: started) once
	terminal    bool // Succeeded or Failed: nothing runs any more
	adopted     bool // terminal before this agent saw it: its status is left alone
	finalPhase  v1.PodPhase
	term        *termination
	lastStatus  *v1.PodStatus
	finished    bool
}

type termination struct {
	start    time.Time
	deadline time.Time
}

// ctr is one container of the pod across its restarts.
type ctr struct {
	spec   *v1.Container
	isInit bool
	ref    *v1.ObjectReference

	id         string // current docker container
	previousID string // the container before it, kept for its logs
	gen        int    // bumped for every docker container, so late messages about an old one are dropped
	image      *imageInfo
	running    bool
	startedAt  time.Time
	exited     bool
	exit       v1.ContainerStateTerminated
	last       *v1.ContainerStateTerminated

	restartCount  int32
	backoffFrom   int32 // restartCount when the back-off last started afresh
	waitingReason string
	waitingMsg    string
	nextTry       time.Time
	pullFailures  int
	lastPullTry   time.Time

	started     bool
	ready       bool
	probeCancel context.CancelFunc
	killing     bool

	preStopDone bool
	termSent    bool
	killSent    bool
}

func (c *ctr) sidecar() bool {
	return c.isInit && c.spec.RestartPolicy != nil && *c.spec.RestartPolicy == v1.ContainerRestartPolicyAlways
}

func newPodWorker(parent context.Context, a *agent, pod *v1.Pod) *podWorker {
	ctx, cancel := context.WithCancel(parent)
	w := &podWorker{a: a, uid: pod.UID, key: pod.Namespace + "/" + pod.Name, pod: pod,
		msgs: make(chan func(), 256), ctx: ctx, cancel: cancel,
		volumes:    newVolumeState(filepath.Join(a.cfg.stateDir, "pods", string(pod.UID), "volumes")),
		conditions: map[v1.PodConditionType]v1.PodCondition{}, warned: map[string]time.Time{}}
	previous := map[string]int32{}
	for _, s := range append(append([]v1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		previous[s.Name] = s.RestartCount
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		w.init = append(w.init, &ctr{spec: c, isInit: true, restartCount: previous[c.Name],
			ref: w.containerRef(fmt.Sprintf("spec.initContainers{%s}", c.Name))})
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		w.app = append(w.app, &ctr{spec: c, restartCount: previous[c.Name],
			ref: w.containerRef(fmt.Sprintf("spec.containers{%s}", c.Name))})
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		w.terminal, w.adopted, w.finalPhase = true, true, pod.Status.Phase
	}
	for _, cond := range pod.Status.Conditions {
		w.conditions[cond.Type] = cond
	}
	return w
}

func (w *podWorker) containerRef(fieldPath string) *v1.ObjectReference {
	return &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: w.pod.Namespace, Name: w.pod.Name,
		UID: w.pod.UID, FieldPath: fieldPath}
}

// post queues f to run on the worker goroutine (dropped once the worker has stopped).
func (w *podWorker) post(f func()) {
	select {
	case w.msgs <- f:
	case <-w.ctx.Done():
	}
}

func (w *podWorker) update(pod *v1.Pod) { w.post(func() { w.pod = pod }) }
func (w *podWorker) removed()           { w.post(func() { w.gone = true }) }

func (w *podWorker) run() {
	defer w.a.workerDone(w.uid)
	defer w.cancel()
	slog.Info("pod worker started", "pod", w.key, "uid", w.uid)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for !w.finished {
		select {
		case <-w.ctx.Done():
			return
		case f := <-w.msgs:
			f()
		case <-tick.C:
		}
		for drained := false; !drained; {
			select {
			case f := <-w.msgs:
				f()
			default:
				drained = true
			}
		}
		w.safeSync()
	}
	slog.Info("pod worker finished", "pod", w.key, "uid", w.uid)
}

// safeSync runs one sync; a panic is logged and the next tick tries again, the agent lives on.
func (w *podWorker) safeSync() {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("pod sync panicked", "pod", w.key, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	w.sync()
	if !w.gone && !w.adopted && !w.finished {
		w.writeStatus()
	}
}

func (w *podWorker) event(ref *v1.ObjectReference, kind, reason, format string, args ...any) {
	if ref == nil {
		ref = w.containerRef("")
	}
	w.a.recorder.Eventf(ref, kind, reason, format, args...)
}

// warn sends a Warning event unless the same one was sent in the last 30 s.
func (w *podWorker) warn(ref *v1.ObjectReference, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	key := ref.FieldPath + "|" + reason + "|" + msg
	if at, ok := w.warned[key]; ok && time.Since(at) < 30*time.Second {
		return
	}
	w.warned[key] = time.Now()
	w.event(ref, v1.EventTypeWarning, reason, "%s", msg)
}

func (w *podWorker) sync() {
	ctx := w.ctx
	if w.gone {
		slog.Info("pod removed from the API; removing its containers", "pod", w.key)
		w.removeRuntime()
		w.finished = true
		return
	}
	if w.pod.DeletionTimestamp != nil {
		w.syncTerminating()
		return
	}
	if w.terminal {
		return
	}
	if msg := unsupportedSpec(w.pod); msg != "" {
		w.rejected, w.rejectMsg = "UnsupportedPodSpec", msg
		w.event(nil, v1.EventTypeWarning, w.rejected, "%s", msg)
		w.finish(v1.PodFailed)
		return
	}
	if w.startTime == nil {
		if w.pod.Status.StartTime != nil {
			w.startTime = w.pod.Status.StartTime
		} else {
			now := metav1.Now()
			w.startTime = &now
		}
	}
	if err := w.setupVolumes(ctx); err != nil {
		w.warn(w.containerRef(""), "FailedMount", "MountVolume.SetUp failed: %v", err)
		return
	}
	if w.sandboxID == "" {
		if err := w.createSandbox(ctx); err != nil {
			w.warn(w.containerRef(""), "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return
		}
		// Downward API files may name the pod IP, known only now.
		if err := w.setupVolumes(ctx); err != nil {
			w.warn(w.containerRef(""), "FailedMount", "MountVolume.SetUp failed: %v", err)
			return
		}
	}
	if !w.syncInit() {
		return
	}
	for _, c := range w.app {
		w.syncContainer(c)
	}
	if phase := w.phase(); phase == v1.PodSucceeded || phase == v1.PodFailed {
		w.finish(phase)
	}
}

// syncInit runs init containers one by one; it reports whether all have completed (sidecars: started).
func (w *podWorker) syncInit() bool {
	if w.initialized {
		// Once the pod has initialized, only sidecars run on (and restart) here; nothing waits for them.
		for _, c := range w.init {
			if c.sidecar() {
				w.syncContainer(c)
			}
		}
		return true
	}
	for _, c := range w.init {
		if c.sidecar() {
			w.syncContainer(c)
			if !(c.running && c.started) {
				return false
			}
			continue
		}
		switch {
		case c.exited && c.exit.ExitCode == 0:
			continue
		case c.running:
			return false
		case c.exited:
			if w.pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				w.finish(v1.PodFailed)
				return false
			}
			w.restartWhenDue(c)
			return false
		default:
			w.startContainer(c)
			return false
		}
	}
	w.initialized = true
	return true
}

func (w *podWorker) shouldRestart(c *ctr) bool {
	if c.sidecar() {
		return true
	}
	switch w.pod.Spec.RestartPolicy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return c.exit.ExitCode != 0
	}
	return true
}

func (w *podWorker) syncContainer(c *ctr) {
	switch {
	case c.running:
	case c.exited:
		if w.shouldRestart(c) {
			w.restartWhenDue(c)
		}
	default:
		w.startContainer(c)
	}
}

// backoff is the delay before restart number n+1 (n restarts done): none for the first, then the base doubling to 5 min.
func (w *podWorker) backoff(n int32) time.Duration {
	if n <= 0 {
		return 0
	}
	d := w.a.cfg.restartBackoff
	for i := int32(1); i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (w *podWorker) restartWhenDue(c *ctr) {
	if c.nextTry.IsZero() {
		// A container that ran for twice the longest back-off starts the back-off afresh, as in the kubelet.
		if c.exit.FinishedAt.Sub(c.exit.StartedAt.Time) > 2*maxBackoff {
			c.backoffFrom = c.restartCount
		}
		delay := w.backoff(c.restartCount - c.backoffFrom)
		c.nextTry = c.exit.FinishedAt.Add(delay)
		if delay > 0 {
			c.waitingReason = "CrashLoopBackOff"
			c.waitingMsg = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.spec.Name, w.pod.Name, w.pod.Namespace, w.uid)
			w.event(c.ref, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.spec.Name, w.pod.Name, w.pod.Namespace, w.uid)
		}
	}
	if time.Now().Before(c.nextTry) {
		return
	}
	last := c.exit
	c.last = &last
	// The stopped container stays as the previous one (kubectl logs --previous); the one before it goes.
	if c.previousID != "" {
		go func(id string) { _, _ = docker(context.Background(), "rm", "-f", id) }(c.previousID)
	}
	c.previousID = c.id
	c.id, c.exited, c.exit = "", false, v1.ContainerStateTerminated{}
	c.restartCount++
	c.nextTry = time.Time{}
	c.waitingReason, c.waitingMsg = "", ""
	w.startContainer(c)
}

// startContainer creates and starts c (or records why it cannot, to retry on a later sync).
func (w *podWorker) startContainer(c *ctr) {
	ctx := w.ctx
	now := time.Now()
	if now.Before(c.nextTry) {
		if c.waitingReason == "ErrImagePull" && now.Sub(c.lastPullTry) > 2*time.Second {
			c.waitingReason = "ImagePullBackOff"
			c.waitingMsg = fmt.Sprintf("Back-off pulling image %q", c.spec.Image)
			w.event(c.ref, v1.EventTypeNormal, "BackOff", "Back-off pulling image %q", c.spec.Image)
		}
		return
	}
	img, err := inspectImage(ctx, c.spec.Image)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.lastPullTry = now
		if c.spec.ImagePullPolicy == v1.PullNever {
			c.waitingReason = "ErrImageNeverPull"
			c.waitingMsg = fmt.Sprintf("Container image %q is not present with pull policy of Never", c.spec.Image)
			w.warn(c.ref, "ErrImageNeverPull", "%s", c.waitingMsg)
			c.nextTry = now.Add(10 * time.Second)
			return
		}
		c.pullFailures++
		c.waitingReason = "ErrImagePull"
		c.waitingMsg = fmt.Sprintf("image %q is not present locally and kroute-node does not pull images", c.spec.Image)
		w.event(c.ref, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", c.spec.Image, c.waitingMsg)
		w.event(c.ref, v1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		c.nextTry = now.Add(max(w.backoff(int32(c.pullFailures)), time.Second))
		return
	}
	c.pullFailures = 0
	c.image = img
	// Secrets and ConfigMaps are read here: an API server that does not answer must not hold the pod forever.
	configCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	args, err := w.createArgs(configCtx, c)
	cancel()
	if err != nil {
		if _, ok := err.(*configError); ok {
			c.waitingReason = "CreateContainerConfigError"
		} else {
			c.waitingReason = "CreateContainerError"
		}
		c.waitingMsg = err.Error()
		w.warn(c.ref, "Failed", "Error: %s", err)
		c.nextTry = now.Add(2 * time.Second)
		return
	}
	w.event(c.ref, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.spec.Image)
	c.gen++
	id, err := docker(ctx, args...)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.waitingReason, c.waitingMsg = "CreateContainerError", err.Error()
		w.warn(c.ref, "Failed", "Error: %s", err)
		c.nextTry = now.Add(2 * time.Second)
		return
	}
	c.id = id
	c.waitingReason, c.waitingMsg = "", ""
	w.event(c.ref, v1.EventTypeNormal, "Created", "Created container: %s", c.spec.Name)
	w.watchExit(c, c.gen, id)
	if _, err := docker(ctx, "start", id); err != nil {
		w.a.exits.forget(id)
		if ctx.Err() != nil {
			return
		}
		// As the CRI reports it: the container terminated without running (exit 128, StartError).
		c.exited = true
		c.exit = v1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(),
			StartedAt: metav1.Unix(0, 0), FinishedAt: metav1.Now(), ContainerID: "docker://" + id}
		w.event(c.ref, v1.EventTypeWarning, "Failed", "Error: %s", err)
		return
	}
	info, err := inspectContainer(ctx, id)
	c.startedAt = time.Now()
	if err == nil && !info.State.StartedAt.IsZero() {
		c.startedAt = info.State.StartedAt
	}
	c.running, c.exited, c.killing = true, false, false
	c.started, c.ready = false, false
	c.preStopDone, c.termSent, c.killSent = false, false, false
	w.event(c.ref, v1.EventTypeNormal, "Started", "Started container %s", c.spec.Name)
	slog.Info("container started", "pod", w.key, "container", c.spec.Name, "id", shortID(id), "restartCount", c.restartCount)
	w.startProbes(c)
	if hook := lifecycleHook(c.spec, false); hook != nil {
		w.runPostStart(c, c.gen, id, hook)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// watchExit has the worker told how the container ended once it stops.
func (w *podWorker) watchExit(c *ctr, gen int, id string) {
	w.a.exits.watch(id, func() {
		if w.ctx.Err() != nil {
			return
		}
		ictx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
		info, err := inspectContainer(ictx, id)
		cancel()
		w.post(func() { w.exited(c, gen, info, err) })
	})
}

func (w *podWorker) exited(c *ctr, gen int, info *containerInfo, inspectErr error) {
	if gen != c.gen || !c.running {
		return
	}
	c.running, c.started, c.ready = false, false, false
	if c.probeCancel != nil {
		c.probeCancel()
		c.probeCancel = nil
	}
	c.exited = true
	term := v1.ContainerStateTerminated{ContainerID: "docker://" + c.id, StartedAt: metav1.NewTime(c.startedAt), FinishedAt: metav1.Now()}
	switch {
	case inspectErr != nil:
		term.ExitCode, term.Reason, term.Message = 137, "ContainerStatusUnknown", fmt.Sprintf("the container could not be located: %v", inspectErr)
	default:
		term.ExitCode = int32(info.State.ExitCode)
		term.FinishedAt = metav1.NewTime(info.State.FinishedAt)
		switch {
		case info.State.OOMKilled:
			term.Reason = "OOMKilled"
		case term.ExitCode == 0:
			term.Reason = "Completed"
		default:
			term.Reason = "Error"
		}
		term.Message = info.State.Error
	}
	c.exit = term
	c.nextTry = time.Time{}
	slog.Info("container exited", "pod", w.key, "container", c.spec.Name, "id", shortID(c.id), "exitCode", term.ExitCode, "reason", term.Reason)
}

// finish makes the pod terminal: nothing restarts, what still runs (sidecars) and the sandbox are
// stopped; the stopped containers stay (for their logs) until the pod is deleted.
func (w *podWorker) finish(phase v1.PodPhase) {
	if w.terminal {
		return
	}
	w.terminal, w.finalPhase = true, phase
	slog.Info("pod completed", "pod", w.key, "phase", phase)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range w.all() {
		if c.probeCancel != nil {
			c.probeCancel()
			c.probeCancel = nil
		}
		if c.running {
			_, _ = docker(ctx, "kill", c.id)
		}
	}
	if w.sandboxID != "" {
		w.a.exits.forget(w.sandboxID)
		_, _ = docker(ctx, "kill", w.sandboxID)
	}
	w.setCondition(v1.PodReadyToStartContainers, v1.ConditionFalse, "", "")
}

// removeRuntime stops probes and force-removes the pod's containers, sandbox and volumes.
func (w *podWorker) removeRuntime() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range append(append([]*ctr{}, w.init...), w.app...) {
		if c.probeCancel != nil {
			c.probeCancel()
			c.probeCancel = nil
		}
		if c.running {
			c.running, c.ready, c.started = false, false, false
			c.exited = true
			c.exit = v1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", ContainerID: "docker://" + c.id,
				StartedAt: metav1.NewTime(c.startedAt), FinishedAt: metav1.Now()}
		}
		c.gen++
	}
	for _, c := range w.all() {
		w.a.exits.forget(c.id)
	}
	w.a.exits.forget(w.sandboxID)
	if _, err := removeLabelled(ctx, labelPodUID+"="+string(w.uid)); err != nil {
		slog.Warn("removing pod containers", "pod", w.key, "err", err)
	}
	w.sandboxID = ""
	w.teardownVolumes()
}

// syncTerminating runs the graceful stop: preStop hooks, the stop signal, SIGKILL at the deadline,
// then cleanup, the final status and the deletion of the pod object.
func (w *podWorker) syncTerminating() {
	now := time.Now()
	if w.term == nil {
		grace := int64(30)
		if w.pod.DeletionGracePeriodSeconds != nil {
			grace = *w.pod.DeletionGracePeriodSeconds
		} else if w.pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *w.pod.Spec.TerminationGracePeriodSeconds
		}
		w.term = &termination{start: now, deadline: now.Add(time.Duration(grace) * time.Second)}
		slog.Info("pod terminating", "pod", w.key, "grace", grace)
		for _, c := range w.all() {
			if !c.running {
				continue
			}
			w.event(c.ref, v1.EventTypeNormal, "Killing", "Stopping container %s", c.spec.Name)
			if hook := lifecycleHook(c.spec, true); hook != nil && !w.terminal {
				w.runPreStop(c, c.gen, c.id, hook, w.term.deadline)
			} else {
				c.preStopDone = true
			}
		}
	}
	// A second deletion may shorten the grace period; the earlier deadline wins, as in the kubelet.
	if g := w.pod.DeletionGracePeriodSeconds; g != nil {
		if d := w.term.start.Add(time.Duration(*g) * time.Second); d.Before(w.term.deadline) {
			w.term.deadline = d
		}
	}
	anyRunning := false
	for _, c := range w.all() {
		if !c.running {
			continue
		}
		anyRunning = true
		if c.preStopDone && !c.termSent {
			c.termSent = true
			go stopSignal(c.id, c.image)
		}
		if now.After(w.term.deadline) && !c.killSent {
			c.killSent = true
			go func(id string) { _, _ = docker(context.Background(), "kill", "-s", "KILL", id) }(c.id)
		}
	}
	if anyRunning {
		return
	}
	w.removeRuntime()
	if !w.terminal && !w.adopted {
		phase := v1.PodSucceeded
		for _, c := range w.app {
			if c.exited && c.exit.ExitCode != 0 || !c.exited {
				phase = v1.PodFailed
			}
		}
		w.terminal, w.finalPhase = true, phase
	}
	if !w.adopted {
		w.writeStatus()
	}
	w.deletePod()
	w.finished = true
}

func (w *podWorker) all() []*ctr {
	return append(append([]*ctr{}, w.init...), w.app...)
}

// stopSignal sends the image's STOPSIGNAL (SIGTERM by default).
func stopSignal(id string, img *imageInfo) {
	signal := "TERM"
	if img != nil && img.Config.StopSignal != "" {
		signal = img.Config.StopSignal
	}
	if _, err := docker(context.Background(), "kill", "-s", signal, id); err != nil {
		slog.Debug("stop signal", "id", shortID(id), "err", err)
	}
}

// deletePod removes the pod object, as the kubelet's status manager does once everything has stopped.
func (w *podWorker) deletePod() {
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	grace := int64(0)
	uid := w.uid
	err := w.a.client.CoreV1().Pods(w.pod.Namespace).Delete(ctx, w.pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil {
		slog.Warn("deleting pod", "pod", w.key, "err", err)
		return
	}
	slog.Info("pod deleted", "pod", w.key)
}

// unsupportedSpec says why this node cannot run the pod at all ("" when it can).
func unsupportedSpec(p *v1.Pod) string {
	switch {
	case p.Spec.HostNetwork:
		return "kroute-node does not support hostNetwork pods"
	case p.Spec.HostPID:
		return "kroute-node does not support hostPID pods"
	case p.Spec.HostIPC:
		return "kroute-node does not support hostIPC pods"
	}
	return ""
}
