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

{{- define "kis.patcher" -}}
- name: node-patcher
  image: "{{ .Values.patcherImage.repository }}:{{ .Values.patcherImage.tag }}"
  args: ["patch", "--root", "/host", "--mode", {{ .Values.mode | quote }}, "--config-dir", "/etc/registry-proxy", "--provider-binary", "/app/registry-proxy-credential-provider", "--provider-rules", "/etc/registry-proxy/image-service.yaml"{{ if eq .Values.mode "image-service" }}, "--stay"{{ end }}]
  env:
    - name: NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
  securityContext:
    # Writes kubelet's files on the host and talks to the host's systemd.
    privileged: true
    runAsUser: 0
  volumeMounts:
    - {name: host-etc, mountPath: /host/etc}
    - {name: host-var-lib, mountPath: /host/var/lib}
    - {name: host-home, mountPath: /host/home}
    - {name: host-dbus, mountPath: /host/run/dbus}
    # image-service mode: the patcher checks that the image service serves its socket.
    - {name: socket-dir, mountPath: /host/run/registry-proxy}
    - {name: config, mountPath: /etc/registry-proxy, readOnly: true}
{{- end }}
