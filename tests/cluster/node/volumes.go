package main

// Pod volumes under <state-dir>/pods/<uid>/volumes/<name>, bind-mounted into the containers.
// Secret, ConfigMap, downward API and projected volumes are written as the kubelet's atomic writer
// does: a fresh timestamped directory, the ..data symlink swapped to it, user paths linking through it.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type volumeFile struct {
	data []byte
	mode os.FileMode
}

type cachedToken struct {
	token     string
	refreshAt time.Time
}

// volumeState is one pod's volumes; only its worker touches it.
type volumeState struct {
	root       string            // <state-dir>/pods/<uid>/volumes
	paths      map[string]string // volume name -> host directory or file
	written    map[string]string // volume name -> hash of the files last written
	tmpfs      map[string]bool   // host directories with a tmpfs mounted by us
	tokens     map[string]*cachedToken
	refreshAt  time.Time // next time the atomic volumes are rebuilt (token expiry, Secret changes)
	everything bool      // every volume has been made once
}

func newVolumeState(root string) *volumeState {
	return &volumeState{root: root, paths: map[string]string{}, written: map[string]string{},
		tmpfs: map[string]bool{}, tokens: map[string]*cachedToken{}}
}

const defaultFileMode = 0o644

// setupVolumes makes (or refreshes) every volume of the pod; an error means some volume is not ready.
func (w *podWorker) setupVolumes(ctx context.Context) error {
	vs := w.volumes
	p := w.pod
	if vs.everything && time.Now().Before(vs.refreshAt) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fsGroup := -1
	if sc := p.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		fsGroup = int(*sc.FSGroup)
	}
	objs := newPodObjects(w.a, p.Namespace)
	vs.refreshAt = time.Now().Add(time.Minute)
	var errs []error
	for i := range p.Spec.Volumes {
		vol := &p.Spec.Volumes[i]
		if err := w.setupVolume(ctx, vol, objs, fsGroup); err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", vol.Name, err))
		}
	}
	if len(errs) > 0 {
		vs.refreshAt = time.Time{}
		return errors.Join(errs...)
	}
	vs.everything = true
	return nil
}

func (w *podWorker) setupVolume(ctx context.Context, vol *v1.Volume, objs *podObjects, fsGroup int) error {
	vs := w.volumes
	dir := filepath.Join(vs.root, vol.Name)
	switch {
	case vol.EmptyDir != nil:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		if vol.EmptyDir.Medium == v1.StorageMediumMemory && !vs.tmpfs[dir] {
			opts := "mode=0777"
			if vol.EmptyDir.SizeLimit != nil && !vol.EmptyDir.SizeLimit.IsZero() {
				opts += fmt.Sprintf(",size=%d", vol.EmptyDir.SizeLimit.Value())
			}
			if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
				return fmt.Errorf("mounting tmpfs on %s: %w", dir, err)
			}
			vs.tmpfs[dir] = true
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return err
		}
		if fsGroup >= 0 {
			_ = os.Chown(dir, 0, fsGroup)
			_ = os.Chmod(dir, 0o777|os.ModeSetgid)
		}
		vs.paths[vol.Name] = dir
		return nil
	case vol.HostPath != nil:
		path := vol.HostPath.Path
		var kind v1.HostPathType
		if vol.HostPath.Type != nil {
			kind = *vol.HostPath.Type
		}
		switch kind {
		case v1.HostPathDirectoryOrCreate:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case v1.HostPathFileOrCreate:
			f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			f.Close()
		case v1.HostPathUnset:
			if _, err := os.Lstat(path); err != nil {
				if err := os.MkdirAll(path, 0o755); err != nil {
					return err
				}
			}
		default:
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("hostPath type check failed: %w", err)
			}
		}
		vs.paths[vol.Name] = path
		return nil
	}
	files, err := w.volumeFiles(ctx, vol, objs)
	if err != nil {
		return err
	}
	if err := writeAtomic(dir, files, fsGroup, vs.written[vol.Name]); err != nil {
		return err
	}
	vs.written[vol.Name] = hashFiles(files, fsGroup)
	vs.paths[vol.Name] = dir
	return nil
}

// volumeFiles computes the content of a Secret, ConfigMap, downward API or projected volume.
func (w *podWorker) volumeFiles(ctx context.Context, vol *v1.Volume, objs *podObjects) (map[string]volumeFile, error) {
	files := map[string]volumeFile{}
	mode := func(m *int32, def os.FileMode) os.FileMode {
		if m != nil {
			return os.FileMode(*m) & 0o777
		}
		return def
	}
	switch {
	case vol.Secret != nil:
		src := vol.Secret
		err := w.secretFiles(ctx, objs, src.SecretName, src.Items, src.Optional, mode(src.DefaultMode, defaultFileMode), files)
		return files, err
	case vol.ConfigMap != nil:
		src := vol.ConfigMap
		err := w.configMapFiles(ctx, objs, src.Name, src.Items, src.Optional, mode(src.DefaultMode, defaultFileMode), files)
		return files, err
	case vol.DownwardAPI != nil:
		err := w.downwardFiles(vol.DownwardAPI.Items, mode(vol.DownwardAPI.DefaultMode, defaultFileMode), files)
		return files, err
	case vol.Projected != nil:
		def := mode(vol.Projected.DefaultMode, defaultFileMode)
		for _, src := range vol.Projected.Sources {
			var err error
			switch {
			case src.Secret != nil:
				err = w.secretFiles(ctx, objs, src.Secret.Name, src.Secret.Items, src.Secret.Optional, def, files)
			case src.ConfigMap != nil:
				err = w.configMapFiles(ctx, objs, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, def, files)
			case src.DownwardAPI != nil:
				err = w.downwardFiles(src.DownwardAPI.Items, def, files)
			case src.ServiceAccountToken != nil:
				var token string
				token, err = w.serviceAccountToken(ctx, src.ServiceAccountToken)
				if err == nil {
					files[src.ServiceAccountToken.Path] = volumeFile{[]byte(token), def}
				}
			default:
				err = fmt.Errorf("unsupported projected volume source")
			}
			if err != nil {
				return nil, err
			}
		}
		return files, nil
	}
	return nil, fmt.Errorf("unsupported volume type (kroute-node supports emptyDir, hostPath, secret, configMap, downwardAPI, projected)")
}

func (w *podWorker) secretFiles(ctx context.Context, objs *podObjects, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile) error {
	s, err := objs.secret(ctx, name)
	if err != nil {
		return err
	}
	if s == nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("secret %q not found", name)
	}
	return keyFiles(s.Data, items, optional, def, files, "secret "+name)
}

func (w *podWorker) configMapFiles(ctx context.Context, objs *podObjects, name string, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile) error {
	cm, err := objs.configMap(ctx, name)
	if err != nil {
		return err
	}
	if cm == nil {
		if optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("configmap %q not found", name)
	}
	data := map[string][]byte{}
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, optional, def, files, "configmap "+name)
}

func keyFiles(data map[string][]byte, items []v1.KeyToPath, optional *bool, def os.FileMode, files map[string]volumeFile, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k] = volumeFile{v, def}
		}
		return nil
	}
	for _, item := range items {
		v, ok := data[item.Key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			return fmt.Errorf("%s has no key %q", what, item.Key)
		}
		m := def
		if item.Mode != nil {
			m = os.FileMode(*item.Mode) & 0o777
		}
		files[item.Path] = volumeFile{v, m}
	}
	return nil
}

func (w *podWorker) downwardFiles(items []v1.DownwardAPIVolumeFile, def os.FileMode, files map[string]volumeFile) error {
	for _, item := range items {
		var value string
		var err error
		switch {
		case item.FieldRef != nil:
			value, err = w.a.fieldValue(w.pod, item.FieldRef.FieldPath, w.podIP)
		case item.ResourceFieldRef != nil:
			value, err = w.a.resourceValue(w.pod, nil, item.ResourceFieldRef)
		default:
			err = fmt.Errorf("downwardAPI item %q has no source", item.Path)
		}
		if err != nil {
			return err
		}
		m := def
		if item.Mode != nil {
			m = os.FileMode(*item.Mode) & 0o777
		}
		files[item.Path] = volumeFile{[]byte(value), m}
	}
	return nil
}

// serviceAccountToken returns a token bound to the pod from the TokenRequest API, renewed at 80 % of its life.
func (w *podWorker) serviceAccountToken(ctx context.Context, src *v1.ServiceAccountTokenProjection) (string, error) {
	p := w.pod
	expiration := int64(3600)
	if src.ExpirationSeconds != nil {
		expiration = *src.ExpirationSeconds
	}
	key := fmt.Sprintf("%s|%d", src.Audience, expiration)
	vs := w.volumes
	if t := vs.tokens[key]; t != nil && time.Now().Before(t.refreshAt) {
		vs.earliest(t.refreshAt)
		return t.token, nil
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(expiration),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	issued := time.Now()
	resp, err := w.a.client.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for service account %q: %w", sa, err)
	}
	life := resp.Status.ExpirationTimestamp.Sub(issued)
	if life > 24*time.Hour {
		life = 24 * time.Hour
	}
	t := &cachedToken{token: resp.Status.Token, refreshAt: issued.Add(life * 8 / 10)}
	vs.tokens[key] = t
	vs.earliest(t.refreshAt)
	slog.Info("service account token issued", "pod", w.key, "serviceAccount", sa, "audience", src.Audience, "refreshAt", t.refreshAt.Format(time.RFC3339))
	return t.token, nil
}

func (vs *volumeState) earliest(t time.Time) {
	if t.Before(vs.refreshAt) {
		vs.refreshAt = t
	}
}

func hashFiles(files map[string]volumeFile, gid int) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "gid=%d\n", gid)
	for _, n := range names {
		fmt.Fprintf(h, "%s %o %d\n", n, files[n].mode, len(files[n].data))
		h.Write(files[n].data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func validRelativePath(p string) bool {
	if p == "" || filepath.IsAbs(p) {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || strings.HasPrefix(part, "..") {
			return false
		}
	}
	return true
}

// writeAtomic publishes files under dir so a reader sees either the old or the new set, never a mix.
func writeAtomic(dir string, files map[string]volumeFile, gid int, previousHash string) error {
	if previousHash != "" && previousHash == hashFiles(files, gid) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if gid >= 0 {
		_ = os.Chown(dir, 0, gid)
	}
	stamp := fmt.Sprintf("..%s", time.Now().UTC().Format("2006_01_02_15_04_05.000000000"))
	staged := filepath.Join(dir, stamp)
	if err := os.Mkdir(staged, 0o755); err != nil {
		return err
	}
	top := map[string]bool{}
	for name, f := range files {
		if !validRelativePath(name) {
			os.RemoveAll(staged)
			return fmt.Errorf("invalid path %q", name)
		}
		top[strings.SplitN(name, "/", 2)[0]] = true
		full := filepath.Join(staged, name)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, 0o600); err != nil {
			return err
		}
		m := f.mode
		if gid >= 0 {
			if err := os.Chown(full, 0, gid); err != nil {
				return err
			}
			m |= 0o440
		}
		if err := os.Chmod(full, m); err != nil {
			return err
		}
	}
	dataLink := filepath.Join(dir, "..data")
	old, _ := os.Readlink(dataLink)
	tmpLink := filepath.Join(dir, "..data_tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(stamp, tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return err
	}
	for name := range top {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !top[e.Name()] {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if old != "" && old != stamp {
		os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// teardownVolumes unmounts the pod's tmpfs mounts and removes its directory.
func (w *podWorker) teardownVolumes() {
	for dir := range w.volumes.tmpfs {
		if err := syscall.Unmount(dir, 0); err != nil {
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		delete(w.volumes.tmpfs, dir)
	}
	podDir := filepath.Dir(w.volumes.root)
	if err := os.RemoveAll(podDir); err != nil {
		slog.Warn("removing pod directory", "pod", w.key, "dir", podDir, "err", err)
	}
}

// unmountUnder unmounts every mount below dir (leftovers of an agent that did not stop cleanly).
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var targets []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], prefix) {
			targets = append(targets, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	for _, t := range targets {
		if err := syscall.Unmount(t, 0); err != nil {
			_ = syscall.Unmount(t, syscall.MNT_DETACH)
		}
	}
}
