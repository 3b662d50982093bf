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

{{/* Where kubelet probes reach the health server: a wildcard bind is probed on loopback. */}}
{{- define "palisade.probeHost" -}}
{{- if or (eq .Values.healthBindAddress "0.0.0.0") (eq .Values.healthBindAddress "::") -}}
127.0.0.1
{{- else -}}
{{- .Values.healthBindAddress -}}
{{- end -}}
{{- end -}}

{{/* The agent's options file (the palisade-config ConfigMap). docs/install.md lists the keys. */}}
{{- define "palisade.agentConfig" -}}
{{- $c := dict
  "podCIDRSource" .Values.podCIDRSource
  "staticPodCIDR" .Values.staticPodCIDR
  "mtu" .Values.mtu
  "logLevel" .Values.logLevel
  "healthPort" .Values.healthPort
  "healthBindAddress" .Values.healthBindAddress
  "bpffsRoot" .Values.bpffsRoot
  "cniConfDir" .Values.cniConfDir
  "cniConfName" "10-palisade.conflist"
  "cniBinDir" .Values.cniBinDir
  "removeCniConfOnShutdown" .Values.removeCniConfOnShutdown
  "apiSocket" "/var/run/palisade/cni.sock"
  "stateDir" "/var/lib/palisade"
-}}
{{- toPrettyJson $c -}}
{{- end -}}
