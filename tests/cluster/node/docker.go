package main

// The Docker engine, driven through the docker CLI; JSON from `docker inspect` is parsed here.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

const pauseImage = "kroute/pause:latest"

// dockerCmd runs docker with args and returns its trimmed standard output; the error carries standard error.
func dockerCmd(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %s", args[0], msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

func docker(ctx context.Context, args ...string) (string, error) {
	return dockerCmd(ctx, nil, args...)
}

type containerInfo struct {
	ID    string
	Image string
	State struct {
		Running    bool
		OOMKilled  bool
		ExitCode   int
		Error      string
		StartedAt  time.Time
		FinishedAt time.Time
	}
	Config struct {
		User       string
		StopSignal string
	}
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
	}
}

func inspectContainer(ctx context.Context, id string) (*containerInfo, error) {
	out, err := docker(ctx, "container", "inspect", id)
	if err != nil {
		return nil, err
	}
	var infos []containerInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 1 {
		return nil, fmt.Errorf("docker inspect %s: unexpected answer: %v", id, err)
	}
	return &infos[0], nil
}

type imageInfo struct {
	ID     string
	Config struct {
		User       string
		StopSignal string
		Labels     map[string]string
	}
}

func inspectImage(ctx context.Context, ref string) (*imageInfo, error) {
	out, err := docker(ctx, "image", "inspect", ref)
	if err != nil {
		return nil, err
	}
	var infos []imageInfo
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 1 {
		return nil, fmt.Errorf("docker image inspect %s: unexpected answer: %v", ref, err)
	}
	return &infos[0], nil
}

// ensurePauseImage imports this very binary as the sandbox image unless Docker has it from this same
// binary already (the image's label kroute.dev/binary names a hash of it): pods that run `/pause tool`
// get the commands of the agent that runs them. The image it replaces goes when no container uses it.
func ensurePauseImage(ctx context.Context) error {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("reading own binary for the pause image: %w", err)
	}
	sum := sha256.Sum256(self)
	digest := hex.EncodeToString(sum[:8])
	old, err := inspectImage(ctx, pauseImage)
	if err == nil && old.Config.Labels["kroute.dev/binary"] == digest {
		return nil
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "pause", Mode: 0o755, Size: int64(len(self)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(self); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if _, err := dockerCmd(ctx, &layer, "import", "--change", `ENTRYPOINT ["/pause","pause"]`,
		"--change", "LABEL kroute.dev/binary="+digest, "-", pauseImage); err != nil {
		return err
	}
	if old != nil {
		_, _ = docker(ctx, "image", "rm", old.ID)
	}
	return nil
}

func dockerVersion(ctx context.Context) string {
	v, err := docker(ctx, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		return "unknown"
	}
	return v
}

// removeLabelled force-removes every container carrying label (key=value).
func removeLabelled(ctx context.Context, label string) (int, error) {
	out, err := docker(ctx, "ps", "-aq", "--filter", "label="+label)
	if err != nil {
		return 0, err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return 0, nil
	}
	_, err = docker(ctx, append([]string{"rm", "-f"}, ids...)...)
	return len(ids), err
}
