package main

// The Node object: registration, the Ready condition, the Lease heartbeat, and the not-ready taint
// that the node lifecycle controller would lift (it does not run in the test cluster).

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	kubeletVersion = "v1.36.4-kroute-node"
	leaseNamespace = "kube-node-lease"
	leaseSeconds   = 40
)

type nodeAgent struct {
	cfg            *config
	client         kubernetes.Interface
	capacity       v1.ResourceList
	runtime        string
	hostname       string
	nodeUID        string
	lastPosts      time.Time
	taintForbidden bool
}

func newNodeAgent(ctx context.Context, cfg *config, client kubernetes.Interface) *nodeAgent {
	hostname, _ := os.Hostname()
	capacity := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		v1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(cfg.stateDir, &fs) == nil {
		capacity[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	return &nodeAgent{cfg: cfg, client: client, capacity: capacity, runtime: "docker://" + dockerVersion(ctx), hostname: hostname}
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func readTrimmed(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func (n *nodeAgent) status(old *v1.NodeStatus) v1.NodeStatus {
	now := metav1.Now()
	condition := func(t v1.NodeConditionType, s v1.ConditionStatus, reason, msg string) v1.NodeCondition {
		c := v1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		if old != nil {
			for _, o := range old.Conditions {
				if o.Type == t && o.Status == s {
					c.LastTransitionTime = o.LastTransitionTime
				}
			}
		}
		return c
	}
	var uname syscall.Utsname
	_ = syscall.Uname(&uname)
	kernel := utsString(uname.Release[:])
	return v1.NodeStatus{
		Capacity:    n.capacity,
		Allocatable: n.capacity,
		Phase:       v1.NodeRunning,
		Conditions: []v1.NodeCondition{
			condition(v1.NodeMemoryPressure, v1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			condition(v1.NodeDiskPressure, v1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			condition(v1.NodePIDPressure, v1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			condition(v1.NodeReady, v1.ConditionTrue, "KubeletReady", "kroute-node is posting ready status"),
		},
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: n.cfg.nodeIP},
			{Type: v1.NodeHostName, Address: n.cfg.nodeName},
		},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               readTrimmed("/etc/machine-id"),
			BootID:                  readTrimmed("/proc/sys/kernel/random/boot_id"),
			KernelVersion:           kernel,
			OSImage:                 "kroute-node on " + n.hostname,
			ContainerRuntimeVersion: n.runtime,
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         runtime.GOOS,
			Architecture:            runtime.GOARCH,
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(n.cfg.kubeletPort)}},
	}
}

func utsString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// register creates the Node (or takes over an existing one) and posts Ready.
func (n *nodeAgent) register(ctx context.Context) error {
	nodes := n.client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node = &v1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: n.cfg.nodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": n.cfg.nodeName,
				"kubernetes.io/os":       runtime.GOOS,
				"kubernetes.io/arch":     runtime.GOARCH,
			},
		}}
		node.Status = n.status(nil)
		node, err = nodes.Create(ctx, node, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", n.cfg.nodeName, err)
	}
	n.nodeUID = string(node.UID)
	if err := n.postStatus(ctx); err != nil {
		return err
	}
	slog.Info("node registered", "node", n.cfg.nodeName, "internalIP", n.cfg.nodeIP, "runtime", n.runtime)
	n.liftNotReadyTaint(ctx)
	return nil
}

func (n *nodeAgent) postStatus(ctx context.Context) error {
	nodes := n.client.CoreV1().Nodes()
	for attempt := 0; ; attempt++ {
		node, err := nodes.Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
		if err == nil {
			node.Status = n.status(&node.Status)
			_, err = nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		}
		if err == nil {
			n.lastPosts = time.Now()
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 5 {
			return fmt.Errorf("posting node status: %w", err)
		}
	}
}

// liftNotReadyTaint removes node.kubernetes.io/not-ready (added by the TaintNodesByCondition admission
// plugin at creation) once the node is Ready, as the node lifecycle controller would.
func (n *nodeAgent) liftNotReadyTaint(ctx context.Context) {
	if n.taintForbidden {
		return
	}
	nodes := n.client.CoreV1().Nodes()
	for attempt := 0; attempt < 5; attempt++ {
		node, err := nodes.Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
		if err != nil {
			slog.Warn("reading node for its taints", "err", err)
			return
		}
		kept := node.Spec.Taints[:0]
		for _, t := range node.Spec.Taints {
			if t.Key != v1.TaintNodeNotReady && t.Key != v1.TaintNodeUnreachable {
				kept = append(kept, t)
			}
		}
		if len(kept) == len(node.Spec.Taints) {
			return
		}
		node.Spec.Taints = kept
		_, err = nodes.Update(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			slog.Info("removed the not-ready taint", "node", n.cfg.nodeName)
			return
		}
		if apierrors.IsForbidden(err) {
			// NodeRestriction forbids a node to change its own taints: an admin must lift it.
			slog.Warn("cannot remove the not-ready taint (forbidden for a node); an admin must", "err", err)
			n.taintForbidden = true
			return
		}
		if !apierrors.IsConflict(err) {
			slog.Warn("removing the not-ready taint", "err", err)
			return
		}
	}
}

func (n *nodeAgent) renewLease(ctx context.Context) error {
	leases := n.client.CoordinationV1().Leases(leaseNamespace)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, n.cfg.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: n.cfg.nodeName, Namespace: leaseNamespace},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.cfg.nodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseSeconds)),
				RenewTime:            &now,
			},
		}
		if n.nodeUID != "" {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.cfg.nodeName, UID: types.UID(n.nodeUID)}}
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity = ptr.To(n.cfg.nodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseSeconds))
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the Lease every 10 s and posts the node status every 60 s until ctx ends.
func (n *nodeAgent) heartbeat(ctx context.Context) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		if err := n.renewLease(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("renewing node lease", "err", err)
		}
		if time.Since(n.lastPosts) >= 60*time.Second {
			if err := n.postStatus(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("node heartbeat", "err", err)
			}
			n.liftNotReadyTaint(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
