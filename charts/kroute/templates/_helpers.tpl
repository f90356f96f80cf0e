{{/* Names and labels shared by every template of the chart. */}}

{{- define "kroute.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object name: the release name, plus the chart name unless it already holds it. */}}
{{- define "kroute.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kroute.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kroute.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kroute.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kroute.labels" -}}
helm.sh/chart: {{ include "kroute.chart" . }}
{{ include "kroute.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: kroute
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kroute.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kroute.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kroute.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "kroute.leaseName" -}}
{{- default (include "kroute.fullname" .) .Values.controller.election.leaseName }}
{{- end }}

{{/* Replicas the workload runs with at least: decides whether a PodDisruptionBudget makes sense. */}}
{{- define "kroute.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* nginx's security context: the configured one, plus NET_BIND_SERVICE when it binds a port below 1024. */}}
{{- define "kroute.nginxSecurityContext" -}}
{{- $context := deepCopy .Values.nginx.securityContext }}
{{- $privileged := false }}
{{- range $name, $port := .Values.nginx.containerPorts }}
{{- if lt (int $port) 1024 }}{{ $privileged = true }}{{ end }}
{{- end }}
{{- if $privileged }}
{{- $capabilities := default (dict) $context.capabilities }}
{{- $add := default (list) $capabilities.add }}
{{- $_ := set $capabilities "add" (append $add "NET_BIND_SERVICE" | uniq) }}
{{- $_ := set $context "capabilities" $capabilities }}
{{- end }}
{{- toYaml $context }}
{{- end }}

{{/*
The agent's rules (files/rbac-rules.yaml, shared with the agent's e2e tests) split by scope: "cluster" holds
what must be cluster-wide, "namespaced" the rest. Without a watched namespace everything is cluster-wide;
with one, only cluster-scoped resources (IngressClasses, GatewayClasses) are, and the rest is granted in that
namespace. The Gateway API rules (gatewayRules) are added with gatewayAPI.enabled.
*/}}
{{- define "kroute.agentRules" -}}
{{- $file := .Files.Get "files/rbac-rules.yaml" | fromYaml }}
{{- if not $file.clusterRules }}{{ fail "files/rbac-rules.yaml has no clusterRules" }}{{ end }}
{{- $rules := $file.clusterRules }}
{{- if .Values.gatewayAPI.enabled }}
{{- if not $file.gatewayRules }}{{ fail "files/rbac-rules.yaml has no gatewayRules" }}{{ end }}
{{- $rules = concat $rules $file.gatewayRules }}
{{- end }}
{{- $clusterScoped := list "ingressclasses" "gatewayclasses" "gatewayclasses/status" }}
{{- $cluster := list }}
{{- $namespaced := list }}
{{- range $rules }}
{{- if not $.Values.controller.watchNamespace }}
{{- $cluster = append $cluster . }}
{{- else }}
{{- $wide := list }}
{{- $narrow := list }}
{{- range .resources }}
{{- if has . $clusterScoped }}{{ $wide = append $wide . }}{{ else }}{{ $narrow = append $narrow . }}{{ end }}
{{- end }}
{{- if $wide }}{{ $cluster = append $cluster (set (omit . "resources") "resources" $wide) }}{{ end }}
{{- if $narrow }}{{ $namespaced = append $namespaced (set (omit . "resources") "resources" $narrow) }}{{ end }}
{{- end }}
{{- end }}
{{- toYaml (dict "cluster" $cluster "namespaced" $namespaced "election" $file.electionRules) }}
{{- end }}

{{/* The class names the agent owns by name alone (--ingress-class-name), comma-separated; "" without takeover. */}}
{{- define "kroute.takeoverClassNames" -}}
{{- $names := .Values.takeover.classNames | default list }}
{{- if .Values.takeover.ingressNginx }}{{ $names = prepend $names "nginx" }}{{ end }}
{{- join "," (uniq $names) }}
{{- end }}

{{/* Whether this replica set takes part in the leader election (and so writes Ingress status and Events). */}}
{{- define "kroute.election" -}}
{{- if and .Values.controller.election.enabled (or .Values.takeover.updateStatus (not (include "kroute.takeoverClassNames" .))) }}true{{ end }}
{{- end }}

{{/* The preStop sleep (shutdownDelaySeconds), checked to leave nginx time to drain within the grace period. */}}
{{- define "kroute.shutdownDelay" -}}
{{- $delay := int .Values.shutdownDelaySeconds -}}
{{- if or (lt $delay 0) (ge $delay (int .Values.terminationGracePeriodSeconds)) -}}
{{- fail (printf "shutdownDelaySeconds (%d) must be at least 0 and less than terminationGracePeriodSeconds (%d)" $delay (int .Values.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- $delay -}}
{{- end -}}

{{/*
Whether the GatewayClass can be part of this release: Helm maps every object of a release to an API before it
creates any, so a GatewayClass cannot come with the CRD that defines it, and no hook runs late enough to be sure
the new CRD is served. With gatewayAPI.installCRDs on a cluster that does not serve GatewayClasses yet, the class is
left to the next `helm upgrade` (NOTES.txt says so); with installCRDs none the cluster must have the CRDs already.
*/}}
{{- define "kroute.gatewayClassServed" -}}
{{- if or (eq .Values.gatewayAPI.installCRDs "none") (.Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1/GatewayClass") }}true{{ end }}
{{- end -}}
