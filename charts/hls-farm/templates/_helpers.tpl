{{- define "farm.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "farm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "farm.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Secret names: the given existing Secret, or the one the chart makes. */}}
{{- define "farm.coordinatorSecret" -}}
{{- default (printf "%s-coordinator" (include "farm.fullname" .)) .Values.secrets.coordinator.existingSecret -}}
{{- end -}}
{{- define "farm.workerSecret" -}}
{{- default (printf "%s-worker" (include "farm.fullname" .)) .Values.secrets.worker.existingSecret -}}
{{- end -}}
{{- define "farm.taskKeySecret" -}}
{{- default (printf "%s-task-key" (include "farm.fullname" .)) .Values.secrets.taskKey.existingSecret -}}
{{- end -}}

{{/* A secret value: refuses to render when it is empty or still a placeholder. */}}
{{- define "farm.secretValue" -}}
{{- $value := index . 0 -}}{{- $name := index . 1 -}}
{{- if or (not $value) (contains "change-me" $value) -}}
{{- fail (printf "%s must be set: the chart has no usable default for a credential" $name) -}}
{{- end -}}
{{- $value | quote -}}
{{- end -}}

{{/* Settings both binaries read, from the ConfigMap and the Secret. */}}
{{- define "farm.env" -}}
- name: FARM_QUEUE_PREFIX
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_QUEUE_PREFIX}}
- name: FARM_S3_ENDPOINT
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_S3_ENDPOINT}}
- name: FARM_S3_REGION
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_S3_REGION}}
- name: FARM_STORAGE_RETRY_SECONDS
  valueFrom: {configMapKeyRef: {name: {{ include "farm.fullname" . }}-settings, key: FARM_STORAGE_RETRY_SECONDS}}
- name: FARM_TASK_KEY_FILE
  value: /etc/farm/task-key/task-key
- name: TMPDIR
  value: /scratch
{{- end -}}

{{/* A component's own broker and storage credentials; `.secret` names its Secret. */}}
{{- define "farm.credentials" -}}
- name: AMQP_URL
  valueFrom: {secretKeyRef: {name: {{ .secret }}, key: AMQP_URL}}
- name: AWS_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ .secret }}, key: AWS_ACCESS_KEY_ID, optional: true}}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ .secret }}, key: AWS_SECRET_ACCESS_KEY, optional: true}}
{{- range (include "farm.swiftVariables" . | fromJsonArray) }}
- name: {{ . }}
  valueFrom: {secretKeyRef: {name: {{ $.secret }}, key: {{ . }}, optional: true}}
{{- end }}
{{- end -}}

{{/* The Swift credentials a component's Secret may hold (docs/configuration.md, "Swift"). */}}
{{- define "farm.swiftVariables" -}}
["ST_AUTH", "ST_USER", "ST_KEY", "OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME", "OS_USER_DOMAIN_NAME", "OS_PROJECT_DOMAIN_NAME", "OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET", "OS_REGION_NAME", "RS_API_KEY"]
{{- end -}}

{{/* A component's Swift credentials (values.secrets.<component>.swift) as Secret data. */}}
{{- define "farm.swiftSecretData" -}}
{{- $allowed := include "farm.swiftVariables" . | fromJsonArray }}
{{- range $name, $value := .swift }}
{{- if not (has $name $allowed) }}
{{- fail (printf "secrets.%s.swift.%s: not a Swift variable (one of %s)" $.component $name (join ", " $allowed)) }}
{{- end }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end -}}
