{{- define "registry-proxy.fullname" -}}{{ .Release.Name }}-registry-proxy{{- end }}
{{- define "registry-proxy.selectorLabels" -}}
app.kubernetes.io/name: registry-proxy
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "registry-proxy.labels" -}}
{{ include "registry-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: Helm
{{- end }}
