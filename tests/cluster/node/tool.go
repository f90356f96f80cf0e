package main

// `kroute-node tool ...`: a few commands the tests run inside pods made from the pause image (which
// holds only this binary, no shell): files, identity, exit codes, signals and the API server.

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const toolUsage = `usage: kroute-node tool COMMAND
  cat FILE                  print FILE
  write FILE TEXT           write TEXT to FILE
  append FILE TEXT [SECS]   append "TEXT <unix time>" to FILE, then sleep SECS
  id                        print uid, gid and groups
  env                       print the environment
  exit CODE                 exit with CODE
  term-log FILE SECS        sleep; on SIGTERM append "term <unix time>" to FILE and exit after SECS
  grpc-health PORT STATUS   answer gRPC health checks on PORT with STATUS (SERVING, NOT_SERVING)
  whoami                    ask the API server who the pod's service-account token is (SelfSubjectReview)`

func tool(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, toolUsage)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	need := func(n int) bool {
		if len(args) < n+1 {
			fmt.Fprintln(os.Stderr, toolUsage)
			return false
		}
		return true
	}
	switch args[0] {
	case "cat":
		if !need(1) {
			return 2
		}
		b, err := os.ReadFile(args[1])
		if err != nil {
			return fail(err)
		}
		os.Stdout.Write(b)
	case "write":
		if !need(2) {
			return 2
		}
		if err := os.WriteFile(args[1], []byte(args[2]), 0o644); err != nil {
			return fail(err)
		}
	case "append":
		if !need(2) {
			return 2
		}
		if err := appendLine(args[1], args[2]); err != nil {
			return fail(err)
		}
		if len(args) > 3 {
			secs, _ := strconv.ParseFloat(args[3], 64)
			time.Sleep(time.Duration(secs * float64(time.Second)))
		}
	case "id":
		groups, _ := syscall.Getgroups()
		fmt.Printf("uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups)
	case "env":
		for _, e := range os.Environ() {
			fmt.Println(e)
		}
	case "exit":
		if !need(1) {
			return 2
		}
		code, _ := strconv.Atoi(args[1])
		return code
	case "term-log":
		if !need(2) {
			return 2
		}
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM)
		<-signals
		if err := appendLine(args[1], "term"); err != nil {
			return fail(err)
		}
		secs, _ := strconv.ParseFloat(args[2], 64)
		time.Sleep(time.Duration(secs * float64(time.Second)))
	case "grpc-health":
		if !need(2) {
			return 2
		}
		return fail(serveGRPCHealth(args[1], args[2]))
	case "whoami":
		return whoami()
	default:
		fmt.Fprintln(os.Stderr, toolUsage)
		return 2
	}
	return 0
}

func appendLine(path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s %.3f\n", text, float64(time.Now().UnixNano())/1e9)
	return err
}

// whoami posts a SelfSubjectReview to https://kubernetes.default.svc:$KUBERNETES_SERVICE_PORT with the pod's
// token and CA, as an in-cluster client would, and prints the answer.
func whoami() int {
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	token, err := os.ReadFile(dir + "token")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ca, err := os.ReadFile(dir + "ca.crt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://kubernetes.default.svc:" + os.Getenv("KUBERNETES_SERVICE_PORT") + "/apis/authentication.k8s.io/v1/selfsubjectreviews"
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	os.Stdout.Write(answer)
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(os.Stderr, "HTTP %d\n", resp.StatusCode)
		return 1
	}
	return 0
}
