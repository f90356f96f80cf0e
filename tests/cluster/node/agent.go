package main

// The agent: startup (leftovers, pause image, relay, Node), the pod informer that feeds one worker
// per pod UID, and the shutdown that removes every container of the cluster.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
)

const (
	labelCluster   = "kroute.dev/cluster"
	labelPodUID    = "kroute.dev/pod-uid"
	labelNamespace = "kroute.dev/pod-namespace"
	labelPodName   = "kroute.dev/pod-name"
	labelContainer = "kroute.dev/container"
)

type agent struct {
	cfg          *config
	client       kubernetes.Interface
	recorder     record.EventRecorder
	apiPort      string
	nodeCapacity v1.ResourceList
	exits        *exitWatcher

	mu       sync.Mutex
	workers  map[types.UID]*podWorker
	finished map[types.UID]time.Time // workers that are done; late informer events for them are ignored
	wg       sync.WaitGroup
}

func run(ctx context.Context, cfg *config) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	restConfig.UserAgent = "kroute-node/" + kubeletVersion
	restConfig.QPS, restConfig.Burst = 50, 100
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	_, apiPort, err := net.SplitHostPort(cfg.apiserver)
	if err != nil {
		return fmt.Errorf("--apiserver %q: %w", cfg.apiserver, err)
	}
	a := &agent{cfg: cfg, client: client, apiPort: apiPort, exits: newExitWatcher(cfg.clusterID),
		workers: map[types.UID]*podWorker{}, finished: map[types.UID]time.Time{}}

	// Starting is a node reboot: nothing of an earlier run survives, the pods bound here start afresh.
	podsDir := filepath.Join(cfg.stateDir, "pods")
	a.removeEverything(ctx)
	if err := os.MkdirAll(podsDir, 0o755); err != nil {
		return err
	}
	if err := ensurePauseImage(ctx); err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	go relay(ctx, net.JoinHostPort(cfg.nodeIP, apiPort), cfg.apiserver)
	go a.exits.run(ctx)
	if cfg.kubeletPort > 0 {
		go a.serveLogs(ctx, cfg.kubeletPort)
	}

	node := newNodeAgent(ctx, cfg, client)
	a.nodeCapacity = node.capacity
	for {
		err := node.register(ctx)
		if err == nil {
			break
		}
		slog.Warn("node registration failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	go node.heartbeat(ctx)

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	a.recorder = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.nodeName})

	informerDone := make(chan struct{})
	go func() {
		a.watchPods(ctx)
		close(informerDone)
	}()
	<-ctx.Done()
	slog.Info("stopping: removing every container of the cluster", "cluster", cfg.clusterID)
	<-informerDone
	waited := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(3 * time.Second):
		slog.Warn("some pod workers did not stop in time")
	}
	a.removeEverything(context.Background())
	broadcaster.Shutdown()
	return nil
}

// removeEverything force-removes this cluster's containers, unmounts tmpfs volumes and drops pod directories.
func (a *agent) removeEverything(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := removeLabelled(ctx, labelCluster+"="+a.cfg.clusterID)
	if err != nil {
		slog.Warn("removing containers", "err", err)
	} else if n > 0 {
		slog.Info("removed containers", "count", n)
	}
	podsDir := filepath.Join(a.cfg.stateDir, "pods")
	unmountUnder(podsDir)
	if err := os.RemoveAll(podsDir); err != nil {
		slog.Warn("removing pod directories", "dir", podsDir, "err", err)
	}
}

func (a *agent) watchPods(ctx context.Context) {
	selector := "spec.nodeName=" + a.cfg.nodeName
	lw := cache.NewFilteredListWatchFromClient(a.client.CoreV1().RESTClient(), "pods", metav1.NamespaceAll,
		func(o *metav1.ListOptions) { o.FieldSelector = selector })
	informer := cache.NewSharedIndexInformer(lw, &v1.Pod{}, 0, cache.Indexers{})
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.podChanged(ctx, obj.(*v1.Pod)) },
		UpdateFunc: func(_, obj any) { a.podChanged(ctx, obj.(*v1.Pod)) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok {
				a.podDeleted(pod)
			}
		},
	})
	informer.Run(ctx.Done())
}

func (a *agent) podChanged(ctx context.Context, pod *v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, done := a.finished[pod.UID]; done {
		return
	}
	w := a.workers[pod.UID]
	if w == nil {
		w = newPodWorker(ctx, a, pod)
		a.workers[pod.UID] = w
		a.wg.Add(1)
		go w.run()
		return
	}
	w.update(pod)
}

func (a *agent) podDeleted(pod *v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w := a.workers[pod.UID]; w != nil {
		w.removed()
	}
}

func (a *agent) workerDone(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.workers, uid)
	a.finished[uid] = time.Now()
	for id, at := range a.finished {
		if time.Since(at) > 10*time.Minute {
			delete(a.finished, id)
		}
	}
	a.wg.Done()
}
