{{/* Names and labels shared by every object of the chart. */}}
{{- define "stackwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stackwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "stackwatch.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "stackwatch.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stackwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stackwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stackwatch.labels" -}}
{{ include "stackwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels of the prometheus-operator objects: the chart's, the selector's, then the object's own. */}}
{{- define "stackwatch.operatorLabels" -}}
{{ include "stackwatch.labels" .root }}
{{- with .root.Values.prometheusSelectorLabels }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "stackwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stackwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "stackwatch.scheme" -}}
{{- if .Values.webConfig.tls }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* The TLS and basic auth of a scrape by prometheus-operator (ServiceMonitor, Probe). */}}
{{- define "stackwatch.scrapeAuth" -}}
{{- if .Values.webConfig.tls }}
tlsConfig:
  insecureSkipVerify: {{ .Values.serviceMonitor.tlsConfig.insecureSkipVerify }}
  {{- with .Values.serviceMonitor.tlsConfig.serverName }}
  serverName: {{ . | quote }}
  {{- end }}
  {{- with .Values.serviceMonitor.tlsConfig.caSecret.name }}
  ca:
    secret:
      name: {{ . | quote }}
      key: {{ $.Values.serviceMonitor.tlsConfig.caSecret.key | quote }}
  {{- end }}
{{- end }}
{{- if .Values.webConfig.basicAuth }}
basicAuth:
  username:
    name: {{ required "serviceMonitor.basicAuthSecret.name is required with webConfig.basicAuth" .Values.serviceMonitor.basicAuthSecret.name | quote }}
    key: {{ .Values.serviceMonitor.basicAuthSecret.usernameKey | quote }}
  password:
    name: {{ .Values.serviceMonitor.basicAuthSecret.name | quote }}
    key: {{ .Values.serviceMonitor.basicAuthSecret.passwordKey | quote }}
{{- end }}
{{- end -}}
