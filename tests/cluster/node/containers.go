package main

// Docker arguments for a pod's sandbox and containers: network, labels, environment, command,
// mounts, security context and resources, following what the kubelet asks of a CRI runtime.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func (w *podWorker) labels(container string) []string {
	p := w.pod
	args := []string{
		"--label", labelCluster + "=" + w.a.cfg.clusterID,
		"--label", labelPodUID + "=" + string(p.UID),
		"--label", labelNamespace + "=" + p.Namespace,
		"--label", labelPodName + "=" + p.Name,
	}
	if container != "" {
		args = append(args, "--label", labelContainer+"="+container)
	}
	return args
}

// createSandbox starts the pause container that holds the pod's network namespace; its address is the pod IP.
func (w *podWorker) createSandbox(ctx context.Context) error {
	p := w.pod
	name := fmt.Sprintf("k8s_POD_%s_%s_%s", p.Name, p.Namespace, p.UID)
	_, _ = docker(ctx, "rm", "-f", name)
	hostname := p.Name
	if p.Spec.Hostname != "" {
		hostname = p.Spec.Hostname
	}
	if len(hostname) > 63 {
		hostname = strings.TrimRight(hostname[:63], "-.")
	}
	args := []string{"run", "-d", "--name", name, "--network", w.a.cfg.network, "--hostname", hostname, "--ipc", "shareable"}
	args = append(args, w.labels("")...)
	for _, host := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
		args = append(args, "--add-host", host+":"+w.a.cfg.nodeIP)
	}
	for _, alias := range p.Spec.HostAliases {
		for _, h := range alias.Hostnames {
			args = append(args, "--add-host", h+":"+alias.IP)
		}
	}
	if sc := p.Spec.SecurityContext; sc != nil {
		for _, s := range sc.Sysctls {
			args = append(args, "--sysctl", s.Name+"="+s.Value)
		}
	}
	args = append(args, pauseImage)
	id, err := docker(ctx, args...)
	if err != nil {
		return err
	}
	info, err := inspectContainer(ctx, id)
	if err != nil {
		_, _ = docker(ctx, "rm", "-f", id)
		return err
	}
	ip := info.NetworkSettings.Networks[w.a.cfg.network].IPAddress
	if ip == "" {
		_, _ = docker(ctx, "rm", "-f", id)
		return fmt.Errorf("sandbox has no address on network %s", w.a.cfg.network)
	}
	w.sandboxID, w.podIP = id, ip
	w.a.exits.watch(id, func() { w.post(func() { w.sandboxExited(id) }) })
	w.volumes.everything = false // downward API files may name the pod IP
	w.setCondition(v1.PodReadyToStartContainers, v1.ConditionTrue, "", "")
	slog.Info("sandbox started", "pod", w.key, "id", shortID(id), "podIP", ip)
	return nil
}

// createArgs is the full `docker create` command line of c.
func (w *podWorker) createArgs(ctx context.Context, c *ctr) ([]string, error) {
	p := w.pod
	spec := c.spec
	name := fmt.Sprintf("k8s_%s_%s_%s_%s_%d", spec.Name, p.Name, p.Namespace, p.UID, c.restartCount)
	args := []string{"create", "--name", name,
		"--network", "container:" + w.sandboxID, "--ipc", "container:" + w.sandboxID}
	if p.Spec.ShareProcessNamespace != nil && *p.Spec.ShareProcessNamespace {
		args = append(args, "--pid", "container:"+w.sandboxID)
	}
	args = append(args, w.labels(spec.Name)...)

	objs := newPodObjects(w.a, p.Namespace)
	env, err := w.a.containerEnv(ctx, p, spec, w.podIP, objs)
	if err != nil {
		return nil, err
	}
	values := map[string]string{}
	for _, e := range env {
		args = append(args, "-e", e.name+"="+e.value)
		values[e.name] = e.value
	}
	lookup := func(n string) (string, bool) { v, ok := values[n]; return v, ok }

	mounts, err := w.mountArgs(spec, lookup)
	if err != nil {
		return nil, err
	}
	args = append(args, mounts...)
	security, err := w.securityArgs(c)
	if err != nil {
		return nil, err
	}
	args = append(args, security...)
	if q, ok := spec.Resources.Limits[v1.ResourceMemory]; ok && !q.IsZero() {
		args = append(args, "--memory", strconv.FormatInt(q.Value(), 10))
	}
	if q, ok := spec.Resources.Limits[v1.ResourceCPU]; ok && !q.IsZero() {
		args = append(args, "--cpus", strconv.FormatFloat(float64(q.MilliValue())/1000, 'f', 3, 64))
	}
	if spec.WorkingDir != "" {
		args = append(args, "--workdir", spec.WorkingDir)
	}
	if spec.Stdin {
		args = append(args, "--interactive")
	}
	if spec.TTY {
		args = append(args, "--tty")
	}

	// command replaces the image's ENTRYPOINT (and, as in Kubernetes, drops its CMD); args replace CMD.
	command := make([]string, len(spec.Command))
	for i, s := range spec.Command {
		command[i] = expand(s, lookup)
	}
	if len(command) > 0 {
		args = append(args, "--entrypoint", command[0])
	}
	args = append(args, spec.Image)
	if len(command) > 1 {
		args = append(args, command[1:]...)
	}
	for _, s := range spec.Args {
		args = append(args, expand(s, lookup))
	}
	return args, nil
}

// mountArgs bind-mounts the pod's volumes as the container asks (readOnly, subPath, subPathExpr).
func (w *podWorker) mountArgs(spec *v1.Container, lookup func(string) (string, bool)) ([]string, error) {
	var args []string
	for _, m := range spec.VolumeMounts {
		host, ok := w.volumes.paths[m.Name]
		if !ok {
			return nil, configErrorf("volume mount %q refers to an unknown volume", m.Name)
		}
		sub := m.SubPath
		if m.SubPathExpr != "" {
			sub = expand(m.SubPathExpr, lookup)
		}
		if sub != "" {
			if !validRelativePath(sub) {
				return nil, configErrorf("volume mount %q: invalid subPath %q", m.Name, sub)
			}
			host = filepath.Join(host, sub)
			if _, err := os.Stat(host); err != nil {
				// As the kubelet does, a missing subPath of a writable volume becomes a directory.
				if err := os.MkdirAll(host, 0o777); err != nil {
					return nil, fmt.Errorf("volume mount %q: creating subPath: %w", m.Name, err)
				}
			}
		}
		if strings.Contains(host, ",") || strings.Contains(m.MountPath, ",") {
			return nil, configErrorf("volume mount %q: paths with commas are not supported", m.Name)
		}
		opt := "type=bind,source=" + host + ",target=" + m.MountPath
		if m.ReadOnly {
			opt += ",readonly"
		}
		args = append(args, "--mount", opt)
	}
	return args, nil
}

// securityArgs turns the pod and container security contexts (the container's wins) into docker flags.
func (w *podWorker) securityArgs(c *ctr) ([]string, error) {
	p := w.pod
	pod := p.Spec.SecurityContext
	if pod == nil {
		pod = &v1.PodSecurityContext{}
	}
	sc := c.spec.SecurityContext
	if sc == nil {
		sc = &v1.SecurityContext{}
	}
	uid, gid, nonRoot := pod.RunAsUser, pod.RunAsGroup, pod.RunAsNonRoot
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		gid = sc.RunAsGroup
	}
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	who := fmt.Sprintf("(pod: %q, container: %s)", fmt.Sprintf("%s_%s(%s)", p.Name, p.Namespace, p.UID), c.spec.Name)
	imageUser, _, _ := strings.Cut(c.image.Config.User, ":")
	if nonRoot != nil && *nonRoot {
		if uid != nil {
			if *uid == 0 {
				return nil, configErrorf("container's runAsUser breaks non-root policy %s", who)
			}
		} else {
			switch n, err := strconv.ParseInt(imageUser, 10, 64); {
			case imageUser == "" || imageUser == "root" || (err == nil && n == 0):
				return nil, configErrorf("container has runAsNonRoot and image will run as root %s", who)
			case err != nil:
				return nil, configErrorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root %s", imageUser, who)
			}
		}
	}
	var args []string
	switch {
	case uid != nil && gid != nil:
		args = append(args, "--user", fmt.Sprintf("%d:%d", *uid, *gid))
	case uid != nil:
		args = append(args, "--user", strconv.FormatInt(*uid, 10))
	case gid != nil:
		user := imageUser
		if user == "" {
			user = "0"
		}
		args = append(args, "--user", fmt.Sprintf("%s:%d", user, *gid))
	}
	for _, g := range pod.SupplementalGroups {
		args = append(args, "--group-add", strconv.FormatInt(g, 10))
	}
	if pod.FSGroup != nil {
		args = append(args, "--group-add", strconv.FormatInt(*pod.FSGroup, 10))
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		args = append(args, "--read-only")
	}
	if sc.Privileged != nil && *sc.Privileged {
		args = append(args, "--privileged")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	if caps := sc.Capabilities; caps != nil {
		for _, cp := range caps.Drop {
			args = append(args, "--cap-drop", string(cp))
		}
		for _, cp := range caps.Add {
			args = append(args, "--cap-add", string(cp))
		}
	}
	return args, nil
}

// sandboxExited handles a sandbox that stopped under a running pod (removed or killed from outside): as the
// kubelet does on SandboxChanged, the containers go, and the next sync makes a new sandbox and starts them again
// (init containers included) under the restart policy.
func (w *podWorker) sandboxExited(id string) {
	if id != w.sandboxID || w.term != nil || w.terminal {
		return
	}
	slog.Warn("pod sandbox stopped; re-creating it", "pod", w.key, "id", shortID(id))
	w.event(nil, v1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := removeLabelled(ctx, labelPodUID+"="+string(w.pod.UID)); err != nil {
		slog.Warn("removing pod containers", "pod", w.key, "err", err)
	}
	for _, c := range w.all() {
		if c.probeCancel != nil {
			c.probeCancel()
			c.probeCancel = nil
		}
		if c.running {
			c.running, c.ready, c.started = false, false, false
			c.exited = true
			c.exit = v1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", ContainerID: "docker://" + c.id,
				StartedAt: metav1.NewTime(c.startedAt), FinishedAt: metav1.Now(), Message: "the pod sandbox stopped"}
			c.nextTry = time.Time{}
		}
		if c.isInit && !c.sidecar() && c.exited && c.exit.ExitCode == 0 {
			c.exited, c.id = false, ""
		}
		c.gen++
	}
	w.sandboxID = ""
	w.initialized = false
	w.setCondition(v1.PodReadyToStartContainers, v1.ConditionFalse, "", "")
}
