package main

// The API relay: pods dial <node ip>:<apiserver port> (KUBERNETES_SERVICE_HOST/PORT and
// kubernetes.default.svc in /etc/hosts) and reach the API server on loopback, as kube-proxy would
// route the `kubernetes` Service.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"time"
)

func relay(ctx context.Context, listen, target string) {
	var ln net.Listener
	for {
		var err error
		var lc net.ListenConfig
		ln, err = lc.Listen(ctx, "tcp", listen)
		if err == nil {
			break
		}
		slog.Warn("api relay cannot listen yet; retrying", "listen", listen, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	slog.Info("api relay listening", "listen", listen, "target", target)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			slog.Warn("api relay accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go relayConn(ctx, conn, target)
	}
}

func relayConn(ctx context.Context, client net.Conn, target string) {
	defer client.Close()
	var d net.Dialer
	server, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		slog.Warn("api relay dial", "target", target, "err", err)
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
}
