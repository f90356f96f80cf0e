package main

// The gRPC health check (grpc.health.v1.Health/Check) spoken by hand over unencrypted HTTP/2, for
// grpc probes (as the kubelet runs them: plaintext, no TLS) and for the test server in `tool grpc-health`.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
)

const healthCheckPath = "/grpc.health.v1.Health/Check"

var servingStatus = map[uint64]string{0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

// grpcFrame is one length-prefixed, uncompressed gRPC message.
func grpcFrame(message []byte) []byte {
	frame := make([]byte, 5, 5+len(message))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(message)))
	return append(frame, message...)
}

func unframe(body []byte) ([]byte, error) {
	if len(body) < 5 || body[0] != 0 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
		return nil, errors.New("malformed gRPC message")
	}
	return body[5:], nil
}

// protoField1 finds field 1 of a protobuf message: a string (wire type 2) or a varint (wire type 0).
func protoField1(message []byte) (str []byte, num uint64, ok bool) {
	for len(message) > 0 {
		tag, n := binary.Uvarint(message)
		if n <= 0 {
			return nil, 0, false
		}
		message = message[n:]
		switch tag & 7 {
		case 0:
			v, m := binary.Uvarint(message)
			if m <= 0 {
				return nil, 0, false
			}
			message = message[m:]
			if tag>>3 == 1 {
				return nil, v, true
			}
		case 2:
			l, m := binary.Uvarint(message)
			if m <= 0 || uint64(len(message)-m) < l {
				return nil, 0, false
			}
			value := message[m : m+int(l)]
			message = message[m+int(l):]
			if tag>>3 == 1 {
				return value, 0, true
			}
		default:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

func h2cProtocols() *http.Protocols {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &p
}

func doGRPC(ctx context.Context, g *v1.GRPCAction, ip string) (bool, string) {
	var request []byte
	if g.Service != nil && *g.Service != "" {
		request = append([]byte{0x0a}, binary.AppendUvarint(nil, uint64(len(*g.Service)))...)
		request = append(request, *g.Service...)
	}
	url := "http://" + net.JoinHostPort(ip, strconv.Itoa(int(g.Port))) + healthCheckPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(grpcFrame(request)))
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("User-Agent", "kube-probe/1.36")
	client := &http.Client{Transport: &http.Transport{Protocols: h2cProtocols(), DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Sprintf("failed to connect service %q within %s: %v", url, timeoutOf(ctx), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if err != nil {
		return false, err.Error()
	}
	code := resp.Trailer.Get("Grpc-Status")
	if code == "" {
		code = resp.Header.Get("Grpc-Status") // a trailers-only answer
	}
	if code != "0" {
		return false, fmt.Sprintf("rpc error: code = %s desc = %s", code, resp.Header.Get("Grpc-Message")+resp.Trailer.Get("Grpc-Message"))
	}
	message, err := unframe(body)
	if err != nil {
		return false, err.Error()
	}
	_, status, _ := protoField1(message)
	if status != 1 {
		return false, fmt.Sprintf("service unhealthy (responded with %q)", servingStatus[status])
	}
	return true, ""
}

func timeoutOf(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return time.Until(deadline).Round(time.Second)
	}
	return 0
}

// serveGRPCHealth answers every health check with status (SERVING, NOT_SERVING, ...) on port.
func serveGRPCHealth(port string, status string) error {
	code := uint64(0)
	for n, name := range servingStatus {
		if name == status {
			code = n
		}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		if r.URL.Path != healthCheckPath {
			w.Header().Set("Grpc-Status", "12") // UNIMPLEMENTED
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(grpcFrame(binary.AppendUvarint([]byte{0x08}, code)))
		w.Header().Set("Grpc-Status", "0")
	})
	server := &http.Server{Addr: ":" + port, Handler: handler, Protocols: h2cProtocols(), ReadHeaderTimeout: 10 * time.Second}
	return server.ListenAndServe()
}
