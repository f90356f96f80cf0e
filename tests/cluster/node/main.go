// Command kroute-node is a small kubelet for the kroute test cluster: it registers one Node and runs
// the pods bound to it as Docker containers on one bridge network. `kroute-node pause` is the process
// of every pod sandbox (the binary is also the pause image); `kroute-node tool` holds the few commands
// tests run in pods made from that image.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type config struct {
	kubeconfig     string
	nodeName       string
	network        string
	clusterID      string
	nodeIP         string
	apiserver      string
	stateDir       string
	logFile        string
	restartBackoff time.Duration
	kubeletPort    int
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "pause" {
		os.Exit(pause())
	}
	if len(os.Args) > 1 && os.Args[1] == "tool" {
		os.Exit(tool(os.Args[2:]))
	}
	var cfg config
	fs := flag.NewFlagSet("kroute-node", flag.ExitOnError)
	fs.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig of the node identity (system:node:<name>)")
	fs.StringVar(&cfg.nodeName, "node-name", "kroute-node", "name of the Node object")
	fs.StringVar(&cfg.network, "network", "", "docker network the pod sandboxes join")
	fs.StringVar(&cfg.clusterID, "cluster-id", "", "value of the kroute.dev/cluster label on every container")
	fs.StringVar(&cfg.nodeIP, "node-ip", "", "the host's address on the network: the Node's InternalIP and the API relay's address")
	fs.StringVar(&cfg.apiserver, "apiserver", "", "host:port of the API server the relay forwards to")
	fs.StringVar(&cfg.stateDir, "state-dir", "", "directory for pod volumes")
	fs.StringVar(&cfg.logFile, "log-file", "", "append logs here instead of standard error")
	fs.IntVar(&cfg.kubeletPort, "kubelet-port", 10250, "port of the log endpoint (kubectl logs) on --node-ip; 0: none")
	fs.DurationVar(&cfg.restartBackoff, "restart-backoff", 10*time.Second, "first container restart back-off (doubles up to 5m)")
	_ = fs.Parse(os.Args[1:])

	var out io.Writer = os.Stderr
	if cfg.logFile != "" {
		f, err := os.OpenFile(cfg.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kroute-node: %v\n", err)
			os.Exit(2)
		}
		out = f
	}
	slog.SetDefault(slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})))

	for name, value := range map[string]string{"kubeconfig": cfg.kubeconfig, "network": cfg.network,
		"cluster-id": cfg.clusterID, "node-ip": cfg.nodeIP, "apiserver": cfg.apiserver, "state-dir": cfg.stateDir} {
		if value == "" {
			slog.Error("missing flag", "flag", "--"+name)
			os.Exit(2)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, &cfg); err != nil && !errors.Is(err, context.Canceled) {
		slog.Error("kroute-node failed", "err", err)
		os.Exit(1)
	}
	slog.Info("stopped")
}

// pause is the sandbox's process: it holds the pod's network namespace until told to stop.
func pause() int {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	return 0
}
