{{- define "kis.fullname" -}}{{ .Release.Name }}-kubelet-image-service{{- end }}
{{- define "kis.selectorLabels" -}}
app.kubernetes.io/name: kubelet-image-service
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "kis.labels" -}}
{{ include "kis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: Helm
{{- end }}
