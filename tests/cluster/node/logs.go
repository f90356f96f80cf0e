package main

// The kubelet's log endpoint, enough for `kubectl logs`: the API server proxies
// /containerLogs/<namespace>/<pod>/<container> to <node InternalIP>:<kubelet port>, and the answer is
// `docker logs` of that container. The serving certificate is self-signed: the API server checks a
// kubelet's certificate only when given --kubelet-certificate-authority, which the test cluster is not.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func selfSignedCertificate(ip string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "kroute-node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP(ip)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveLogs serves the log endpoint on <node ip>:port until ctx ends.
func (a *agent) serveLogs(ctx context.Context, port int) {
	cert, err := selfSignedCertificate(a.cfg.nodeIP)
	if err != nil {
		slog.Warn("log endpoint: no certificate", "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", a.containerLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	server := &http.Server{Addr: net.JoinHostPort(a.cfg.nodeIP, strconv.Itoa(port)), Handler: mux,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = server.Close()
	}()
	for ctx.Err() == nil {
		err := server.ListenAndServeTLS("", "")
		if errors.Is(err, http.ErrServerClosed) {
			return
		}
		slog.Warn("log endpoint cannot listen yet; retrying", "addr", server.Addr, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

func (a *agent) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	q := r.URL.Query()
	out, err := docker(r.Context(), "ps", "-aq", "--filter", "label="+labelCluster+"="+a.cfg.clusterID,
		"--filter", "label="+labelNamespace+"="+ns, "--filter", "label="+labelPodName+"="+pod,
		"--filter", "label="+labelContainer+"="+container)
	ids := strings.Fields(out) // the newest first: the current container, then the previous one
	which := 0
	if q.Get("previous") == "true" {
		which = 1
	}
	if err != nil || len(ids) <= which {
		http.Error(w, fmt.Sprintf("container %q in pod %q is not available (previous: %t)", container, pod, which == 1), http.StatusNotFound)
		return
	}
	args := []string{"logs"}
	if q.Get("follow") == "true" {
		args = append(args, "--follow")
	}
	if q.Get("timestamps") == "true" {
		args = append(args, "--timestamps")
	}
	if n := q.Get("tailLines"); n != "" {
		args = append(args, "--tail", n)
	}
	if s := q.Get("sinceSeconds"); s != "" {
		args = append(args, "--since", s+"s")
	} else if t := q.Get("sinceTime"); t != "" {
		args = append(args, "--since", t)
	}
	args = append(args, ids[which])
	cmd := exec.CommandContext(r.Context(), "docker", args...)
	w.Header().Set("Content-Type", "text/plain")
	var limit int64 = -1
	if l, err := strconv.ParseInt(q.Get("limitBytes"), 10, 64); err == nil && l > 0 {
		limit = l
	}
	writer := &flushWriter{w: w, limit: limit}
	cmd.Stdout, cmd.Stderr = writer, writer
	if err := cmd.Run(); err != nil && r.Context().Err() == nil && !writer.full() {
		slog.Debug("docker logs", "pod", ns+"/"+pod, "container", container, "err", err)
	}
}

// flushWriter sends each chunk at once (for --follow) and stops after limit bytes (-1: no limit).
type flushWriter struct {
	w     http.ResponseWriter
	limit int64
	sent  int64
}

func (f *flushWriter) full() bool { return f.limit >= 0 && f.sent >= f.limit }

func (f *flushWriter) Write(p []byte) (int, error) {
	n := len(p)
	if f.limit >= 0 {
		if f.full() {
			return 0, errors.New("limitBytes reached")
		}
		if rest := f.limit - f.sent; int64(len(p)) > rest {
			p = p[:rest]
		}
	}
	written, err := f.w.Write(p)
	f.sent += int64(written)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	if err != nil {
		return written, err
	}
	return n, nil
}
