package main

// Container environment as the kubelet builds it: the `kubernetes` Service variables, envFrom, then
// env in order, each value expanded with $(VAR) against what came before.

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// configError is a container configuration problem the user must fix (CreateContainerConfigError).
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{fmt.Sprintf(format, args...)}
}

// expand replaces $(NAME) with lookup(NAME) when defined and $$ with $, as Kubernetes does;
// an undefined reference stays as written.
func expand(input string, lookup func(string) (string, bool)) string {
	var out strings.Builder
	for i := 0; i < len(input); i++ {
		if input[i] != '$' || i+1 >= len(input) {
			out.WriteByte(input[i])
			continue
		}
		switch next := input[i+1]; next {
		case '$':
			out.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(input[i+2:], ')')
			if end < 0 {
				out.WriteString(input[i:])
				return out.String()
			}
			name := input[i+2 : i+2+end]
			if value, ok := lookup(name); ok {
				out.WriteString(value)
			} else {
				out.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			out.WriteByte('$')
		}
	}
	return out.String()
}

// serviceEnv is what the kubelet sets for the `kubernetes` Service; the node agent's relay serves it.
func (a *agent) serviceEnv() []envVar {
	host, port := a.cfg.nodeIP, a.apiPort
	url := "tcp://" + host + ":" + port
	prefix := "KUBERNETES_PORT_" + port + "_TCP"
	return []envVar{
		{"KUBERNETES_SERVICE_HOST", host},
		{"KUBERNETES_SERVICE_PORT", port},
		{"KUBERNETES_SERVICE_PORT_HTTPS", port},
		{"KUBERNETES_PORT", url},
		{prefix, url},
		{prefix + "_PROTO", "tcp"},
		{prefix + "_PORT", port},
		{prefix + "_ADDR", host},
	}
}

type envVar struct{ name, value string }

// podObjects fetches Secrets and ConfigMaps for one sync; absent ones are cached as nil.
type podObjects struct {
	a          *agent
	ns         string
	secrets    map[string]*v1.Secret
	configMaps map[string]*v1.ConfigMap
}

func newPodObjects(a *agent, ns string) *podObjects {
	return &podObjects{a: a, ns: ns, secrets: map[string]*v1.Secret{}, configMaps: map[string]*v1.ConfigMap{}}
}

func (o *podObjects) secret(ctx context.Context, name string) (*v1.Secret, error) {
	if s, ok := o.secrets[name]; ok {
		return s, nil
	}
	s, err := o.a.client.CoreV1().Secrets(o.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	o.secrets[name] = s
	return s, nil
}

func (o *podObjects) configMap(ctx context.Context, name string) (*v1.ConfigMap, error) {
	if c, ok := o.configMaps[name]; ok {
		return c, nil
	}
	c, err := o.a.client.CoreV1().ConfigMaps(o.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		c, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	o.configMaps[name] = c
	return c, nil
}

func configMapValue(cm *v1.ConfigMap, key string) (string, bool) {
	if v, ok := cm.Data[key]; ok {
		return v, true
	}
	if v, ok := cm.BinaryData[key]; ok {
		return string(v), true
	}
	return "", false
}

// containerEnv builds the final environment of container c in pod p.
func (a *agent) containerEnv(ctx context.Context, p *v1.Pod, c *v1.Container, podIP string, objs *podObjects) ([]envVar, error) {
	var order []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			order = append(order, name)
		}
		values[name] = value
	}
	// The master Service's variables are set whatever enableServiceLinks says, as the kubelet does.
	for _, e := range a.serviceEnv() {
		set(e.name, e.value)
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			optional := from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
			cm, err := objs.configMap(ctx, from.ConfigMapRef.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				if optional {
					continue
				}
				return nil, configErrorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			keys := make([]string, 0, len(cm.Data))
			for k := range cm.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			optional := from.SecretRef.Optional != nil && *from.SecretRef.Optional
			s, err := objs.secret(ctx, from.SecretRef.Name)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if optional {
					continue
				}
				return nil, configErrorf("secret %q not found", from.SecretRef.Name)
			}
			keys := make([]string, 0, len(s.Data))
			for k := range s.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}
	lookup := func(name string) (string, bool) {
		v, ok := values[name]
		return v, ok
	}
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom == nil {
			set(e.Name, expand(value, lookup))
			continue
		}
		vf := e.ValueFrom
		switch {
		case vf.FieldRef != nil:
			v, err := a.fieldValue(p, vf.FieldRef.FieldPath, podIP)
			if err != nil {
				return nil, configErrorf("env %s: %v", e.Name, err)
			}
			value = v
		case vf.ResourceFieldRef != nil:
			v, err := a.resourceValue(p, c, vf.ResourceFieldRef)
			if err != nil {
				return nil, configErrorf("env %s: %v", e.Name, err)
			}
			value = v
		case vf.SecretKeyRef != nil:
			ref := vf.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			s, err := objs.secret(ctx, ref.Name)
			if err != nil {
				return nil, err
			}
			if s == nil {
				if optional {
					continue
				}
				return nil, configErrorf("secret %q not found", ref.Name)
			}
			b, ok := s.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, configErrorf("couldn't find key %s in Secret %s/%s", ref.Key, p.Namespace, ref.Name)
			}
			value = string(b)
		case vf.ConfigMapKeyRef != nil:
			ref := vf.ConfigMapKeyRef
			optional := ref.Optional != nil && *ref.Optional
			cm, err := objs.configMap(ctx, ref.Name)
			if err != nil {
				return nil, err
			}
			if cm == nil {
				if optional {
					continue
				}
				return nil, configErrorf("configmap %q not found", ref.Name)
			}
			v, ok := configMapValue(cm, ref.Key)
			if !ok {
				if optional {
					continue
				}
				return nil, configErrorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, p.Namespace, ref.Name)
			}
			value = v
		default:
			return nil, configErrorf("env %s: unsupported valueFrom", e.Name)
		}
		set(e.Name, value)
	}
	out := make([]envVar, 0, len(order))
	for _, name := range order {
		out = append(out, envVar{name, values[name]})
	}
	return out, nil
}

// fieldValue resolves a downward API field path.
func (a *agent) fieldValue(p *v1.Pod, path, podIP string) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return p.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return p.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "metadata.labels":
		return formatMap(p.Labels), nil
	case "metadata.annotations":
		return formatMap(p.Annotations), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return a.cfg.nodeIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// subscript parses prefix['key'].
func subscript(path, prefix string) (string, bool) {
	if !strings.HasPrefix(path, prefix+"['") || !strings.HasSuffix(path, "']") {
		return "", false
	}
	return path[len(prefix)+2 : len(path)-2], true
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, k+"="+strconv.Quote(m[k]))
	}
	return strings.Join(lines, "\n")
}

// resourceValue resolves a resourceFieldRef; an unset limit is the node's capacity, as in the kubelet.
func (a *agent) resourceValue(p *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" && (c == nil || ref.ContainerName != c.Name) {
		found := false
		for i := range p.Spec.Containers {
			if p.Spec.Containers[i].Name == ref.ContainerName {
				c, found = &p.Spec.Containers[i], true
			}
		}
		if !found {
			return "", fmt.Errorf("container %q not found", ref.ContainerName)
		}
	}
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef %q needs a containerName", ref.Resource)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	var q resource.Quantity
	switch kind {
	case "limits":
		if v, ok := c.Resources.Limits[v1.ResourceName(name)]; ok {
			q = v
		} else {
			q = a.nodeCapacity[v1.ResourceName(name)]
		}
	case "requests":
		q = c.Resources.Requests[v1.ResourceName(name)]
	default:
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}
