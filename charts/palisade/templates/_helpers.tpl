{{/* Names. The DaemonSet is "<fullname>-agent"; with release "palisade" that is palisade-agent. */}}
{{- define "palisade.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 57 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 57 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "palisade.agentName" -}}
{{- printf "%s-agent" (include "palisade.fullname" .) -}}
{{- end -}}

{{- define "palisade.labels" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "palisade.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
Where kubelet probes reach the health server: a wildcard bind is probed on loopback; hostIP
gives no host, so kubelet probes the pod IP, which is the node's IP (host network).
*/}}
{{- define "palisade.probeHost" -}}
{{- if or (eq .Values.healthBindAddress "0.0.0.0") (eq .Values.healthBindAddress "::") -}}
127.0.0.1
{{- else if ne .Values.healthBindAddress "hostIP" -}}
{{- .Values.healthBindAddress -}}
{{- end -}}
{{- end -}}

{{/*
The agent's options file (the palisade-config ConfigMap), read with --config. Keys are the
agent's long command-line flag names; flags given on the command line win. Options left
at their "automatic" value (mtu 0, podCIDRSource node) are omitted so the agent decides.
*/}}
{{- define "palisade.agentConfig" -}}
{{- $c := dict
  "state-dir" "/var/lib/palisade"
  "api-socket" "/var/run/palisade/cni.sock"
  "bpffs-root" .Values.bpffsRoot
  "cni-conf-dir" .Values.cniConfDir
  "remove-cni-conf-on-shutdown" .Values.removeCniConfOnShutdown
  "log-level" .Values.logLevel
  "health-port" .Values.healthPort
  "l7-proxy-port" .Values.l7ProxyPort
-}}
{{- if ne .Values.healthBindAddress "hostIP" -}}
{{- $_ := set $c "health-bind-address" .Values.healthBindAddress -}}
{{- end -}}
{{- if ne (int .Values.mtu) 0 -}}
{{- $_ := set $c "mtu" .Values.mtu -}}
{{- end -}}
{{- if eq .Values.podCIDRSource "static" -}}
{{- $_ := set $c "pod-cidr" .Values.staticPodCIDR -}}
{{- end -}}
{{- toPrettyJson $c -}}
{{- end -}}
