package main

// The pod status as the kubelet writes it: phase, conditions, IPs and container statuses.

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// ours are the condition types this agent owns; others (PodScheduled, readiness gates, DisruptionTarget) are kept.
var ours = []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.ContainersReady, v1.PodReady}

func (w *podWorker) setCondition(t v1.PodConditionType, status v1.ConditionStatus, reason, message string) {
	old, ok := w.conditions[t]
	cond := v1.PodCondition{Type: t, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now()}
	if ok && old.Status == status {
		cond.LastTransitionTime = old.LastTransitionTime
	}
	cond.ObservedGeneration = w.pod.Generation
	w.conditions[t] = cond
}

// initDone says whether every init container has completed (sidecars: started).
func (w *podWorker) initDone() bool {
	if w.initialized {
		return true
	}
	for _, c := range w.init {
		if c.sidecar() {
			if !(c.running && c.started) && !(w.terminal && c.exited) {
				return false
			}
			continue
		}
		if !(c.exited && c.exit.ExitCode == 0) {
			return false
		}
	}
	return true
}

// phase follows the kubelet's getPhase.
func (w *podWorker) phase() v1.PodPhase {
	if w.terminal {
		return w.finalPhase
	}
	if !w.initDone() {
		return v1.PodPending
	}
	var running, waiting, stopped, failed int
	for _, c := range w.app {
		switch {
		case c.running:
			running++
		case c.exited:
			stopped++
			if c.exit.ExitCode != 0 {
				failed++
			}
		case c.last != nil:
			stopped++
			if c.last.ExitCode != 0 {
				failed++
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		switch w.pod.Spec.RestartPolicy {
		case v1.RestartPolicyNever:
			if failed > 0 {
				return v1.PodFailed
			}
			return v1.PodSucceeded
		case v1.RestartPolicyOnFailure:
			if failed > 0 {
				return v1.PodRunning
			}
			return v1.PodSucceeded
		}
		return v1.PodRunning
	}
	return v1.PodPending
}

func (w *podWorker) containerStatus(c *ctr, defaultWaiting string) v1.ContainerStatus {
	s := v1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image, Ready: c.ready, RestartCount: c.restartCount,
		Started: ptr.To(c.started)}
	if c.image != nil {
		s.ImageID = "docker://" + c.image.ID
	}
	if c.id != "" {
		s.ContainerID = "docker://" + c.id
	}
	if c.last != nil {
		s.LastTerminationState.Terminated = c.last.DeepCopy()
	}
	switch {
	case c.running:
		s.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt)}
	case c.exited && !w.terminal && w.term == nil && w.shouldRestart(c) && c.waitingReason == "CrashLoopBackOff":
		s.State.Waiting = &v1.ContainerStateWaiting{Reason: c.waitingReason, Message: c.waitingMsg}
		s.LastTerminationState.Terminated = c.exit.DeepCopy()
	case c.exited:
		s.State.Terminated = c.exit.DeepCopy()
	default:
		reason, msg := c.waitingReason, c.waitingMsg
		if reason == "" {
			reason = defaultWaiting
		}
		s.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: msg}
	}
	return s
}

func (w *podWorker) buildStatus() v1.PodStatus {
	p := w.pod
	phase := w.phase()
	st := v1.PodStatus{Phase: phase, HostIP: w.a.cfg.nodeIP, HostIPs: []v1.HostIP{{IP: w.a.cfg.nodeIP}}, StartTime: w.startTime}
	if w.rejected != "" {
		st.Reason, st.Message = w.rejected, w.rejectMsg
	}
	if w.podIP != "" {
		st.PodIP, st.PodIPs = w.podIP, []v1.PodIP{{IP: w.podIP}}
	} else if p.Status.PodIP != "" {
		st.PodIP, st.PodIPs = p.Status.PodIP, p.Status.PodIPs
	}

	initDone := w.initDone()
	for _, c := range w.init {
		waiting := "PodInitializing"
		if w.sandboxID == "" {
			waiting = "ContainerCreating"
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, w.containerStatus(c, waiting))
	}
	for _, c := range w.app {
		waiting := "ContainerCreating"
		if !initDone {
			waiting = "PodInitializing"
		}
		st.ContainerStatuses = append(st.ContainerStatuses, w.containerStatus(c, waiting))
	}

	terminal := phase == v1.PodSucceeded || phase == v1.PodFailed
	switch {
	case w.sandboxID != "" && !terminal:
		w.setCondition(v1.PodReadyToStartContainers, v1.ConditionTrue, "", "")
	default:
		w.setCondition(v1.PodReadyToStartContainers, v1.ConditionFalse, "", "")
	}
	var pendingInit []string
	for _, c := range w.init {
		if !(c.exited && c.exit.ExitCode == 0) && !(c.sidecar() && c.started) {
			pendingInit = append(pendingInit, c.spec.Name)
		}
	}
	switch {
	case initDone || (terminal && len(w.init) == 0):
		w.setCondition(v1.PodInitialized, v1.ConditionTrue, "", "")
	default:
		w.setCondition(v1.PodInitialized, v1.ConditionFalse, "ContainersNotInitialized",
			fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(pendingInit, " ")))
	}
	var unready []string
	for _, c := range w.app {
		if !c.ready {
			unready = append(unready, c.spec.Name)
		}
	}
	for _, c := range w.init {
		if c.sidecar() && !c.ready {
			unready = append(unready, c.spec.Name)
		}
	}
	var gatesMissing []string
	for _, gate := range p.Spec.ReadinessGates {
		ok := false
		for _, cond := range p.Status.Conditions {
			if cond.Type == gate.ConditionType && cond.Status == v1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			gatesMissing = append(gatesMissing, string(gate.ConditionType))
		}
	}
	switch {
	case terminal:
		w.setCondition(v1.ContainersReady, v1.ConditionFalse, "PodCompleted", "")
		w.setCondition(v1.PodReady, v1.ConditionFalse, "PodCompleted", "")
	case len(unready) > 0 || !initDone:
		msg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		w.setCondition(v1.ContainersReady, v1.ConditionFalse, "ContainersNotReady", msg)
		w.setCondition(v1.PodReady, v1.ConditionFalse, "ContainersNotReady", msg)
	case len(gatesMissing) > 0:
		w.setCondition(v1.ContainersReady, v1.ConditionTrue, "", "")
		w.setCondition(v1.PodReady, v1.ConditionFalse, "ReadinessGatesNotReady",
			fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", gatesMissing[0]))
	default:
		w.setCondition(v1.ContainersReady, v1.ConditionTrue, "", "")
		w.setCondition(v1.PodReady, v1.ConditionTrue, "", "")
	}
	for _, t := range ours {
		st.Conditions = append(st.Conditions, w.conditions[t])
	}
	return st
}

// writeStatus sends the status when it differs from what was last written.
func (w *podWorker) writeStatus() {
	st := w.buildStatus()
	if w.lastStatus != nil && equality.Semantic.DeepEqual(st, *w.lastStatus) {
		return
	}
	ctx, cancel := context.WithTimeout(w.ctx, 10*time.Second)
	defer cancel()
	pods := w.a.client.CoreV1().Pods(w.pod.Namespace)
	latest := w.pod
	for attempt := 0; attempt < 3; attempt++ {
		updated := latest.DeepCopy()
		updated.Status = mergeStatus(latest.Status, st)
		_, err := pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		if err == nil {
			w.lastStatus = &st
			return
		}
		if apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		if !apierrors.IsConflict(err) {
			slog.Warn("updating pod status", "pod", w.key, "err", err)
			return
		}
		fresh, err := pods.Get(ctx, w.pod.Name, metav1.GetOptions{})
		if err != nil || fresh.UID != w.uid {
			return
		}
		latest = fresh
	}
}

// mergeStatus lays our fields over the stored status, keeping conditions and fields others own.
func mergeStatus(stored, st v1.PodStatus) v1.PodStatus {
	out := *stored.DeepCopy()
	out.Phase, out.Reason, out.Message = st.Phase, st.Reason, st.Message
	out.HostIP, out.HostIPs = st.HostIP, st.HostIPs
	if st.PodIP != "" {
		out.PodIP, out.PodIPs = st.PodIP, st.PodIPs
	}
	out.StartTime = st.StartTime
	out.InitContainerStatuses, out.ContainerStatuses = st.InitContainerStatuses, st.ContainerStatuses
	mine := map[v1.PodConditionType]bool{}
	for _, t := range ours {
		mine[t] = true
	}
	var conds []v1.PodCondition
	for _, c := range stored.Conditions {
		if !mine[c.Type] {
			conds = append(conds, c)
		}
	}
	conds = append(conds, st.Conditions...)
	sort.SliceStable(conds, func(i, j int) bool { return conds[i].Type == v1.PodScheduled && conds[j].Type != v1.PodScheduled })
	out.Conditions = conds
	return out
}
