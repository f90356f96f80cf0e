package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestExpandFollowsKubernetes(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"$(A)-$(B)":  "1-two",
		"$$(A)":      "$(A)",
		"$(MISSING)": "$(MISSING)",
		"$(A":        "$(A",
		"cost $5":    "cost $5",
		"trailing $": "trailing $",
		"$$$(A)":     "$1",
		"no refs":    "no refs",
		"$(A)$(A)$$": "11$",
	} {
		if got := expand(in, lookup); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoffDoublesFromTheBaseToFiveMinutes(t *testing.T) {
	w := &podWorker{a: &agent{cfg: &config{restartBackoff: 10 * time.Second}}}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second}
	for n, d := range want {
		if got := w.backoff(int32(n)); got != d {
			t.Errorf("backoff(%d) = %s, want %s", n, got, d)
		}
	}
}

func TestWriteAtomicSwapsTheDataLinkAndDropsOldFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	first := map[string]volumeFile{"a": {[]byte("1"), 0o644}, "sub/b": {[]byte("2"), 0o600}}
	if err := writeAtomic(dir, first, -1, ""); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sub", "b")); string(b) != "2" {
		t.Fatalf("sub/b = %q", b)
	}
	if info, _ := os.Stat(filepath.Join(dir, "sub", "b")); info.Mode().Perm() != 0o600 {
		t.Fatalf("sub/b mode %o", info.Mode().Perm())
	}
	oldTarget, _ := os.Readlink(filepath.Join(dir, "..data"))
	second := map[string]volumeFile{"a": {[]byte("3"), 0o644}}
	if err := writeAtomic(dir, second, -1, hashFiles(first, -1)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "3" {
		t.Fatalf("a = %q after the update", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Fatalf("sub should be gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, oldTarget)); !os.IsNotExist(err) {
		t.Fatalf("the old data directory should be gone: %v", err)
	}
	if err := writeAtomic(dir, map[string]volumeFile{"../escape": {nil, 0o644}}, -1, ""); err == nil {
		t.Fatal("a path leaving the volume was accepted")
	}
}
